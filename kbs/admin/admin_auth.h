// Admin authentication: admin endpoints need `Authorization: Bearer <JWT>`
// signed (EdDSA or ES256) by one of the configured admin public keys, with
// `exp` checked against the injected clock. With no key configured the
// admin API is closed.
#ifndef KBS_KBS_ADMIN_ADMIN_AUTH_H_
#define KBS_KBS_ADMIN_ADMIN_AUTH_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "common/jose/jwt.h"

namespace kbs::admin {

// Thread-safe.
class AdminAuthenticator final {
 public:
  // `public_key_pems`: PEM SubjectPublicKeyInfo, Ed25519 or P-256. Empty ->
  // every admin request is refused. `clock` must outlive this object.
  static absl::StatusOr<std::unique_ptr<AdminAuthenticator>> Create(
      const std::vector<std::string>& public_key_pems, const common::Clock* clock);

  // `bearer_token` is the token after "Bearer " (empty when absent). OK or
  // Unauthenticated with the reason.
  absl::Status Authorize(absl::string_view bearer_token) const;
  bool enabled() const { return !verifier_.empty(); }

 private:
  AdminAuthenticator(jose::JwtVerifier verifier, const common::Clock* clock)
      : verifier_(std::move(verifier)), clock_(clock) {}
  jose::JwtVerifier verifier_;
  const common::Clock* clock_;
};

}  // namespace kbs::admin

#endif  // KBS_KBS_ADMIN_ADMIN_AUTH_H_
