#include "kbs/session/session_store.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs::session {
namespace {

constexpr size_t kNonceBytes = 32;

// uuid v4 in "simple" form (32 lowercase hex), like the reference KBS.
absl::StatusOr<std::string> NewSessionId() {
  KBS_ASSIGN_OR_RETURN(std::string raw, common::RandomString(16));
  raw[6] = static_cast<char>((raw[6] & 0x0f) | 0x40);
  raw[8] = static_cast<char>((raw[8] & 0x3f) | 0x80);
  return common::HexEncode(raw);
}

}  // namespace

SessionStore::SessionStore(Options options) : options_(options) {}

SessionStore::Shard& SessionStore::ShardFor(absl::string_view id) {
  // Ids are random; their last hex digit spreads them evenly.
  size_t h = id.empty() ? 0 : static_cast<unsigned char>(id.back());
  return shards_[h % kShards];
}

absl::StatusOr<NewSession> SessionStore::Create(absl::string_view tee, common::HashAlgorithm hash,
                                                absl::Time now) {
  if (count_.load(std::memory_order_relaxed) >= options_.max_sessions) {
    // At most one full sweep per second, so a flood cannot make every
    // request pay for a scan.
    int64_t second = absl::ToUnixSeconds(now);
    int64_t last = last_full_purge_unix_.load();
    if (last != second && last_full_purge_unix_.compare_exchange_strong(last, second)) {
      PurgeExpired(now);
    }
    if (count_.load(std::memory_order_relaxed) >= options_.max_sessions) {
      return absl::UnavailableError(absl::StrCat("session table is full (", options_.max_sessions,
                                                 " live sessions); retry later"));
    }
  }
  KBS_ASSIGN_OR_RETURN(std::string id, NewSessionId());
  KBS_ASSIGN_OR_RETURN(std::string nonce_raw, common::RandomString(kNonceBytes));
  Entry entry;
  entry.challenge.tee = std::string(tee);
  entry.challenge.nonce = common::Base64Encode(nonce_raw);
  entry.challenge.hash_algorithm = hash;
  entry.expires = now + options_.timeout;
  entry.challenge.session_expires = entry.expires;
  NewSession out{id, entry.challenge.nonce, entry.expires};
  Shard& shard = ShardFor(id);
  {
    std::lock_guard<std::mutex> lock(shard.mu);
    shard.sessions.emplace(std::move(id), std::move(entry));
  }
  count_.fetch_add(1, std::memory_order_relaxed);
  return out;
}

absl::StatusOr<Challenge> SessionStore::ClaimChallenge(absl::string_view id, absl::Time now) {
  Shard& shard = ShardFor(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(std::string(id));
  if (it == shard.sessions.end()) {
    return absl::UnauthenticatedError("unknown session (kbs-session-id); start again with /auth");
  }
  if (now >= it->second.expires) {
    return absl::UnauthenticatedError("session expired; start again with /auth");
  }
  if (it->second.state != State::kAuthed) {
    return absl::UnauthenticatedError(
        "this session's nonce was already used for an attestation; start again with /auth");
  }
  it->second.state = State::kClaimed;
  return it->second.challenge;
}

absl::Status SessionStore::CompleteAttestation(absl::string_view id, std::string claims_json,
                                               absl::Time token_expires) {
  Shard& shard = ShardFor(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  auto it = shard.sessions.find(std::string(id));
  if (it == shard.sessions.end() || it->second.state != State::kClaimed) {
    return absl::UnauthenticatedError("session vanished during attestation");
  }
  it->second.state = State::kAttested;
  it->second.claims_json = std::move(claims_json);
  it->second.token_expires = token_expires;
  return absl::OkStatus();
}

const SessionStore::Entry* SessionStore::FindAttestedLocked(Shard& shard, absl::string_view id,
                                                            absl::Time now) {
  auto it = shard.sessions.find(std::string(id));
  if (it == shard.sessions.end() || now >= it->second.expires ||
      it->second.state != State::kAttested || now >= it->second.token_expires) {
    return nullptr;
  }
  return &it->second;
}

std::optional<std::string> SessionStore::GetAttested(absl::string_view id, absl::Time now) {
  Shard& shard = ShardFor(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  const Entry* entry = FindAttestedLocked(shard, id, now);
  if (entry == nullptr) return std::nullopt;
  return entry->claims_json;
}

bool SessionStore::IsAttested(absl::string_view id, absl::Time now) {
  Shard& shard = ShardFor(id);
  std::lock_guard<std::mutex> lock(shard.mu);
  return FindAttestedLocked(shard, id, now) != nullptr;
}

size_t SessionStore::PurgeExpired(absl::Time now) {
  size_t purged = 0;
  for (Shard& shard : shards_) {
    std::lock_guard<std::mutex> lock(shard.mu);
    for (auto it = shard.sessions.begin(); it != shard.sessions.end();) {
      if (now >= it->second.expires) {
        it = shard.sessions.erase(it);
        ++purged;
      } else {
        ++it;
      }
    }
  }
  count_.fetch_sub(purged, std::memory_order_relaxed);
  return purged;
}

}  // namespace kbs::session
