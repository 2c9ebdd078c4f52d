// RCAR sessions: created by /auth, consumed by /attest, then carrying the
// attestation result for resource requests. Sessions expire (a fixed
// deadline from /auth, not extended by use), each challenge may be used for
// one attestation attempt only, expired sessions are purged, and the table
// is capped: a full table is Unavailable, never unbounded memory.
#ifndef KBS_KBS_SESSION_SESSION_STORE_H_
#define KBS_KBS_SESSION_SESSION_STORE_H_

#include <array>
#include <atomic>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <unordered_map>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/crypto.h"

namespace kbs::session {

// What /auth established.
struct Challenge {
  std::string tee;
  std::string nonce;  // base64 of 32 random bytes, as sent
  common::HashAlgorithm hash_algorithm = common::HashAlgorithm::kSha384;
  absl::Time session_expires;
};

struct NewSession {
  std::string id;  // 32 lowercase hex characters
  std::string nonce;
  absl::Time expires;
};

// Thread-safe.
class SessionStore final {
 public:
  struct Options {
    absl::Duration timeout = absl::Minutes(5);
    size_t max_sessions = 65536;
  };
  explicit SessionStore(Options options);

  // Creates a session with a fresh id and nonce. Unavailable when the table
  // is full of live sessions.
  absl::StatusOr<NewSession> Create(absl::string_view tee, common::HashAlgorithm hash,
                                    absl::Time now);

  // Claims the session's challenge for one attestation attempt.
  // Unauthenticated when the session is unknown, expired, or its challenge
  // was already used (a nonce attests at most once).
  absl::StatusOr<Challenge> ClaimChallenge(absl::string_view id, absl::Time now);

  // Records a successful attestation on a claimed session: the token's
  // claims set (compact JSON, about 1 KiB, kept instead of parsed objects so
  // a full table stays small) and the token's expiry. The session keeps its
  // original expiry.
  absl::Status CompleteAttestation(absl::string_view id, std::string claims_json,
                                   absl::Time token_expires);

  // The attestation claims of a live attested session whose token has not
  // expired; nullopt when the session is unknown, expired or not attested.
  std::optional<std::string> GetAttested(absl::string_view id, absl::Time now);
  // Whether GetAttested would return the claims (without copying them).
  bool IsAttested(absl::string_view id, absl::Time now);

  // Drops expired sessions; returns how many.
  size_t PurgeExpired(absl::Time now);
  size_t size() const { return count_.load(std::memory_order_relaxed); }

 private:
  enum class State { kAuthed, kClaimed, kAttested };
  struct Entry {
    Challenge challenge;
    absl::Time expires;
    State state = State::kAuthed;
    std::string claims_json;
    absl::Time token_expires;
  };
  struct Shard {
    std::mutex mu;
    std::unordered_map<std::string, Entry> sessions;
  };
  static constexpr size_t kShards = 16;
  Shard& ShardFor(absl::string_view id);
  // The session when live, attested and its token unexpired; shard.mu held.
  static const Entry* FindAttestedLocked(Shard& shard, absl::string_view id, absl::Time now);

  Options options_;
  std::array<Shard, kShards> shards_;
  std::atomic<size_t> count_{0};
  std::atomic<int64_t> last_full_purge_unix_{0};
};

}  // namespace kbs::session

#endif  // KBS_KBS_SESSION_SESSION_STORE_H_
