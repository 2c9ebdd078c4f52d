#include "kbs/token/token_service.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "policy/claims.h"

namespace kbs::token {
namespace {

using common::Json;

constexpr absl::string_view kAnnotated = "ear.veraison.annotated-evidence";

Json Submodule(const verifier::VerifiedClaims& claims, Json annotated) {
  annotated[claims.tee()] = claims.claims();
  return Json{{"ear.status", std::string(claims.trust_vector().Status())},
              {"ear.trustworthiness-vector", claims.trust_vector().ToJson()},
              {"ear.appraisal-policy-id", "default"},
              {std::string(kAnnotated), std::move(annotated)}};
}

absl::Status Invalid(absl::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("attestation token: ", what));
}

}  // namespace

absl::StatusOr<common::EvpPkeyPtr> LoadOrCreateSigningKey(const std::string& path) {
  return common::LoadOrCreatePrivateKey(
      path, [] { return common::GenerateEcKey(common::EcCurve::kP256); }, "token signing key");
}

TokenService::TokenService(std::unique_ptr<jose::JwtSigner> signer, jose::JwtVerifier verifier,
                           Options options, const common::Clock* clock)
    : signer_(std::move(signer)),
      verifier_(std::move(verifier)),
      options_(std::move(options)),
      clock_(clock) {
  jwks_ = Json{{"keys", Json::array({signer_->public_jwk()})}};
}

absl::StatusOr<std::unique_ptr<TokenService>> TokenService::Create(common::EvpPkeyPtr signing_key,
                                                                   Options options,
                                                                   const common::Clock* clock) {
  auto curve = common::GetEcCurve(signing_key.get());
  if (!curve.ok() || *curve != common::EcCurve::kP256) {
    return absl::InvalidArgumentError("the token signing key must be EC P-256 (ES256)");
  }
  KBS_ASSIGN_OR_RETURN(std::string pub_pem, common::PublicKeyToPem(signing_key.get()));
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr pub, common::PublicKeyFromPem(pub_pem));
  jose::JwtVerifier verifier;
  KBS_RETURN_IF_ERROR(verifier.AddKey(std::move(pub)));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<jose::JwtSigner> signer,
                       jose::JwtSigner::Create(std::move(signing_key)));
  return std::unique_ptr<TokenService>(
      new TokenService(std::move(signer), std::move(verifier), std::move(options), clock));
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> TokenService::Issue(
    const AttestationRecord& record) const {
  if (record.primary == nullptr || record.tee_pubkey == nullptr) {
    return absl::InternalError("token: incomplete attestation record");
  }
  absl::Time now = clock_->Now();
  absl::Time exp = now + options_.lifetime;
  KBS_ASSIGN_OR_RETURN(std::string jti_raw, common::RandomString(16));
  std::string jti = common::HexEncode(jti_raw);

  auto result = std::make_shared<AttestationResult>();
  Json runtime = {{"nonce", record.nonce}, {"tee-pubkey", record.tee_pubkey->ToJson()}};
  Json annotated = {{"report_data", common::HexEncode(record.report_data)},
                    {"runtime_data_claims", runtime}};
  if (!record.evidence_sha256.empty()) annotated["evidence_sha256"] = record.evidence_sha256;
  if (record.init_data_digest.has_value()) {
    annotated["init_data"] = common::HexEncode(*record.init_data_digest);
    annotated["init_data_claims"] = record.init_data_claims;
  }
  Json submods = Json::object();
  submods["cpu0"] = Submodule(*record.primary, std::move(annotated));
  if (record.container_images.has_value()) {
    submods["cpu0"]["ear.trustee.identifiers"] = {
        {"validated",
         {{"container_images", *record.container_images},
          {"agent_policy_rules_sha256", common::HexEncode(record.agent_policy_rules_digest)}}}};
  }
  result->tees.push_back(record.primary->tee());
  std::map<std::string, int> per_class;
  for (const AttestationRecord::Device& device : record.devices) {
    int index = per_class[device.tee_class]++;
    Json device_annotated = {{"runtime_data_claims", runtime}};
    submods[absl::StrCat(device.tee_class, index)] =
        Submodule(*device.claims, std::move(device_annotated));
    result->tees.push_back(device.claims->tee());
  }
  result->claims =
      Json{{"eat_profile", std::string(kEatProfile)},
           {"iat", absl::ToUnixSeconds(now)},
           {"exp", absl::ToUnixSeconds(exp)},
           {"iss", options_.issuer},
           {"jti", jti},
           {"ear.verifier-id",
            {{"developer", "https://confidentialcontainers.org"}, {"build", options_.build}}},
           {"submods", std::move(submods)}};
  result->claims_json = common::DumpJson(result->claims);
  KBS_ASSIGN_OR_RETURN(result->token, signer_->SignPayload(result->claims_json));
  result->tee_pubkey = *record.tee_pubkey;
  result->token_id = std::move(jti);
  // Second resolution, as the token states it.
  result->expires = absl::FromUnixSeconds(absl::ToUnixSeconds(exp));
  return result;
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> TokenService::Verify(
    absl::string_view token) const {
  jose::JwtValidationOptions validation;
  validation.issuer = options_.issuer;
  auto verified = verifier_.Verify(token, clock_->Now(), validation);
  if (!verified.ok()) {
    return absl::UnauthenticatedError(
        absl::StrCat("attestation token rejected: ", verified.status().message()));
  }
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<AttestationResult> result,
                       ResultFromEarClaims(verified->claims()));
  result->token = std::string(token);
  return std::shared_ptr<const AttestationResult>(std::move(result));
}

absl::StatusOr<std::shared_ptr<AttestationResult>> ResultFromEarClaims(Json claims) {
  auto result = std::make_shared<AttestationResult>();
  // The layout is read in one place (policy/claims.h), as the policy reads it.
  auto submodules = policy::EarSubmodules(claims);
  if (!submodules.ok()) return Invalid(submodules.status().message());
  for (const policy::EarSubmodule& m : *submodules) result->tees.push_back(m.tee);
  const Json* runtime = common::FindMember(*submodules->front().annotated, "runtime_data_claims");
  const Json* pubkey = runtime != nullptr ? common::FindMember(*runtime, "tee-pubkey") : nullptr;
  if (pubkey == nullptr) return Invalid("no tee-pubkey in runtime_data_claims");
  auto key = jose::TeePublicKey::FromJson(*pubkey);
  if (!key.ok()) return Invalid(key.status().message());
  result->tee_pubkey = *std::move(key);
  if (const Json* jti = common::FindMember(claims, "jti"); jti != nullptr && jti->is_string()) {
    result->token_id = jti->get<std::string>();
  }
  if (const Json* exp = common::FindMember(claims, "exp"); exp != nullptr && exp->is_number()) {
    result->expires = absl::FromUnixSeconds(exp->get<int64_t>());
  }
  result->claims = std::move(claims);
  return result;
}

}  // namespace kbs::token
