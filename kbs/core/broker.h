// The broker: the one implementation of every KBS protocol rule. Front ends
// (HTTP, gRPC) decode their wire format into the types of protocol.h, call
// these methods and encode the result; they hold no protocol logic.
//
// The release path, failing closed at each step: session or token ->
// (policy) -> key store -> JWE to the TEE key. Attestation: session ->
// verify evidence and its binding (nonce, TEE key, init-data, devices) ->
// token.
#ifndef KBS_KBS_CORE_BROKER_H_
#define KBS_KBS_CORE_BROKER_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/jose/jwe.h"
#include "kbs/admin/admin_auth.h"
#include "kbs/core/decision_metrics.h"
#include "kbs/core/policy_store.h"
#include "kbs/core/protocol.h"
#include "kbs/keystore/kek.h"
#include "kbs/keystore/key_store.h"
#include "kbs/receipts/receipt_log.h"
#include "kbs/session/recent_cache.h"
#include "kbs/session/session_store.h"
#include "kbs/token/token_service.h"
#include "policy/policy_engine.h"
#include "verifier/verifier_set.h"

namespace kbs {

struct AuthResponse {
  std::string session_id;
  std::string nonce;
  common::Json extra_params;  // "" unless a hash algorithm was selected
  absl::Time expires;
};

struct AttestResponse {
  std::string token;
  absl::Time token_expires;
  // The session's (unchanged) expiry, for re-sending the cookie.
  absl::Time session_expires;
};

// How a resource request proves it attested: the agent's session cookie,
// or the confidential-data-hub's Bearer token. Either may be empty.
struct Credentials {
  std::string session_id;
  std::string bearer_token;
  std::string client_address = {};  // for the receipt
};

struct SetPolicyResult {
  std::string id;
  // Reference-value sets the policy names that do not exist yet (their
  // registers match nothing until the sets are created).
  std::vector<std::string> missing_refvalues;
};

// Thread-safe. All dependencies must outlive the broker.
class Broker final {
 public:
  struct Dependencies {
    const common::Clock* clock = nullptr;
    session::SessionStore* sessions = nullptr;
    const verifier::VerifierSet* verifiers = nullptr;
    token::TokenService* tokens = nullptr;
    keystore::KeyStore* keys = nullptr;
    PolicyStore* policies = nullptr;
    const admin::AdminAuthenticator* admin = nullptr;
    // Every release decision and failed attestation is appended here, and
    // a key is released only once its receipt is durable. Null only in
    // unit tests of other parts.
    receipts::ReceiptLog* receipts = nullptr;
    // The key-encryption key under the key store (for `kek rotate`); null
    // when the deployment does not rotate through the KBS.
    keystore::Kek* kek = nullptr;
  };
  struct Options {
    policy::PolicyOptions policy;
    // Successful attestations append an "attested" receipt, whose index the
    // token states (`receipt_index`), so relying parties can find it.
    bool record_attestations = true;
  };

  // Loads the stored policy (or starts with deny-all).
  static absl::StatusOr<std::unique_ptr<Broker>> Create(Dependencies deps, Options options);

  // RCAR step 1. Errors: 401-class for version mismatch or a TEE this KBS
  // does not verify, InvalidArgument for an unknown TEE name, Unavailable
  // when the session table is full.
  absl::StatusOr<AuthResponse> Auth(const AuthRequest& request);

  // RCAR step 2, on the session created by Auth.
  absl::StatusOr<AttestResponse> Attest(absl::string_view session_id, const AttestRequest& request,
                                        absl::string_view client_address = "");

  // Resource release: the JWE of the value at `path` for the attested TEE:
  // its latest enabled version, or `version` when the client names one (a
  // sealed model names the key version it was sealed under).
  struct ReleasedResource {
    jose::FlattenedJwe jwe;
    int64_t version = 0;
  };
  absl::StatusOr<ReleasedResource> GetResource(const Credentials& credentials,
                                               absl::string_view path,
                                               std::optional<int64_t> version = std::nullopt);

  // Admin operations; each authorizes `admin_token` first.
  absl::StatusOr<keystore::ResourceMetadata> PutResource(absl::string_view admin_token,
                                                         absl::string_view path,
                                                         absl::string_view value);
  absl::Status DeleteResource(absl::string_view admin_token, absl::string_view path);
  absl::StatusOr<std::vector<keystore::ResourceMetadata>> ListResources(
      absl::string_view admin_token);
  absl::StatusOr<std::vector<keystore::ResourceVersion>> ResourceVersions(
      absl::string_view admin_token, absl::string_view path);
  // Disables, enables or destroys one version.
  absl::StatusOr<keystore::ResourceVersion> SetResourceVersionState(absl::string_view admin_token,
                                                                    absl::string_view path,
                                                                    int64_t version,
                                                                    keystore::VersionState state);
  // Generates a secret inside the KBS (no administrator sees it): "aes256"
  // (32 random bytes), "ec-p256" or "rsa3072" (a PKCS#8 PEM private key).
  // Without `rotate`, the resource must not exist yet (AlreadyExists); with
  // it, it must (NotFound) and the secret becomes its new version.
  absl::StatusOr<keystore::ResourceMetadata> GenerateKey(absl::string_view admin_token,
                                                         absl::string_view path,
                                                         absl::string_view key_type, bool rotate);
  // Makes a new KEK version current and re-wraps every stored data key.
  struct KekRotation {
    std::string kek_id;
    int64_t rewrapped = 0;
  };
  absl::StatusOr<KekRotation> RotateKek(absl::string_view admin_token);
  // Attestation-token signing keys (admin): the ring, and a rotation (the
  // pre-published next key starts signing; the old one stays in the JWKS
  // until its tokens have expired).
  absl::StatusOr<std::vector<token::SigningKeyInfo>> TokenSigningKeys(
      absl::string_view admin_token);
  absl::StatusOr<token::SigningKeyRotation> RotateTokenSigningKey(absl::string_view admin_token);
  // Compiles `document` (YAML or JSON), then stores it as a new version and
  // activates it (or loads it in shadow beside the active one). On any
  // error the active policy stays; InvalidArgument lists every error.
  absl::StatusOr<SetPolicyResult> SetPolicy(absl::string_view admin_token,
                                            absl::string_view document, bool shadow = false);
  // {"id", "policy" (canonical), "source", "shadow": {"id", ...} | null}.
  absl::StatusOr<common::Json> GetPolicy(absl::string_view admin_token);
  // {"active", "shadow", "versions": [{"id","created"}], "events": [...]}.
  absl::StatusOr<common::Json> PolicyHistory(absl::string_view admin_token);
  // Re-activates a stored version (full id or a unique prefix).
  absl::StatusOr<std::string> ActivatePolicy(absl::string_view admin_token,
                                             absl::string_view version, bool shadow = false);
  absl::Status ClearShadowPolicy(absl::string_view admin_token);
  // Dry run: the decision for `claims` (the policy's view or EAR claims) and
  // `resource` under `policy` (a document) or, when empty, the active one.
  absl::StatusOr<common::Json> EvaluatePolicy(absl::string_view admin_token,
                                              const common::Json& claims,
                                              absl::string_view resource, absl::string_view policy);

  // Reference-value sets (policy/refvalues.h); a change applies to the
  // next decision.
  absl::StatusOr<common::Json> SetRefValues(absl::string_view admin_token, absl::string_view name,
                                            absl::string_view document);
  absl::StatusOr<common::Json> GetRefValues(absl::string_view admin_token, absl::string_view name);
  absl::StatusOr<common::Json> ListRefValues(absl::string_view admin_token);
  absl::Status DeleteRefValues(absl::string_view admin_token, absl::string_view name);

  common::Json Jwks() const { return deps_.tokens->Jwks(); }
  // NotFound (kind InvalidRequestPath) when OIDC discovery is off.
  absl::StatusOr<common::Json> OpenIdConfiguration() const;
  // kbs_policy_decisions_total, for GET /metrics.
  std::string RenderDecisionMetrics() const { return decision_metrics_.Render(); }
  // Why releases would fail right now (a halted receipt log, an unreachable
  // HSM); empty when ready. For /readyz.
  std::vector<std::string> NotReadyReasons() const;
  // Prometheus gauges: receipt log size and halt, key-encryption-key health,
  // token signing keys by state and the current key's age.
  std::string RenderStateMetrics() const;

 private:
  struct PolicySnapshot {
    std::shared_ptr<const policy::PolicyEngine> active;
    std::shared_ptr<const policy::PolicyEngine> shadow;  // may be null
    std::shared_ptr<const policy::RefValues> refvalues;
  };

  Broker(Dependencies deps, Options options)
      : deps_(deps), options_(options), recent_(kRecentResults) {}

  absl::Status LoadPolicies();
  absl::StatusOr<AttestResponse> AttestVerified(absl::string_view session_id,
                                                const AttestRequest& request,
                                                absl::string_view client_address, std::string& tee,
                                                std::string& token_id);
  absl::StatusOr<std::shared_ptr<const AttestationResult>> Authenticate(
      const Credentials& credentials, absl::Time now);
  PolicySnapshot Policies() const;
  absl::StatusOr<std::unique_ptr<policy::PolicyEngine>> CompileStored(absl::string_view id);
  std::vector<std::string> MissingSets(const policy::PolicyEngine& engine) const;
  // Appends `receipt` (no-op without a log); Unavailable when it cannot be
  // made durable.
  absl::Status Record(receipts::Receipt receipt);

  // The results of the last attestations, so the resource request that
  // follows on the same session (normally within milliseconds) does not
  // parse the claims again. Only results whose claims are at most
  // kRecentResultMaxClaims bytes are kept (about 6x that in memory), so the
  // cache stays under about 100 MiB whatever the session table holds.
  static constexpr size_t kRecentResults = 1024;
  static constexpr size_t kRecentResultMaxClaims = 16 << 10;

  Dependencies deps_;
  Options options_;
  session::RecentCache<const AttestationResult> recent_;
  // Serializes admin changes to policies and reference values.
  std::mutex admin_mu_;
  std::map<std::string, policy::RefValueSet> refsets_;  // guarded by admin_mu_
  mutable std::mutex policy_mu_;
  PolicySnapshot policies_;  // guarded by policy_mu_
  DecisionMetrics decision_metrics_;
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_BROKER_H_
