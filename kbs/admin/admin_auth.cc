#include "kbs/admin/admin_auth.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/keys.h"
#include "common/status_macros.h"

namespace kbs::admin {

absl::StatusOr<std::unique_ptr<AdminAuthenticator>> AdminAuthenticator::Create(
    const std::vector<std::string>& public_key_pems, const common::Clock* clock) {
  jose::JwtVerifier verifier;
  for (const std::string& pem : public_key_pems) {
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, common::PublicKeyFromPem(pem));
    absl::Status added = verifier.AddKey(std::move(key));
    if (!added.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("admin public key: ", added.message()));
    }
  }
  return std::unique_ptr<AdminAuthenticator>(new AdminAuthenticator(std::move(verifier), clock));
}

absl::Status AdminAuthenticator::Authorize(absl::string_view bearer_token) const {
  if (verifier_.empty()) {
    return absl::UnauthenticatedError(
        "the admin API is closed: no admin public key is configured (--admin-public-key)");
  }
  if (bearer_token.empty()) {
    return absl::UnauthenticatedError("admin request without `Authorization: Bearer <token>`");
  }
  jose::JwtValidationOptions options;
  options.require_exp = true;
  // Admin tokens are minted on other machines: tolerate modest clock skew.
  options.leeway = absl::Seconds(60);
  auto verified = verifier_.Verify(bearer_token, clock_->Now(), options);
  if (!verified.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("admin token rejected: ", verified.status().message()));
  }
  return absl::OkStatus();
}

}  // namespace kbs::admin
