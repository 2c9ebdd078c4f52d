#include "kbs/client/sample_attester.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/jcs.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "kbs/core/init_data.h"

namespace kbs::client {
namespace {

using common::Json;

absl::StatusOr<std::string> Base64Digest(const Json& runtime) {
  KBS_ASSIGN_OR_RETURN(std::string canonical, common::CanonicalizeJson(runtime));
  return common::Digest(common::HashAlgorithm::kSha384, canonical);
}

}  // namespace

absl::StatusOr<TeeKeyType> ParseTeeKeyType(absl::string_view name) {
  if (name == "ec-p256") return TeeKeyType::kEcP256;
  if (name == "ec-p521") return TeeKeyType::kEcP521;
  if (name == "rsa") return TeeKeyType::kRsa;
  return absl::InvalidArgumentError(
      absl::StrCat("unknown key type \"", name, "\" (ec-p256, ec-p521 or rsa)"));
}

absl::StatusOr<TeeKeyPair> TeeKeyPair::Generate(TeeKeyType type) {
  common::EvpPkeyPtr key;
  jose::KeyManagement alg = jose::KeyManagement::kEcdhEsA256Kw;
  switch (type) {
    case TeeKeyType::kEcP256: {
      KBS_ASSIGN_OR_RETURN(key, common::GenerateEcKey(common::EcCurve::kP256));
      break;
    }
    case TeeKeyType::kEcP521: {
      KBS_ASSIGN_OR_RETURN(key, common::GenerateEcKey(common::EcCurve::kP521));
      break;
    }
    case TeeKeyType::kRsa: {
      // The agent's RSA keys are 2048-bit, RSA-OAEP-256.
      KBS_ASSIGN_OR_RETURN(key, common::GenerateRsaKey(2048));
      alg = jose::KeyManagement::kRsaOaep256;
      break;
    }
  }
  KBS_ASSIGN_OR_RETURN(jose::TeePublicKey pub, jose::TeePublicKey::FromPublicKey(key.get(), alg));
  return TeeKeyPair(std::move(key), std::move(pub));
}

absl::StatusOr<AttestRequest> BuildSampleAttestation(absl::string_view nonce, const TeeKeyPair& key,
                                                     const SampleEvidenceOptions& options) {
  AttestRequest req;
  req.nonce = std::string(nonce);
  req.tee_pubkey = key.public_key().ToJson();
  Json device_runtime = {{"nonce", req.nonce}, {"tee-pubkey", req.tee_pubkey}};
  if (!options.devices.empty()) {
    KBS_ASSIGN_OR_RETURN(std::string device_digest, Base64Digest(device_runtime));
    Json devices = Json::object();
    for (const std::string& device : options.devices) {
      devices[device] = Json{{"svn", "2"}, {"report_data", common::Base64Encode(device_digest)}};
    }
    req.additional_evidence = common::DumpJson(devices);
  }
  Json runtime = {{"additional-evidence", req.additional_evidence},
                  {"nonce", req.nonce},
                  {"tee-pubkey", req.tee_pubkey}};
  KBS_ASSIGN_OR_RETURN(std::string digest, Base64Digest(runtime));
  if (options.tamper_report_data) digest[0] ^= 1;
  Json evidence = {{"svn", "1"}, {"report_data", common::Base64Encode(digest)}};
  if (options.init_data_toml.has_value()) {
    req.init_data = InitDataSpec{"toml", *options.init_data_toml};
    if (options.bind_init_data) {
      KBS_ASSIGN_OR_RETURN(InitData parsed, ParseInitData("toml", *options.init_data_toml));
      evidence["init_data"] = common::HexEncode(parsed.digest);
    }
  }
  if (!options.claims.empty()) evidence["claims"] = options.claims;
  req.primary_evidence = std::move(evidence);
  return req;
}

absl::StatusOr<AttestRequest> BuildAttestation(absl::string_view nonce, const TeeKeyPair& key,
                                               const EvidenceMaker& make_evidence,
                                               const std::optional<std::string>& init_data_toml) {
  AttestRequest req;
  req.nonce = std::string(nonce);
  req.tee_pubkey = key.public_key().ToJson();
  Json runtime = {
      {"additional-evidence", ""}, {"nonce", req.nonce}, {"tee-pubkey", req.tee_pubkey}};
  KBS_ASSIGN_OR_RETURN(std::string digest, Base64Digest(runtime));
  std::optional<std::string> init_digest;
  if (init_data_toml.has_value()) {
    req.init_data = InitDataSpec{"toml", *init_data_toml};
    KBS_ASSIGN_OR_RETURN(InitData parsed, ParseInitData("toml", *init_data_toml));
    init_digest = parsed.digest;
  }
  KBS_ASSIGN_OR_RETURN(req.primary_evidence, make_evidence(digest, init_digest));
  return req;
}

std::string AuthRequestJson(absl::string_view tee) {
  return common::DumpJson(
      Json{{"version", std::string(kProtocolVersion)},
           {"tee", std::string(tee)},
           {"extra-params",
            {{"supported-hash-algorithms", Json::array({"sha256", "sha384", "sha512"})}}}});
}

std::string AttestRequestJson(const AttestRequest& request) {
  // Serialized piecewise so the (possibly large) evidence is not copied.
  std::string body = absl::StrCat(
      "{",
      request.init_data.has_value()
          ? absl::StrCat("\"init-data\":",
                         common::DumpJson(Json{{"format", request.init_data->format},
                                               {"body", request.init_data->body}}),
                         ",")
          : "",
      "\"runtime-data\":",
      common::DumpJson(Json{{"nonce", request.nonce}, {"tee-pubkey", request.tee_pubkey}}),
      ",\"tee-evidence\":{\"primary_evidence\":", common::DumpJson(request.primary_evidence),
      ",\"additional_evidence\":", common::DumpJson(Json(request.additional_evidence)), "}}");
  return body;
}

absl::StatusOr<std::string> DecryptResource(absl::string_view jwe_json, const TeeKeyPair& key) {
  KBS_ASSIGN_OR_RETURN(Json json, common::ParseJson(jwe_json));
  KBS_ASSIGN_OR_RETURN(jose::FlattenedJwe jwe, jose::FlattenedJwe::FromJson(json));
  KBS_ASSIGN_OR_RETURN(common::SecretBytes plain, jose::JweDecrypt(jwe, key.private_key()));
  return common::ToString(plain.span());
}

}  // namespace kbs::client
