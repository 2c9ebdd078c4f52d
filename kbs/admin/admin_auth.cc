#include "kbs/admin/admin_auth.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/status_macros.h"

namespace kbs::admin {

absl::StatusOr<std::unique_ptr<AdminAuthenticator>> AdminAuthenticator::Create(
    const std::vector<std::string>& public_key_pems, const common::Clock* clock, std::string role) {
  jose::JwtVerifier verifier;
  std::vector<std::string> thumbprints;
  for (const std::string& pem : public_key_pems) {
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, common::PublicKeyFromPem(pem));
    auto thumbprint = jose::JwkThumbprint(key.get());
    if (!thumbprint.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat(role, " public key: ", thumbprint.status().message()));
    }
    absl::Status added = verifier.AddKey(std::move(key));
    if (!added.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(role, " public key: ", added.message()));
    }
    thumbprints.push_back(*std::move(thumbprint));
  }
  return std::unique_ptr<AdminAuthenticator>(
      new AdminAuthenticator(std::move(verifier), std::move(thumbprints), clock, std::move(role)));
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
        absl::StrCat(role_, " token rejected: ", verified.status().message()));
  }
  // An auditor's token is no admin's, even were a key trusted for both.
  if (const common::Json* role = common::FindMember(verified->claims(), "role");
      role != nullptr && (!role->is_string() || role->get<std::string>() != role_)) {
    return absl::UnauthenticatedError(absl::StrCat(
        role_, " token rejected: its `role` claim is ",
        role->is_string() ? absl::StrCat("\"", role->get<std::string>().substr(0, 32), "\"")
                          : std::string("not a string"),
        ", not \"", role_, "\""));
  }
  return absl::OkStatus();
}

}  // namespace kbs::admin
