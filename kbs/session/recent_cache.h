// A bounded map from session id to an object built for that session, keeping
// only the most recently inserted entries (first in, first out).
//
// The broker keeps the AttestationResult of each fresh attestation here, so
// the resource request that follows (normally within milliseconds, on the
// same session) uses the object as built instead of parsing the session's
// claims again. The session store stays the authority: a caller checks that
// the session is live and attested before it trusts an entry, and a miss
// simply falls back to the stored claims. Memory is bounded by `capacity`
// whatever the session table holds. Thread-safe.
#ifndef KBS_KBS_SESSION_RECENT_CACHE_H_
#define KBS_KBS_SESSION_RECENT_CACHE_H_

#include <array>
#include <deque>
#include <memory>
#include <mutex>
#include <string>
#include <utility>

#include "absl/container/flat_hash_map.h"
#include "absl/hash/hash.h"
#include "absl/strings/string_view.h"

namespace kbs::session {

template <typename T>
class RecentCache final {
 public:
  // Holds at most `capacity` entries (rounded up to a multiple of the shard
  // count); 0 disables the cache.
  explicit RecentCache(size_t capacity)
      : per_shard_(capacity == 0 ? 0 : (capacity + kShards - 1) / kShards) {}
  RecentCache(const RecentCache&) = delete;
  RecentCache& operator=(const RecentCache&) = delete;

  // Inserts or replaces the entry for `id`, evicting the oldest entries of
  // its shard beyond the capacity.
  void Put(absl::string_view id, std::shared_ptr<T> value) {
    if (per_shard_ == 0) return;
    std::shared_ptr<T> evicted;  // released outside the lock
    Shard& shard = ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto [it, inserted] = shard.map.insert_or_assign(std::string(id), std::move(value));
    if (!inserted) return;
    shard.order.emplace_back(id);
    while (shard.order.size() > per_shard_) {
      auto old = shard.map.find(shard.order.front());
      if (old != shard.map.end()) {
        evicted = std::move(old->second);
        shard.map.erase(old);
      }
      shard.order.pop_front();
    }
  }

  // The entry for `id`, or null.
  std::shared_ptr<T> Get(absl::string_view id) {
    if (per_shard_ == 0) return nullptr;
    Shard& shard = ShardFor(id);
    std::lock_guard<std::mutex> lock(shard.mu);
    auto it = shard.map.find(id);
    return it == shard.map.end() ? nullptr : it->second;
  }

  size_t size() {
    size_t n = 0;
    for (Shard& shard : shards_) {
      std::lock_guard<std::mutex> lock(shard.mu);
      n += shard.map.size();
    }
    return n;
  }

 private:
  static constexpr size_t kShards = 16;
  struct Shard {
    std::mutex mu;
    absl::flat_hash_map<std::string, std::shared_ptr<T>> map;
    std::deque<std::string> order;  // insertion order of the keys in `map`
  };
  Shard& ShardFor(absl::string_view id) { return shards_[absl::HashOf(id) % kShards]; }

  const size_t per_shard_;
  std::array<Shard, kShards> shards_;
};

}  // namespace kbs::session

#endif  // KBS_KBS_SESSION_RECENT_CACHE_H_
