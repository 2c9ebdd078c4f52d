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
  // `role` names what the keys grant ("admin", "auditor"): a token whose
  // `role` claim names another role is refused (kbsctl writes it; tokens
  // without one are accepted).
  static absl::StatusOr<std::unique_ptr<AdminAuthenticator>> Create(
      const std::vector<std::string>& public_key_pems, const common::Clock* clock,
      std::string role = "admin");

  // `bearer_token` is the token after "Bearer " (empty when absent). OK or
  // Unauthenticated with the reason.
  absl::Status Authorize(absl::string_view bearer_token) const;
  bool enabled() const { return !verifier_.empty(); }
  // The RFC 7638 thumbprints of the trusted keys (however their PEM was
  // written): two roles must not share a key.
  const std::vector<std::string>& key_thumbprints() const { return thumbprints_; }

 private:
  AdminAuthenticator(jose::JwtVerifier verifier, std::vector<std::string> thumbprints,
                     const common::Clock* clock, std::string role)
      : verifier_(std::move(verifier)),
        thumbprints_(std::move(thumbprints)),
        clock_(clock),
        role_(std::move(role)) {}
  jose::JwtVerifier verifier_;
  std::vector<std::string> thumbprints_;
  const common::Clock* clock_;
  std::string role_;
};

}  // namespace kbs::admin

#endif  // KBS_KBS_ADMIN_ADMIN_AUTH_H_
