// The attestation-token signing keys, rotated with overlap.
//
// A ring holds one `current` key (signs new tokens), one `next` key
// (published in the JWKS ahead of use, so relying parties that cache the
// JWKS already know it when it starts signing) and `retired` keys (no longer
// signing, still published until every token they signed has expired:
// retired + the longest token lifetime they signed with + clock skew).
// Rotation promotes next to current, retires current and generates a new
// next key.
//
// Persistence: one JSON file (mode 0600, replaced atomically) in the data
// directory. It holds private keys: never log it.
//   {"format":"kbs-token-keys/1","keys":[{"kid":..,"state":"current",
//    "created":UNIX,"activated":UNIX,"retired":UNIX,
//    "max_token_lifetime":SECONDS,"private_key":"PEM (PKCS#8)"}, ...]}
// `kid` is the key's RFC 7638 thumbprint, checked on load.
//
// Not thread-safe: the TokenService serializes access.
#ifndef KBS_KBS_TOKEN_SIGNING_KEYS_H_
#define KBS_KBS_TOKEN_SIGNING_KEYS_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/openssl_util.h"

namespace kbs::token {

enum class SigningKeyState { kNext, kCurrent, kRetired };
absl::string_view SigningKeyStateName(SigningKeyState state);

struct SigningKeyInfo {
  std::string kid;
  SigningKeyState state = SigningKeyState::kNext;
  absl::Time created;
  std::optional<absl::Time> activated;  // became current
  std::optional<absl::Time> retired;    // stopped signing
  // Until when the key stays in the JWKS (retired keys only).
  std::optional<absl::Time> published_until;

  // For the admin API: {"kid","state","created",...} with RFC 3339 times.
  common::Json ToJson() const;
};

struct SigningKeyRotation {
  std::string current;  // kid now signing
  std::string retired;  // kid that stopped signing
};

class SigningKeyRing final {
 public:
  struct Options {
    // The ring file; empty: kept in memory only (tests, tools).
    std::string path;
    // Lifetime of the tokens signed now.
    absl::Duration token_lifetime = absl::Minutes(5);
    // How far relying parties' clocks may lag: retired keys stay published
    // that much longer.
    absl::Duration clock_skew = absl::Seconds(60);
  };

  // Reads the ring at `options.path`, or creates it (a current and a next
  // key). When the ring file does not exist yet but `legacy_pem_path` does
  // (the single token-signing-key.pem of earlier versions), that key
  // becomes the current one, so tokens already issued stay valid, and the
  // legacy file is removed once the ring is durable.
  static absl::StatusOr<std::unique_ptr<SigningKeyRing>> Open(
      Options options, absl::Time now, const std::string& legacy_pem_path = "");
  // An in-memory ring whose current key is `current` (P-256).
  static absl::StatusOr<std::unique_ptr<SigningKeyRing>> FromKey(common::EvpPkeyPtr current,
                                                                 Options options, absl::Time now);

  // next -> current, current -> retired, a new next key; retired keys whose
  // publication ended are dropped. Durable before it returns; on error the
  // ring is unchanged.
  absl::StatusOr<SigningKeyRotation> Rotate(absl::Time now);

  // The current key (private, P-256); owned by the ring.
  EVP_PKEY* current_key() const;
  // Keys whose tokens may still be valid: current and retired ones still
  // published at `now` (public keys are derived by the caller).
  std::vector<const EVP_PKEY*> VerificationKeys(absl::Time now) const;
  // Keys to publish at `now`: current, next, retired until published_until.
  std::vector<const EVP_PKEY*> PublishedKeys(absl::Time now) const;
  std::vector<SigningKeyInfo> Keys() const;
  // When the current key became current.
  absl::Time current_since() const;
  const Options& options() const { return options_; }

 private:
  struct Entry {
    SigningKeyInfo info;
    absl::Duration max_token_lifetime;
    common::EvpPkeyPtr key;
  };
  explicit SigningKeyRing(Options options) : options_(std::move(options)) {}

  static absl::StatusOr<Entry> NewEntry(common::EvpPkeyPtr key, SigningKeyState state,
                                        absl::Time now, absl::Duration lifetime);
  absl::Status Parse(absl::string_view text);
  absl::Status Validate() const;
  absl::Status Save(const std::vector<Entry>& entries) const;
  std::optional<absl::Time> PublishedUntil(const Entry& e) const;
  const Entry& Current() const;

  Options options_;
  std::vector<Entry> entries_;
};

}  // namespace kbs::token

#endif  // KBS_KBS_TOKEN_SIGNING_KEYS_H_
