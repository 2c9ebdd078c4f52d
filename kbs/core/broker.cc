#include "kbs/core/broker.h"

#include <map>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/jcs.h"
#include "common/keys.h"
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

// The registers and identities a receipt states, from the verified claims.
void FillReceiptClaims(const policy::ClaimSet& claims, receipts::Receipt& r) {
  static constexpr absl::string_view kRegisters[] = {
      "snp.measurement", "tdx.mr_td",      "tdx.rtmr_0",    "tdx.rtmr_1",        "tdx.rtmr_2",
      "tdx.rtmr_3",      "sgx.mr_enclave", "sgx.mr_signer", "sample.measurement"};
  for (absl::string_view reg : kRegisters) {
    const policy::Value* v = claims.root.FindPath(reg);
    if (v != nullptr && v->is_string()) r.measurements.emplace_back(reg, v->string_value());
  }
  if (claims.images.has_value()) {
    for (const policy::PodImage& image : *claims.images) r.images.push_back(image.reference);
  }
  if (const policy::Value* v = claims.root.Find("tcb_status"); v != nullptr && v->is_string()) {
    r.tcb_status = v->string_value();
  }
  for (absl::string_view id : {"snp.chip_id", "tdx.platform_id", "sgx.platform_id"}) {
    const policy::Value* v = claims.root.FindPath(id);
    if (v != nullptr && v->is_string()) {
      r.chip_id = v->string_value();
      break;
    }
  }
  if (const policy::Value* v = claims.root.Find("evidence_sha256");
      v != nullptr && v->is_string()) {
    r.evidence_sha256 = v->string_value();
  }
}

absl::Status AdminError(const absl::Status& s) {
  return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kAdminAuthAccess, s.message());
}

}  // namespace

absl::StatusOr<std::unique_ptr<Broker>> Broker::Create(Dependencies deps, Options options) {
  std::unique_ptr<Broker> broker(new Broker(deps, options));
  KBS_RETURN_IF_ERROR(broker->LoadPolicies());
  return broker;
}

absl::StatusOr<std::unique_ptr<policy::PolicyEngine>> Broker::CompileStored(absl::string_view id) {
  KBS_ASSIGN_OR_RETURN(std::optional<StoredPolicy> stored, deps_.policies->Get(id));
  if (!stored.has_value()) {
    return absl::DataLossError(absl::StrCat("policy version ", id,
                                            " is recorded as in use but "
                                            "is not stored"));
  }
  auto compiled = policy::CompilePolicy(stored->source, options_.policy);
  if (!compiled.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(
        "the stored policy version ", id, " no longer compiles: ", compiled.status().message()));
  }
  return compiled;
}

absl::Status Broker::LoadPolicies() {
  PolicySnapshot snap;
  snap.active = policy::DefaultPolicy(options_.policy);
  KBS_ASSIGN_OR_RETURN(PolicyState state, deps_.policies->LoadState());
  if (state.active.has_value()) {
    KBS_ASSIGN_OR_RETURN(snap.active, CompileStored(*state.active));
  } else {
    // A database from the first release keeps its single document.
    KBS_ASSIGN_OR_RETURN(std::optional<std::string> legacy, deps_.policies->LoadLegacy());
    if (legacy.has_value()) {
      auto compiled = policy::CompilePolicy(*legacy, options_.policy);
      if (!compiled.ok()) {
        return absl::FailedPreconditionError(absl::StrCat(
            "the stored resource policy no longer compiles: ", compiled.status().message()));
      }
      KBS_RETURN_IF_ERROR(deps_.policies->SaveAndActivate((*compiled)->id(), *legacy, "active"));
      snap.active = *std::move(compiled);
    }
  }
  if (state.shadow.has_value()) {
    // A shadow version never grants, so one that no longer compiles (e.g.
    // under tighter limits) is dropped rather than stopping the KBS.
    auto shadow = CompileStored(*state.shadow);
    if (shadow.ok()) {
      snap.shadow = *std::move(shadow);
    } else {
      KBS_LOG(kWarning, "shadow policy not loaded: ", shadow.status().message());
    }
  }
  KBS_ASSIGN_OR_RETURN(auto sets, deps_.policies->LoadRefValues());
  std::vector<policy::RefValueSet> all;
  for (const auto& [name, text] : sets) {
    auto set = policy::ParseRefValueSet(name, text);
    if (!set.ok()) {
      return absl::DataLossError(absl::StrCat("stored reference-value set ", name,
                                              " is unreadable: ", set.status().message()));
    }
    refsets_[name] = *set;
    all.push_back(*std::move(set));
  }
  snap.refvalues = policy::RefValues::Create(all);
  std::lock_guard<std::mutex> lock(policy_mu_);
  policies_ = std::move(snap);
  return absl::OkStatus();
}

Broker::PolicySnapshot Broker::Policies() const {
  std::lock_guard<std::mutex> lock(policy_mu_);
  return policies_;
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
                                              const AttestRequest& request,
                                              absl::string_view client_address) {
  std::string tee, token_id;
  auto result = AttestVerified(session_id, request, client_address, tee, token_id);
  if (!result.ok() && !tee.empty()) {
    // A failed attestation is a decision too: recorded, evidence by digest.
    receipts::Receipt r;
    r.decision = "failed";
    r.reason = std::string(result.status().message()).substr(0, 1024);
    r.tee = tee;
    r.evidence_sha256 = common::HexEncode(common::Sha256(AttestEvidenceDocument(request, tee)));
    // Set when the evidence was kept (under this never-issued token's id).
    r.token_id = token_id;
    r.client_address = std::string(client_address);
    r.session_digest = common::HexEncode(common::Sha256(session_id));
    if (absl::Status s = Record(std::move(r)); !s.ok()) {
      return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kAttestationError,
                      absl::StrCat(kAttestFailed, s.message()));
    }
  }
  return result;
}

absl::StatusOr<AttestResponse> Broker::AttestVerified(absl::string_view session_id,
                                                      const AttestRequest& request,
                                                      absl::string_view client_address,
                                                      std::string& tee, std::string& token_id) {
  if (session_id.empty()) {
    return KbsError(
        absl::StatusCode::kUnauthenticated, ErrorKind::kAttestationError,
        absl::StrCat(kAttestFailed, "cookie not found (kbs-session-id); call /auth first"));
  }
  auto challenge = deps_.sessions->ClaimChallenge(session_id, deps_.clock->Now());
  if (!challenge.ok()) return AttestError(challenge.status());

  // Fail closed: the session's nonce is now spent whatever happens below.
  tee = challenge->tee;
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
    // The images the agent policy allows; the verifier has just bound the
    // init-data digest to the hardware field, so they are the pod's.
    if (init_data->has_agent_policy) {
      std::vector<std::string> refs;
      for (const ContainerImage& image : init_data->images) {
        refs.push_back(image.reference);
        if (image.digest.has_value()) record.image_digests.push_back(*image.digest);
      }
      record.container_images = std::move(refs);
      record.agent_policy_rules_digest = init_data->agent_policy_rules_digest;
    }
  }
  std::string evidence;  // the document auditors can re-verify later
  if (deps_.receipts != nullptr) {
    evidence = AttestEvidenceDocument(request, tee);
    record.evidence_sha256 = common::HexEncode(common::Sha256(evidence));
  }
  if (PolicySnapshot policies = Policies(); policies.active != nullptr) {
    record.policy_version = policies.active->id();
  }
  auto result = deps_.tokens->Prepare(record);
  if (!result.ok()) return AttestError(result.status());
  if (deps_.receipts != nullptr) {
    // Kept under the token's id, written no later than the receipts that
    // name it.
    absl::Status stored =
        deps_.receipts->StoreEvidence((*result)->token_id, evidence, record.evidence_sha256);
    if (!stored.ok()) return AttestError(stored);
    token_id = (*result)->token_id;  // a failure from here on names it
  }
  std::optional<uint64_t> receipt_index;
  if (deps_.receipts != nullptr && options_.record_attestations) {
    // The token names its receipt, so the receipt comes first (durable, fail
    // closed: no receipt, no token).
    receipts::Receipt r;
    r.decision = "attested";
    r.reason = absl::StrCat("evidence verified (ear.status ",
                            primary_claims->trust_vector().Status(), ")");
    r.tee = challenge->tee;
    auto claims = policy::ClaimsFromEar((*result)->claims);
    if (!claims.ok()) return AttestError(claims.status());
    FillReceiptClaims(*claims, r);
    r.evidence_sha256 = record.evidence_sha256;
    r.policy_version = record.policy_version;
    r.client_address = std::string(client_address);
    r.session_digest = common::HexEncode(common::Sha256(session_id));
    r.token_id = (*result)->token_id;
    auto appended = deps_.receipts->Append(std::move(r));
    if (!appended.ok()) {
      KBS_LOG(kError, "attestation receipt not recorded: ", appended.status().message());
      return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kAttestationError,
                      absl::StrCat(kAttestFailed, "the receipt log cannot be written: ",
                                   appended.status().message()));
    }
    receipt_index = appended->index;
  }
  if (absl::Status s = deps_.tokens->Sign(**result, receipt_index); !s.ok()) return AttestError(s);
  AttestResponse response{(*result)->token, (*result)->expires, challenge->session_expires};
  absl::Status stored =
      deps_.sessions->CompleteAttestation(session_id, (*result)->claims_json, (*result)->expires);
  if (!stored.ok()) return AttestError(stored);
  // Kept only while small: the cache is bounded in bytes as well as entries.
  if ((*result)->claims_json.size() <= kRecentResultMaxClaims) recent_.Put(session_id, *result);
  KBS_LOG(kDebug, "attested tee=", challenge->tee,
          " status=", primary_claims->trust_vector().Status());
  return response;
}

absl::StatusOr<std::shared_ptr<const AttestationResult>> Broker::Authenticate(
    const Credentials& credentials, absl::Time now) {
  // Cookie first, as the reference KBS does; then the Bearer token.
  if (!credentials.session_id.empty()) {
    // The object built at attestation, while cached, and while the session
    // store (the authority) holds the session live and attested.
    if (std::shared_ptr<const AttestationResult> cached = recent_.Get(credentials.session_id);
        cached != nullptr && deps_.sessions->IsAttested(credentials.session_id, now)) {
      return cached;
    }
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

absl::Status Broker::Record(receipts::Receipt receipt) {
  if (deps_.receipts == nullptr) return absl::OkStatus();
  auto appended = deps_.receipts->Append(std::move(receipt));
  if (!appended.ok()) {
    KBS_LOG(kError, "receipt not recorded: ", appended.status().message());
    return absl::UnavailableError(absl::StrCat("the decision could not be recorded (",
                                               appended.status().message(),
                                               "); nothing was released"));
  }
  return absl::OkStatus();
}

absl::StatusOr<Broker::ReleasedResource> Broker::GetResource(const Credentials& credentials,
                                                             absl::string_view path,
                                                             std::optional<int64_t> version) {
  absl::Time now = deps_.clock->Now();
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<const AttestationResult> attested,
                       Authenticate(credentials, now));
  if (!IsValidResourcePath(path)) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>");
  }
  receipts::Receipt receipt;
  receipt.resource = std::string(path);
  receipt.tee = attested->primary_tee();
  receipt.client_address = credentials.client_address;
  if (!credentials.session_id.empty()) {
    receipt.session_digest = common::HexEncode(common::Sha256(credentials.session_id));
  }
  receipt.token_id = attested->token_id;
  // Fail closed: every outcome below is recorded before it is answered.
  auto failed = [&](absl::Status error, absl::string_view why) -> absl::Status {
    receipt.decision = "failed";
    receipt.reason = std::string(why);
    if (absl::Status s = Record(receipt); !s.ok()) {
      return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPluginInternalError, s.message());
    }
    return error;
  };

  PolicySnapshot policies = Policies();
  auto claims = policy::ClaimsFromEar(attested->claims);
  if (!claims.ok()) {
    KBS_LOG(kError, "policy claims for ", path, ": ", claims.status().message());
    return failed(KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPolicyEngineError,
                           "the release policy could not be evaluated"),
                  absl::StrCat("policy claims: ", claims.status().message()));
  }
  FillReceiptClaims(*claims, receipt);
  policy::PolicyInput input;
  input.resource_path = path;
  input.claims = &*claims;
  input.now = now;
  input.refvalues = policies.refvalues.get();
  auto decision = policies.active->Evaluate(input);
  if (!decision.ok()) {
    KBS_LOG(kError, "policy engine failed for ", path, ": ", decision.status().message());
    return failed(KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPolicyEngineError,
                           "the release policy could not be evaluated"),
                  absl::StrCat("policy engine: ", decision.status().message()));
  }
  receipt.policy_version = decision->policy_id;
  receipt.rule = decision->rule;
  receipt.labels = decision->labels;
  decision_metrics_.Record(decision->allow ? "allow" : "deny", decision->rule, decision->labels);
  for (const policy::RuleVerdict& v : decision->shadow) {
    decision_metrics_.Record(v.allow ? "shadow_allow" : "shadow_deny", v.rule, v.labels);
    receipt.shadow.push_back({v.rule, v.allow});
    KBS_LOG(kInfo, "shadow rule=", v.rule, " would ", v.allow ? "allow" : "deny",
            " resource=", path, " token=", attested->token_id, " reason=", v.reason);
  }
  if (policies.shadow != nullptr) {
    // A whole policy version in shadow: evaluated, recorded, never grants.
    auto shadow = policies.shadow->Evaluate(input);
    if (shadow.ok()) {
      receipt.shadow.push_back(
          {absl::StrCat(shadow->policy_id, "#", shadow->rule.empty() ? "-" : shadow->rule),
           shadow->allow});
      KBS_LOG(kInfo, "shadow policy=", shadow->policy_id, " would ",
              shadow->allow ? "allow" : "deny", " resource=", path, " rule=", shadow->rule,
              " token=", attested->token_id, " reason=", shadow->reason);
    } else {
      KBS_LOG(kWarning, "shadow policy failed for ", path, ": ", shadow.status().message());
    }
  }
  if (!decision->allow) {
    receipt.decision = "denied";
    receipt.reason = decision->reason;
    if (absl::Status s = Record(receipt); !s.ok()) {
      return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPolicyDeny, s.message());
    }
    KBS_LOG(kInfo, "deny resource=", path, " tee=", attested->primary_tee(),
            " policy=", decision->policy_id, " token=", attested->token_id,
            " reason=", decision->reason);
    return KbsError(absl::StatusCode::kPermissionDenied, ErrorKind::kPolicyDeny,
                    absl::StrCat("resource ", path, " denied by policy ", decision->policy_id, ": ",
                                 decision->client_reason));
  }
  // Read the key and encrypt it to the TEE (nothing is released yet), then
  // make the grant durable, then answer: a receipt says "granted" only for
  // a key that is actually delivered.
  if (version.has_value()) receipt.key_version = absl::StrCat(*version);
  auto value = deps_.keys->Get(path, version);
  if (!value.ok()) {
    if (value.status().code() == absl::StatusCode::kNotFound) {
      return failed(KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                             version.has_value() ? absl::StrCat("resource ", path, " version ",
                                                                *version, " not found")
                                                 : absl::StrCat("resource ", path, " not found")),
                    "resource not found in the key store");
    }
    if (value.status().code() == absl::StatusCode::kFailedPrecondition) {
      // A disabled or destroyed version, or none enabled.
      return failed(KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                             value.status().message()),
                    absl::StrCat("key store: ", value.status().message()));
    }
    KBS_LOG(kError, "key store failed for ", path, ": ", value.status().message());
    return failed(
        KbsError(value.status().code() == absl::StatusCode::kUnavailable
                     ? absl::StatusCode::kUnavailable
                     : absl::StatusCode::kInternal,
                 ErrorKind::kPluginInternalError,
                 absl::StrCat("resource ", path, " could not be read from the key store")),
        absl::StrCat("key store: ", value.status().message()));
  }
  receipt.key_version = absl::StrCat(value->version);
  auto jwe = jose::JweEncrypt(*attested->tee_pubkey, value->value.span());
  if (!jwe.ok()) {
    return failed(KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kJweError,
                           absl::StrCat("cannot encrypt to the TEE key: ", jwe.status().message())),
                  absl::StrCat("JWE: ", jwe.status().message()));
  }
  receipt.decision = "granted";
  receipt.reason = absl::StrCat("rule ", decision->rule, " allows");
  if (absl::Status s = Record(receipt); !s.ok()) {
    return KbsError(absl::StatusCode::kUnavailable, ErrorKind::kPluginInternalError, s.message());
  }
  KBS_LOG(kInfo, "release resource=", path, " version=", value->version,
          " tee=", attested->primary_tee(), " policy=", decision->policy_id,
          " rule=", decision->rule, " token=", attested->token_id);
  return ReleasedResource{*std::move(jwe), value->version};
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

absl::StatusOr<std::vector<keystore::ResourceVersion>> Broker::ResourceVersions(
    absl::string_view admin_token, absl::string_view path) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto versions = deps_.keys->Versions(path);
  if (!versions.ok()) return WithKind(versions.status(), ErrorKind::kPluginInternalError);
  return versions;
}

absl::StatusOr<keystore::ResourceVersion> Broker::SetResourceVersionState(
    absl::string_view admin_token, absl::string_view path, int64_t version,
    keystore::VersionState state) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto v = deps_.keys->SetState(path, version, state);
  if (!v.ok()) return WithKind(v.status(), ErrorKind::kPluginInternalError);
  KBS_LOG(kInfo, "admin resource=", path, " version=", version,
          " state=", keystore::VersionStateName(state));
  return v;
}

absl::StatusOr<keystore::ResourceMetadata> Broker::GenerateKey(absl::string_view admin_token,
                                                               absl::string_view path,
                                                               absl::string_view key_type,
                                                               bool rotate) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  if (!IsValidResourcePath(path)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>");
  }
  std::lock_guard<std::mutex> admin(admin_mu_);
  auto existing = deps_.keys->Versions(path);
  if (existing.ok() && !rotate) {
    return KbsError(absl::StatusCode::kAlreadyExists, ErrorKind::kPluginInternalError,
                    absl::StrCat("resource ", path, " exists; rotate it to make a new version"));
  }
  if (!existing.ok() && rotate) {
    return WithKind(existing.status(), ErrorKind::kPluginInternalError);
  }
  common::SecretBytes secret;
  if (key_type == "aes256") {
    KBS_ASSIGN_OR_RETURN(secret, common::RandomBytes(32));
  } else if (key_type == "ec-p256" || key_type == "rsa3072") {
    auto key = key_type == "ec-p256" ? common::GenerateEcKey(common::EcCurve::kP256)
                                     : common::GenerateRsaKey(3072);
    if (!key.ok()) return key.status();
    KBS_ASSIGN_OR_RETURN(std::string pem, common::PrivateKeyToPem(key->get()));
    secret = common::SecretBytes(common::AsSpan(pem));
    std::fill(pem.begin(), pem.end(), '\0');
  } else {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    "key type must be aes256, ec-p256 or rsa3072");
  }
  auto md = deps_.keys->Put(path, secret.span());
  if (!md.ok()) return WithKind(md.status(), ErrorKind::kPluginInternalError);
  KBS_LOG(kInfo, "admin ", rotate ? "rotate" : "create", " key resource=", path, " type=", key_type,
          " version=", md->version);
  return md;
}

absl::StatusOr<Broker::KekRotation> Broker::RotateKek(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  if (deps_.kek == nullptr) {
    return KbsError(absl::StatusCode::kFailedPrecondition, ErrorKind::kPluginInternalError,
                    "this KBS has no rotatable key-encryption key");
  }
  std::lock_guard<std::mutex> admin(admin_mu_);
  KekRotation out;
  auto id = deps_.kek->Rotate();
  if (!id.ok()) return WithKind(id.status(), ErrorKind::kPluginInternalError);
  out.kek_id = *id;
  // Releases continue meanwhile: old KEK versions still unwrap.
  auto n = deps_.keys->RewrapAll();
  if (!n.ok()) return WithKind(n.status(), ErrorKind::kPluginInternalError);
  out.rewrapped = *n;
  KBS_LOG(kInfo, "admin KEK rotated to ", out.kek_id, "; re-wrapped ", out.rewrapped, " data keys");
  return out;
}

std::vector<std::string> Broker::NotReadyReasons() const {
  std::vector<std::string> reasons;
  if (deps_.receipts != nullptr) {
    std::string halted = deps_.receipts->halted_reason();
    if (!halted.empty()) reasons.push_back(absl::StrCat("receipt log halted: ", halted));
  }
  if (deps_.kek != nullptr) {
    absl::Status kek = deps_.kek->Health();
    if (!kek.ok()) reasons.push_back(absl::StrCat("key-encryption key: ", kek.message()));
  }
  return reasons;
}

std::string Broker::RenderStateMetrics() const {
  std::string out;
  if (deps_.receipts != nullptr) {
    absl::StrAppend(&out,
                    "# HELP kbs_receipt_log_entries Receipts in the log.\n"
                    "# TYPE kbs_receipt_log_entries gauge\nkbs_receipt_log_entries ",
                    deps_.receipts->size(),
                    "\n# HELP kbs_receipt_log_halted 1 while the log refuses appends (nothing is "
                    "released).\n# TYPE kbs_receipt_log_halted gauge\nkbs_receipt_log_halted ",
                    deps_.receipts->halted_reason().empty() ? 0 : 1, "\n");
  }
  if (deps_.kek != nullptr) {
    absl::StrAppend(&out,
                    "# HELP kbs_kek_available 1 when the key-encryption key (HSM) answered last "
                    "time.\n# TYPE kbs_kek_available gauge\nkbs_kek_available ",
                    deps_.kek->Health().ok() ? 1 : 0, "\n");
  }
  std::map<std::string, int> by_state = {{"current", 0}, {"next", 0}, {"retired", 0}};
  absl::Time current_since = deps_.clock->Now();
  for (const token::SigningKeyInfo& k : deps_.tokens->SigningKeys()) {
    ++by_state[std::string(token::SigningKeyStateName(k.state))];
    if (k.state == token::SigningKeyState::kCurrent) {
      current_since = k.activated.value_or(k.created);
    }
  }
  absl::StrAppend(&out,
                  "# HELP kbs_token_signing_keys Attestation-token signing keys by state.\n"
                  "# TYPE kbs_token_signing_keys gauge\n");
  for (const auto& [state, n] : by_state) {
    absl::StrAppend(&out, "kbs_token_signing_keys{state=\"", state, "\"} ", n, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP kbs_token_signing_key_age_seconds Time the current signing key has "
                  "signed.\n# TYPE kbs_token_signing_key_age_seconds gauge\n"
                  "kbs_token_signing_key_age_seconds ",
                  absl::ToInt64Seconds(deps_.clock->Now() - current_since), "\n");
  return out;
}

absl::StatusOr<std::vector<token::SigningKeyInfo>> Broker::TokenSigningKeys(
    absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  return deps_.tokens->SigningKeys();
}

absl::StatusOr<token::SigningKeyRotation> Broker::RotateTokenSigningKey(
    absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto rotated = deps_.tokens->RotateSigningKey();
  if (!rotated.ok()) return WithKind(rotated.status(), ErrorKind::kPluginInternalError);
  return rotated;
}

absl::StatusOr<Json> Broker::OpenIdConfiguration() const {
  auto doc = deps_.tokens->OpenIdConfiguration();
  if (!doc.ok()) return WithKind(doc.status(), ErrorKind::kInvalidRequestPath);
  return doc;
}

std::vector<std::string> Broker::MissingSets(const policy::PolicyEngine& engine) const {
  std::vector<std::string> missing;
  PolicySnapshot snap = Policies();
  for (const std::string& name : engine.referenced_sets()) {
    if (!snap.refvalues->HasSet(name)) missing.push_back(name);
  }
  return missing;
}

absl::StatusOr<SetPolicyResult> Broker::SetPolicy(absl::string_view admin_token,
                                                  absl::string_view document, bool shadow) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto compiled = policy::CompilePolicy(document, options_.policy);
  if (!compiled.ok()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kParsePolicyError,
                    compiled.status().message());
  }
  std::shared_ptr<const policy::PolicyEngine> engine = *std::move(compiled);
  std::lock_guard<std::mutex> admin(admin_mu_);
  // Persist first: an activated policy must survive a restart.
  absl::Status saved =
      deps_.policies->SaveAndActivate(engine->id(), document, shadow ? "shadow" : "active");
  if (!saved.ok()) return WithKind(saved, ErrorKind::kPolicyEngineError);
  SetPolicyResult result{engine->id(), MissingSets(*engine)};
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    (shadow ? policies_.shadow : policies_.active) = std::move(engine);
  }
  KBS_LOG(kInfo, "admin set policy=", result.id, shadow ? " (shadow)" : "");
  return result;
}

absl::StatusOr<Json> Broker::GetPolicy(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  PolicySnapshot snap = Policies();
  auto describe = [&](const policy::PolicyEngine& engine) -> absl::StatusOr<Json> {
    Json out = {{"id", engine.id()}, {"policy", engine.document()}};
    auto stored = deps_.policies->Get(engine.id());
    if (!stored.ok()) return WithKind(stored.status(), ErrorKind::kPolicyEngineError);
    if (stored->has_value()) out["source"] = (*stored)->source;
    return out;
  };
  KBS_ASSIGN_OR_RETURN(Json out, describe(*snap.active));
  out["shadow"] = nullptr;
  if (snap.shadow != nullptr) {
    KBS_ASSIGN_OR_RETURN(out["shadow"], describe(*snap.shadow));
  }
  return out;
}

absl::StatusOr<Json> Broker::PolicyHistory(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto versions = deps_.policies->Versions(1000);
  if (!versions.ok()) return WithKind(versions.status(), ErrorKind::kPolicyEngineError);
  auto events = deps_.policies->Events(1000);
  if (!events.ok()) return WithKind(events.status(), ErrorKind::kPolicyEngineError);
  auto rfc3339 = [](absl::Time t) {
    return absl::FormatTime(absl::RFC3339_full, t, absl::UTCTimeZone());
  };
  PolicySnapshot snap = Policies();
  Json out = {{"active", snap.active->id()},
              {"shadow", snap.shadow != nullptr ? Json(snap.shadow->id()) : Json(nullptr)},
              {"versions", Json::array()},
              {"events", Json::array()}};
  for (const StoredPolicy& v : *versions) {
    out["versions"].push_back({{"id", v.id}, {"created", rfc3339(v.created)}});
  }
  for (const PolicyEvent& e : *events) {
    out["events"].push_back(
        {{"seq", e.seq}, {"at", rfc3339(e.at)}, {"action", e.action}, {"version", e.version}});
  }
  return out;
}

absl::StatusOr<std::string> Broker::ActivatePolicy(absl::string_view admin_token,
                                                   absl::string_view version, bool shadow) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::lock_guard<std::mutex> admin(admin_mu_);
  // Compile before recording the activation, so a version that no longer
  // compiles (e.g. after an upgrade) is refused and the active one stays.
  if (version.size() < 12) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kPolicyEngineError,
                    "a policy version is its full id or a prefix of at least 12 characters");
  }
  std::string id(version);
  {
    auto versions = deps_.policies->Versions(100000);
    if (!versions.ok()) return WithKind(versions.status(), ErrorKind::kPolicyEngineError);
    int matches = 0;
    for (const StoredPolicy& v : *versions) {
      if (absl::StartsWith(v.id, version)) {
        id = v.id;
        ++matches;
      }
    }
    if (matches > 1) {
      return KbsError(
          absl::StatusCode::kInvalidArgument, ErrorKind::kPolicyEngineError,
          absl::StrCat("policy version prefix ", version.substr(0, 80), " is ambiguous"));
    }
  }
  auto engine = CompileStored(id);
  if (!engine.ok()) {
    if (engine.status().code() == absl::StatusCode::kDataLoss) {
      return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPolicyEngineError,
                      absl::StrCat("no stored policy version ", version.substr(0, 80)));
    }
    return WithKind(engine.status(), ErrorKind::kPolicyEngineError);
  }
  auto stored = deps_.policies->Activate(id, shadow ? "shadow" : "active");
  if (!stored.ok()) return WithKind(stored.status(), ErrorKind::kPolicyEngineError);
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    (shadow ? policies_.shadow : policies_.active) = *std::move(engine);
  }
  KBS_LOG(kInfo, "admin activate policy=", stored->id, shadow ? " (shadow)" : "");
  return stored->id;
}

absl::Status Broker::ClearShadowPolicy(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::lock_guard<std::mutex> admin(admin_mu_);
  absl::Status s = deps_.policies->ClearShadow();
  if (!s.ok()) return WithKind(s, ErrorKind::kPolicyEngineError);
  std::lock_guard<std::mutex> lock(policy_mu_);
  policies_.shadow = nullptr;
  return absl::OkStatus();
}

absl::StatusOr<Json> Broker::EvaluatePolicy(absl::string_view admin_token, const Json& claims,
                                            absl::string_view resource,
                                            absl::string_view policy_text) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  if (!IsValidResourcePath(resource)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kInvalidRequestPath,
                    "invalid resource path: expected <repository>/<type>/<tag>");
  }
  PolicySnapshot snap = Policies();
  std::shared_ptr<const policy::PolicyEngine> engine = snap.active;
  if (!policy_text.empty()) {
    auto compiled = policy::CompilePolicy(policy_text, options_.policy);
    if (!compiled.ok()) {
      return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kParsePolicyError,
                      compiled.status().message());
    }
    engine = *std::move(compiled);
  }
  auto claim_set = policy::ClaimsFromJson(claims);
  if (!claim_set.ok()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    claim_set.status().message());
  }
  policy::PolicyInput input;
  input.resource_path = resource;
  input.claims = &*claim_set;
  input.now = deps_.clock->Now();
  input.refvalues = snap.refvalues.get();
  auto decision = engine->Evaluate(input);
  if (!decision.ok()) return WithKind(decision.status(), ErrorKind::kPolicyEngineError);
  return decision->ToJson();
}

absl::StatusOr<Json> Broker::SetRefValues(absl::string_view admin_token, absl::string_view name,
                                          absl::string_view document) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  auto set = policy::ParseRefValueSet(name, document);
  if (!set.ok()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    set.status().message());
  }
  Json canonical = policy::RefValueSetToJson(*set);
  std::lock_guard<std::mutex> admin(admin_mu_);
  absl::Status saved = deps_.policies->PutRefValues(name, common::DumpJson(canonical));
  if (!saved.ok()) return WithKind(saved, ErrorKind::kPolicyEngineError);
  refsets_[std::string(name)] = *std::move(set);
  std::vector<policy::RefValueSet> all;
  for (const auto& [n, s] : refsets_) all.push_back(s);
  auto snapshot = policy::RefValues::Create(all);
  {
    std::lock_guard<std::mutex> lock(policy_mu_);
    policies_.refvalues = std::move(snapshot);
  }
  KBS_LOG(kInfo, "admin set refvalues=", name, " values=", canonical["values"].size());
  return canonical;
}

absl::StatusOr<Json> Broker::GetRefValues(absl::string_view admin_token, absl::string_view name) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::lock_guard<std::mutex> admin(admin_mu_);
  auto it = refsets_.find(std::string(name));
  if (it == refsets_.end()) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPolicyEngineError,
                    absl::StrCat("no reference-value set ", name.substr(0, 128)));
  }
  return policy::RefValueSetToJson(it->second);
}

absl::StatusOr<Json> Broker::ListRefValues(absl::string_view admin_token) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::lock_guard<std::mutex> admin(admin_mu_);
  Json out = Json::array();
  for (const auto& [name, set] : refsets_) {
    out.push_back({{"name", name}, {"values", set.values.size()}});
  }
  return out;
}

absl::Status Broker::DeleteRefValues(absl::string_view admin_token, absl::string_view name) {
  if (absl::Status s = deps_.admin->Authorize(admin_token); !s.ok()) return AdminError(s);
  std::lock_guard<std::mutex> admin(admin_mu_);
  absl::Status s = deps_.policies->DeleteRefValues(name);
  if (!s.ok()) return WithKind(s, ErrorKind::kPolicyEngineError);
  refsets_.erase(std::string(name));
  std::vector<policy::RefValueSet> all;
  for (const auto& [n, set] : refsets_) all.push_back(set);
  auto snapshot = policy::RefValues::Create(all);
  std::lock_guard<std::mutex> lock(policy_mu_);
  policies_.refvalues = std::move(snapshot);
  return absl::OkStatus();
}

}  // namespace kbs
