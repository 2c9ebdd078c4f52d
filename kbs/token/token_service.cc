#include "kbs/token/token_service.h"

#include <algorithm>
#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "common/log.h"
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

// The primary TEE's launch measurement, as the `measurement` claim states it.
std::string PrimaryMeasurement(const verifier::VerifiedClaims& claims) {
  for (const char* name : {"measurement", "mr_td", "mr_enclave"}) {
    const Json* v = common::FindMember(claims.claims(), name);
    if (v != nullptr && v->is_string()) return v->get<std::string>();
  }
  return "";
}

absl::Status Invalid(absl::string_view what) {
  return absl::UnauthenticatedError(absl::StrCat("attestation token: ", what));
}

}  // namespace

absl::StatusOr<std::unique_ptr<TokenService>> TokenService::Create(
    std::unique_ptr<SigningKeyRing> keys, Options options, const common::Clock* clock) {
  if (keys == nullptr) return absl::InvalidArgumentError("token service: no signing keys");
  // Retired keys must stay published as long as the tokens they signed live.
  if (keys->options().token_lifetime < options.lifetime ||
      keys->options().clock_skew < options.clock_skew) {
    return absl::InvalidArgumentError(
        "token service: the signing-key ring keeps retired keys for a shorter lifetime or clock "
        "skew than tokens are issued with");
  }
  std::unique_ptr<TokenService> service(
      new TokenService(std::move(keys), std::move(options), clock));
  const std::vector<std::string>& aud = service->options_.audience;
  for (const std::string& a : aud) {
    if (a.empty()) return absl::InvalidArgumentError("token audience: empty value");
  }
  if (aud.size() == 1) service->audience_ = aud.front();
  if (aud.size() > 1) service->audience_ = aud;
  absl::MutexLock lock(&service->ring_mu_);
  KBS_RETURN_IF_ERROR(service->Reload());
  return service;
}

absl::StatusOr<std::unique_ptr<TokenService>> TokenService::Create(common::EvpPkeyPtr signing_key,
                                                                   Options options,
                                                                   const common::Clock* clock) {
  SigningKeyRing::Options ring_options;
  ring_options.token_lifetime = options.lifetime;
  ring_options.clock_skew = options.clock_skew;
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<SigningKeyRing> ring,
                       SigningKeyRing::FromKey(std::move(signing_key), ring_options, clock->Now()));
  return Create(std::move(ring), std::move(options), clock);
}

absl::Status TokenService::Reload() {
  auto set = std::make_shared<KeySet>();
  absl::Time now = clock_->Now();
  // The ring owns its keys; the signer gets its own reference.
  common::EvpPkeyPtr current = common::ShareKey(ring_->current_key());
  if (current == nullptr) return absl::InternalError("token service: EVP_PKEY_up_ref failed");
  KBS_ASSIGN_OR_RETURN(set->signer, jose::JwtSigner::Create(std::move(current)));
  for (const EVP_PKEY* key : ring_->VerificationKeys(now)) {
    KBS_ASSIGN_OR_RETURN(std::string pem, common::PublicKeyToPem(key));
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr pub, common::PublicKeyFromPem(pem));
    KBS_RETURN_IF_ERROR(set->verifier.AddKey(std::move(pub)));
  }
  std::vector<SigningKeyInfo> infos = ring_->Keys();
  for (const EVP_PKEY* key : ring_->PublishedKeys(now)) {
    KBS_ASSIGN_OR_RETURN(Json jwk, jose::PublicJwk(key));
    std::optional<absl::Time> until;
    for (const SigningKeyInfo& info : infos) {
      if (info.kid == jwk.value("kid", "")) until = info.published_until;
    }
    set->published.emplace_back(until, std::move(jwk));
  }
  absl::MutexLock lock(&set_mu_);
  key_set_ = std::move(set);
  return absl::OkStatus();
}

std::shared_ptr<const TokenService::KeySet> TokenService::key_set() const {
  absl::MutexLock lock(&set_mu_);
  return key_set_;
}

absl::StatusOr<SigningKeyRotation> TokenService::RotateSigningKey() {
  absl::MutexLock lock(&ring_mu_);
  return RotateLocked();
}

absl::StatusOr<SigningKeyRotation> TokenService::RotateLocked() {
  KBS_ASSIGN_OR_RETURN(SigningKeyRotation rotation, ring_->Rotate(clock_->Now()));
  KBS_RETURN_IF_ERROR(Reload());
  KBS_LOG(kInfo, "token signing key rotated: ", rotation.current, " signs, ", rotation.retired,
          " retired");
  return rotation;
}

absl::Status TokenService::RotateIfDue() {
  if (options_.key_rotation_interval <= absl::ZeroDuration()) return absl::OkStatus();
  // Checked and done under one lock: a rotation requested meanwhile is not
  // followed by a second one that would promote a key published a moment ago.
  absl::MutexLock lock(&ring_mu_);
  if (clock_->Now() - ring_->current_since() < options_.key_rotation_interval) {
    return absl::OkStatus();
  }
  return RotateLocked().status();
}

std::vector<SigningKeyInfo> TokenService::SigningKeys() const {
  absl::MutexLock lock(&ring_mu_);
  return ring_->Keys();
}

Json TokenService::Jwks() const {
  std::shared_ptr<const KeySet> set = key_set();
  absl::Time now = clock_->Now();
  Json keys = Json::array();
  for (const auto& [until, jwk] : set->published) {
    if (!until.has_value() || *until > now) keys.push_back(jwk);
  }
  return Json{{"keys", std::move(keys)}};
}

absl::StatusOr<Json> TokenService::OpenIdConfiguration() const {
  absl::string_view issuer = options_.issuer;
  if (!absl::StartsWith(issuer, "https://") && !absl::StartsWith(issuer, "http://")) {
    return absl::NotFoundError(
        "OIDC discovery is off: [token] issuer must be the KBS's http(s) URL");
  }
  std::string jwks_uri = options_.jwks_uri;
  if (jwks_uri.empty()) {
    absl::string_view base = issuer;
    while (absl::ConsumeSuffix(&base, "/")) {
    }
    jwks_uri = absl::StrCat(base, "/.well-known/jwks.json");
  }
  return Json{{"issuer", options_.issuer},
              {"jwks_uri", jwks_uri},
              {"response_types_supported", {"id_token"}},
              {"subject_types_supported", {"public"}},
              {"id_token_signing_alg_values_supported", {"ES256"}},
              {"scopes_supported", {"openid"}},
              {"claims_supported",
               {"iss", "sub", "aud", "exp", "iat", "jti", "tee", "measurement", "ear_status",
                "image_digests", "policy_version", "receipt_index", "eat_profile", "submods"}}};
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> TokenService::Issue(
    const AttestationRecord& record) const {
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<AttestationResult> result, Prepare(record));
  KBS_RETURN_IF_ERROR(Sign(*result, std::nullopt));
  return std::shared_ptr<const AttestationResult>(std::move(result));
}

absl::StatusOr<std::shared_ptr<AttestationResult>> TokenService::Prepare(
    const AttestationRecord& record) const {
  if (record.primary == nullptr || record.tee_pubkey == nullptr) {
    return absl::InternalError("token: incomplete attestation record");
  }
  absl::Time now = clock_->Now();
  absl::Time exp = now + options_.lifetime;
  // The issue time in microseconds (8 bytes, big endian), then 16 random
  // bytes: ids sort by time, so the evidence kept under them is appended
  // (ReceiptLog::StoreEvidence), not inserted at random.
  KBS_ASSIGN_OR_RETURN(std::string jti_raw, common::RandomString(16));
  const auto micros = static_cast<uint64_t>(std::max<int64_t>(absl::ToUnixMicros(now), 0));
  std::string stamp(8, '\0');
  for (int i = 0; i < 8; ++i) stamp[i] = static_cast<char>(micros >> (56 - 8 * i));
  std::string jti = common::HexEncode(stamp + jti_raw);

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
  // The flat claims OIDC relying parties bind on (Vault bound_claims, cloud
  // attribute mappings).
  Json& c = result->claims;
  const std::string measurement = PrimaryMeasurement(*record.primary);
  c["sub"] = absl::StrCat(record.primary->tee(), ":", measurement);
  if (!audience_.is_null()) c["aud"] = audience_;
  c["tee"] = record.primary->tee();
  c["measurement"] = measurement;
  // The measurement does not say whether the guest is debuggable; its
  // appraisal does (debug guests are never "affirming").
  c["ear_status"] = std::string(record.primary->trust_vector().Status());
  c["image_digests"] = record.image_digests;
  if (!record.policy_version.empty()) c["policy_version"] = record.policy_version;
  result->tee_pubkey = *record.tee_pubkey;
  result->token_id = std::move(jti);
  // Second resolution, as the token states it.
  result->expires = absl::FromUnixSeconds(absl::ToUnixSeconds(exp));
  return result;
}

absl::Status TokenService::Sign(AttestationResult& result,
                                std::optional<uint64_t> receipt_index) const {
  if (receipt_index.has_value()) result.claims["receipt_index"] = *receipt_index;
  result.claims_json = common::DumpJson(result.claims);
  std::shared_ptr<const KeySet> set = key_set();
  KBS_ASSIGN_OR_RETURN(result.token, set->signer->SignPayload(result.claims_json));
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> TokenService::Verify(
    absl::string_view token) const {
  jose::JwtValidationOptions validation;
  validation.issuer = options_.issuer;
  std::shared_ptr<const KeySet> set = key_set();
  auto verified = set->verifier.Verify(token, clock_->Now(), validation);
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
