#include "kbs/core/broker.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/bytes.h"
#include "common/jcs.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "kbs/core/errors.h"
#include "kbs/core/init_data.h"

namespace kbs {
namespace {

using common::Json;

constexpr size_t kMaxDevices = 16;
constexpr absl::string_view kAuthFailed = "Attestation error: RCAR handshake Auth failed: ";
constexpr absl::string_view kAttestFailed = "Attestation error: RCAR handshake Attest failed: ";

// Errors from attestation keep their code (400 for malformed input, 401 for
// failed verification, 503 for unavailable collateral) under one variant.
absl::Status AttestError(const absl::Status& cause) {
  absl::StatusCode code = cause.code();
  if (code != absl::StatusCode::kInvalidArgument && code != absl::StatusCode::kUnavailable &&
      code != absl::StatusCode::kResourceExhausted) {
    code = absl::StatusCode::kUnauthenticated;
  }
  return KbsError(code, ErrorKind::kAttestationError, absl::StrCat(kAttestFailed, cause.message()));
}

absl::StatusOr<std::string> RuntimeDataDigest(const Json& runtime, common::HashAlgorithm alg) {
  KBS_ASSIGN_OR_RETURN(std::string canonical, common::CanonicalizeJson(runtime));
  return common::Digest(alg, canonical);
}

absl::Status AdminError(const absl::Status& s) {
  return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kAdminAuthAccess, s.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Broker>> Broker::Create(Dependencies deps, Options options) {
  std::shared_ptr<const policy::PolicyEngine> engine = policy::DefaultPolicy(options.policy);
  KBS_ASSIGN_OR_RETURN(std::optional<std::string> stored, deps.policies->Load());
  if (stored.has_value()) {
    auto compiled = policy::CompilePolicy(*stored, options.policy);
    if (!compiled.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "the stored resource policy no longer compiles: ", compiled.status().message()));
    }
    engine = *std::move(compiled);
  }
  return std::unique_ptr<Broker>(new Broker(deps, options, std::move(engine)));
}

std::shared_ptr<const policy::PolicyEngine> Broker::ActivePolicy() const {
  std::lock_guard<std::mutex> lock(policy_mu_);
  return policy_;
}

absl::StatusOr<AuthResponse> Broker::Auth(const AuthRequest& request) {
  if (request.version != kProtocolVersion) {
    return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kAttestationError,
                    absl::StrCat(kAuthFailed,
                                 "KBS Client Protocol Version Mismatch: expect =", kProtocolVersion,
                                 " while the request is ", request.version.substr(0, 64)));
  }
  if (!verifier::IsKnownTee(request.tee)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    absl::StrCat("unknown TEE type \"", request.tee.substr(0, 64), "\""));
  }
  const verifier::Verifier* verifier = deps_.verifiers->Find(request.tee);
  if (verifier == nullptr) {
    std::string why =
        request.tee == "sample"
            ? std::string(
                  "the sample TEE proves nothing and is disabled on this KBS; start it "
                  "with --allow-sample-tee to enable it for testing")
            : absl::StrCat("TEE ", request.tee, " is not supported by this KBS (supported: ",
                           absl::StrJoin(deps_.verifiers->Tees(), ", "), ")");
    return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kAttestationError,
                    absl::StrCat(kAuthFailed, why));
  }
  if (verifier->tee_class() != "cpu") {
    return KbsError(
        absl::StatusCode::kInvalidArgument, ErrorKind::kAttestationError,
        absl::StrCat(kAuthFailed, request.tee, " is a device TEE; send it as additional evidence"));
  }
  // The reference KBS selects a hash only for IBM SE; every other client
  // defaults to SHA-384 when extra-params is "".
  common::HashAlgorithm hash = common::HashAlgorithm::kSha384;
  auto created = deps_.sessions->Create(request.tee, hash, deps_.clock->Now());
  if (!created.ok()) {
    return KbsError(created.status().code(), ErrorKind::kAttestationError,
                    absl::StrCat(kAuthFailed, created.status().message()));
  }
  return AuthResponse{created->id, created->nonce, Json(""), created->expires};
}

absl::StatusOr<AttestResponse> Broker::Attest(absl::string_view session_id,
                                              const AttestRequest& request) {
  if (session_id.empty()) {
    return KbsError(
        absl::StatusCode::kUnauthenticated, ErrorKind::kAttestationError,
        absl::StrCat(kAttestFailed, "cookie not found (kbs-session-id); call /auth first"));
  }
  auto challenge = deps_.sessions->ClaimChallenge(session_id, deps_.clock->Now());
  if (!challenge.ok()) return AttestError(challenge.status());

  // Fail closed: the session's nonce is now spent whatever happens below.
  const verifier::Verifier* primary = deps_.verifiers->Find(challenge->tee);
  if (primary == nullptr) {
    return AttestError(
        absl::UnauthenticatedError(absl::StrCat("TEE ", challenge->tee, " is no longer enabled")));
  }
  if (!common::ConstantTimeEquals(challenge->nonce, request.nonce)) {
    return AttestError(
        absl::UnauthenticatedError("runtime-data nonce does not match the session's challenge"));
  }
  auto tee_key = jose::TeePublicKey::FromJson(request.tee_pubkey);
  if (!tee_key.ok()) return AttestError(tee_key.status());
  const Json pubkey_json = tee_key->ToJson();

  // kbs-protocol.md §2.4: the primary evidence binds the nonce, the TEE key
  // (re-serialized from its typed form) and the whole additional-evidence
  // string; each device binds the nonce and the key.
  verifier::EvidenceBinding binding;
  binding.hash_algorithm = challenge->hash_algorithm;
  Json primary_runtime = {{"additional-evidence", request.additional_evidence},
                          {"nonce", request.nonce},
                          {"tee-pubkey", pubkey_json}};
  auto report_data = RuntimeDataDigest(primary_runtime, binding.hash_algorithm);
  if (!report_data.ok()) return AttestError(report_data.status());
  binding.report_data = *report_data;

  std::optional<InitData> init_data;
  if (request.init_data.has_value()) {
    auto parsed = ParseInitData(request.init_data->format, request.init_data->body);
    if (!parsed.ok()) return AttestError(parsed.status());
    init_data = *std::move(parsed);
    binding.init_data_digest = init_data->digest;
  }

  auto primary_claims = primary->Verify(request.primary_evidence, binding);
  if (!primary_claims.ok()) return AttestError(primary_claims.status());

  std::vector<verifier::VerifiedClaims> device_claims;
  std::vector<std::string> device_classes;
  if (!request.additional_evidence.empty()) {
    auto devices = common::ParseJson(request.additional_evidence);
    if (!devices.ok() || !devices->is_object()) {
      return AttestError(absl::InvalidArgumentError(
          "additional_evidence must be a JSON object of {\"<tee>\": <evidence>}"));
    }
    if (devices->size() > kMaxDevices) {
      return AttestError(absl::InvalidArgumentError(
          absl::StrCat("additional_evidence lists more than ", kMaxDevices, " devices")));
    }
    verifier::EvidenceBinding device_binding;
    device_binding.hash_algorithm = binding.hash_algorithm;
    auto device_digest = RuntimeDataDigest(
        Json{{"nonce", request.nonce}, {"tee-pubkey", pubkey_json}}, binding.hash_algorithm);
    if (!device_digest.ok()) return AttestError(device_digest.status());
    device_binding.report_data = *device_digest;
    for (auto it = devices->begin(); it != devices->end(); ++it) {
      if (!verifier::IsKnownTee(it.key())) {
        return AttestError(absl::InvalidArgumentError(absl::StrCat(
            "additional_evidence: unknown TEE type \"", it.key().substr(0, 64), "\"")));
      }
      const verifier::Verifier* device = deps_.verifiers->Find(it.key());
      if (device == nullptr || device->tee_class() == "cpu") {
        return AttestError(absl::UnauthenticatedError(absl::StrCat(
            "additional_evidence: device TEE ", it.key(), " is not supported by this KBS")));
      }
      auto claims = device->Verify(it.value(), device_binding);
      if (!claims.ok()) return AttestError(claims.status());
      device_claims.push_back(*std::move(claims));
      device_classes.emplace_back(device->tee_class());
    }
  }

  token::AttestationRecord record;
  record.primary = &*primary_claims;
  for (size_t i = 0; i < device_claims.size(); ++i) {
    record.devices.push_back({device_classes[i], &device_claims[i]});
  }
  record.nonce = request.nonce;
  record.tee_pubkey = &*tee_key;
  record.report_data = binding.report_data;
  if (init_data.has_value()) {
    record.init_data_digest = init_data->digest;
    record.init_data_claims = init_data->claims;
  }
  auto result = deps_.tokens->Issue(record);
  if (!result.ok()) return AttestError(result.status());
  AttestResponse response{(*result)->token, (*result)->expires, challenge->session_expires};
  absl::Status stored =
      deps_.sessions->CompleteAttestation(session_id, (*result)->claims_json, (*result)->expires);
  if (!stored.ok()) return AttestError(stored);
  KBS_LOG(kDebug, "attested tee=", challenge->tee,
          " status=", primary_claims->trust_vector().Status());
  return response;
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> Broker::Authenticate(
    const Credentials& credentials, absl::Time now) {
  // Cookie first, as the reference KBS does; then the Bearer token.
  if (!credentials.session_id.empty()) {
    if (std::optional<std::string> claims =
            deps_.sessions->GetAttested(credentials.session_id, now)) {
      // Our own claims, stored at attestation: no signature to check.
      auto parsed = common::ParseTrustedJson(*claims);
      if (!parsed.ok()) return parsed.status();
      auto result = token::ResultFromEarClaims(*std::move(parsed));
      if (!result.ok()) return result.status();
      return std::shared_ptr<const AttestationResult>(*std::move(result));
    }
  }
  if (!credentials.bearer_token.empty()) {
    auto result = deps_.tokens->Verify(credentials.bearer_token);
    if (!result.ok()) {
      return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kTokenVerifierError,
                      result.status().message());
    }
    return result;
  }
  return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kTokenNotFound,
                  credentials.session_id.empty()
                      ? "no kbs-session-id cookie and no Authorization: Bearer token"
                      : "the kbs-session-id session is unknown, expired or not attested, and no "
                        "Authorization: Bearer token was sent");
}

absl::StatusOr<jose::FlattenedJwe> Broker::GetResource(const Credentials& credentials,
                                                       absl::string_view path) {
  absl::Time now = deps_.clock->Now();
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<const AttestationResult> attested,
                       Authenticate(credentials, now));
  if (!IsValidResourcePath(path)) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>");
  }
  std::shared_ptr<const policy::PolicyEngine> engine = ActivePolicy();
  policy::PolicyInput input;
  input.resource_path = std::string(path);
  input.tees = attested->tees;
  input.claims = &attested->claims;
  auto decision = engine->Evaluate(input);
  if (!decision.ok()) {
    KBS_LOG(kError, "policy engine failed for ", path, ": ", decision.status().message());
    return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPolicyEngineError,
                    "the release policy could not be evaluated");
  }
  if (!decision->allow) {
    KBS_LOG(kInfo, "deny resource=", path, " tee=", attested->primary_tee(),
            " policy=", decision->policy_id, " rule=", decision->rule,
            " token=", attested->token_id, " reason=", decision->reason);
    return KbsError(absl::StatusCode::kPermissionDenied, ErrorKind::kPolicyDeny,
                    absl::StrCat("resource ", path, " denied by policy ", decision->policy_id,
                                 " (rule ", decision->rule, "): ", decision->reason));
  }
  auto value = deps_.keys->Get(path);
  if (!value.ok()) {
    if (value.status().code() == absl::StatusCode::kNotFound) {
      return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                      absl::StrCat("resource ", path, " not found"));
    }
    KBS_LOG(kError, "key store failed for ", path, ": ", value.status().message());
    return KbsError(value.status().code() == absl::StatusCode::kUnavailable
                        ? absl::StatusCode::kUnavailable
                        : absl::StatusCode::kInternal,
                    ErrorKind::kPluginInternalError,
                    absl::StrCat("resource ", path, " could not be read from the key store"));
  }
  auto jwe = jose::JweEncrypt(*attested->tee_pubkey, value->span());
  if (!jwe.ok()) {
    return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kJweError,
                    absl::StrCat("cannot encrypt to the TEE key: ", jwe.status().message()));
  }
  KBS_LOG(kDebug, "release resource=", path, " tee=", attested->primary_tee(),
          " token=", attested->token_id);
  return jwe;
}

absl::StatusOr<keystore::ResourceMetadata> Broker::PutResource(absl::string_view admin_token,
                                                               absl::string_view path,
                                                               absl::string_view value) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  if (!IsValidResourcePath(path)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>, each "
                    "[A-Za-z0-9_.-] not starting with '.'");
  }
  auto md = deps_.keys->Put(path, common::AsSpan(value));
  if (!md.ok()) return WithKind(md.status(), ErrorKind::kPluginInternalError);
  KBS_LOG(kInfo, "admin put resource=", path, " bytes=", value.size());
  return md;
}

absl::Status Broker::DeleteResource(absl::string_view admin_token, absl::string_view path) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  if (!IsValidResourcePath(path)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>");
  }
  absl::Status s = deps_.keys->Delete(path);
  if (!s.ok()) return WithKind(s, ErrorKind::kPluginInternalError);
  KBS_LOG(kInfo, "admin delete resource=", path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<keystore::ResourceMetadata>> Broker::ListResources(
    absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto list = deps_.keys->List();
  if (!list.ok()) return WithKind(list.status(), ErrorKind::kPluginInternalError);
  return list;
}

absl::StatusOr<std::string> Broker::SetPolicy(absl::string_view admin_token,
                                              absl::string_view document) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto compiled = policy::CompilePolicy(document, options_.policy);
  if (!compiled.ok()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kParsePolicyError,
                    compiled.status().message());
  }
  std::shared_ptr<const policy::PolicyEngine> engine = *std::move(compiled);
  // Persist first: an activated policy must survive a restart.
  absl::Status saved = deps_.policies->Save(common::DumpJson(engine->document()));
  if (!saved.ok()) return WithKind(saved, ErrorKind::kPolicyEngineError);
  std::string id = engine->id();
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    policy_ = std::move(engine);
  }
  KBS_LOG(kInfo, "admin set policy=", id);
  return id;
}

absl::StatusOr<Json> Broker::GetPolicy(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::shared_ptr<const policy::PolicyEngine> engine = ActivePolicy();
  return Json{{"id", engine->id()}, {"policy", engine->document()}};
}

}  // namespace kbs
