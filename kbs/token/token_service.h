// Attestation tokens: EAR (draft-ietf-rats-ear) JWTs signed ES256, with the
// claim layout CoCo's trustee uses (kbs-protocol.md §4), so existing clients
// and policies read them. Tokens carry claims only, never raw evidence, and
// stay well under 16 KiB. Verification of Bearer tokens rebuilds the same
// AttestationResult the issuing session held.
#ifndef KBS_KBS_TOKEN_TOKEN_SERVICE_H_
#define KBS_KBS_TOKEN_TOKEN_SERVICE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/jose/jwt.h"
#include "common/jose/tee_key.h"
#include "kbs/core/attestation.h"
#include "kbs/token/signing_keys.h"
#include "verifier/verifier.h"

namespace kbs::token {

inline constexpr absl::string_view kEatProfile =
    "tag:github.com,2024:confidential-containers/Trustee";

// Everything the token states about one attestation.
struct AttestationRecord {
  const verifier::VerifiedClaims* primary = nullptr;
  struct Device {
    std::string tee_class;  // "gpu", ...
    const verifier::VerifiedClaims* claims = nullptr;
  };
  std::vector<Device> devices;
  std::string nonce;
  const jose::TeePublicKey* tee_pubkey = nullptr;
  std::string report_data;  // raw digest bound into the primary evidence
  // Hex SHA-256 of the evidence as the receipt log stores it ("" if none).
  std::string evidence_sha256;
  // When init-data was sent and verified.
  std::optional<std::string> init_data_digest;  // raw
  common::Json init_data_claims;
  // The container images the init-data's agent policy allows (references as
  // stated), when it carried one; in trustee's
  // `ear.trustee.identifiers.validated.container_images`.
  std::optional<std::vector<std::string>> container_images;
  // With it, SHA-256 (raw) of the agent policy's rules (policy.rego without
  // its policy_data), as `agent_policy_rules_sha256` beside the images.
  std::string agent_policy_rules_digest;
  // "sha256:<hex>" digests of those images that are pinned by digest, for the
  // top-level `image_digests` claim.
  std::vector<std::string> image_digests;
  // Version id of the release policy active at attestation ("" if none).
  std::string policy_version;
};

// Issues and verifies attestation tokens, and serves what relying parties
// (Vault's JWT auth, cloud workload-identity federation, a KMS) need to
// trust them: the OIDC discovery document and the JWKS. Besides the EAR
// layout, tokens carry flat OIDC claims: `sub` ("<tee>:<measurement>"),
// `aud` (configured), `tee`, `measurement`, `ear_status` (the primary TEE's
// appraisal: relying parties must require "affirming", since a debug guest
// has the same measurement), `image_digests`, `policy_version` and
// `receipt_index` (the receipt-log entry of this attestation). Thread-safe.
class TokenService final {
 public:
  struct Options {
    absl::Duration lifetime = absl::Minutes(5);
    // `iss`; an http(s) URL enables OIDC discovery.
    std::string issuer = "kbs";
    std::string build = "kbs";
    // `aud`: a string for one value, an array for several, absent if none.
    std::vector<std::string> audience;
    // Overrides issuer + "/.well-known/jwks.json" in the discovery document
    // (a KBS behind a path-rewriting proxy).
    std::string jwks_uri;
    // Signing-key rotation: every `key_rotation_interval` (zero: only on
    // request); retired keys stay published for the token lifetime plus
    // `clock_skew`.
    absl::Duration key_rotation_interval = absl::ZeroDuration();
    absl::Duration clock_skew = absl::Seconds(60);
  };
  // `keys` holds P-256 keys; `clock` must outlive the service.
  static absl::StatusOr<std::unique_ptr<TokenService>> Create(std::unique_ptr<SigningKeyRing> keys,
                                                              Options options,
                                                              const common::Clock* clock);
  // An in-memory ring whose current key is `signing_key` (EC P-256).
  static absl::StatusOr<std::unique_ptr<TokenService>> Create(common::EvpPkeyPtr signing_key,
                                                              Options options,
                                                              const common::Clock* clock);

  // Prepare + Sign without a receipt index.
  absl::StatusOr<std::shared_ptr<const AttestationResult>> Issue(
      const AttestationRecord& record) const;
  // The claims of a token for `record` (token id, times, EAR and OIDC
  // claims), not yet signed: the broker records the attestation first.
  absl::StatusOr<std::shared_ptr<AttestationResult>> Prepare(const AttestationRecord& record) const;
  // Adds `receipt_index` (when given) and signs with the current key.
  absl::Status Sign(AttestationResult& result, std::optional<uint64_t> receipt_index) const;

  // Verifies a token from `Authorization: Bearer` (signature by a current or
  // still-published retired key, `iss`, `exp`) and rebuilds its
  // AttestationResult. Unauthenticated on any failure, with the reason.
  absl::StatusOr<std::shared_ptr<const AttestationResult>> Verify(absl::string_view token) const;

  // {"keys":[<public JWK>...]} for /.well-known/jwks.json: current, next and
  // still-published retired keys.
  common::Json Jwks() const;
  // The OIDC discovery document; NotFound when the issuer is not an http(s)
  // URL (discovery is then off).
  absl::StatusOr<common::Json> OpenIdConfiguration() const;

  absl::StatusOr<SigningKeyRotation> RotateSigningKey();
  // Rotates when the current key has signed for key_rotation_interval.
  absl::Status RotateIfDue();
  std::vector<SigningKeyInfo> SigningKeys() const;

 private:
  // What signs and verifies between two rotations.
  struct KeySet {
    std::unique_ptr<jose::JwtSigner> signer;
    jose::JwtVerifier verifier;
    std::vector<std::pair<std::optional<absl::Time>, common::Json>> published;  // until, JWK
  };
  TokenService(std::unique_ptr<SigningKeyRing> keys, Options options, const common::Clock* clock)
      : ring_(std::move(keys)), options_(std::move(options)), clock_(clock) {}
  absl::Status Reload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ring_mu_);  // key_set_ from ring_
  absl::StatusOr<SigningKeyRotation> RotateLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(ring_mu_);
  std::shared_ptr<const KeySet> key_set() const;

  mutable absl::Mutex ring_mu_;  // serializes rotations
  std::unique_ptr<SigningKeyRing> ring_;
  mutable absl::Mutex set_mu_;
  std::shared_ptr<const KeySet> key_set_;
  Options options_;
  common::Json audience_;  // the `aud` value, or null
  const common::Clock* clock_;
};

// Rebuilds an AttestationResult from EAR claims (exposed for tests).
absl::StatusOr<std::shared_ptr<AttestationResult>> ResultFromEarClaims(common::Json claims);

}  // namespace kbs::token

#endif  // KBS_KBS_TOKEN_TOKEN_SERVICE_H_
