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
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/jose/jwt.h"
#include "common/jose/tee_key.h"
#include "kbs/core/attestation.h"
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
};

// Reads the signing key (PEM, mode 0600) or creates a P-256 key there.
absl::StatusOr<common::EvpPkeyPtr> LoadOrCreateSigningKey(const std::string& path);

// Thread-safe.
class TokenService final {
 public:
  struct Options {
    absl::Duration lifetime = absl::Minutes(5);
    std::string issuer = "kbs";
    std::string build = "kbs";
  };
  // `signing_key` must be EC P-256. `clock` must outlive the service.
  static absl::StatusOr<std::unique_ptr<TokenService>> Create(common::EvpPkeyPtr signing_key,
                                                              Options options,
                                                              const common::Clock* clock);

  absl::StatusOr<std::shared_ptr<const AttestationResult>> Issue(
      const AttestationRecord& record) const;

  // Verifies a token from `Authorization: Bearer` (our signature, `iss`,
  // `exp`) and rebuilds its AttestationResult. Unauthenticated on any
  // failure, with the reason.
  absl::StatusOr<std::shared_ptr<const AttestationResult>> Verify(absl::string_view token) const;

  // {"keys":[<public JWK>]} for /.well-known/jwks.json.
  const common::Json& jwks() const { return jwks_; }

 private:
  TokenService(std::unique_ptr<jose::JwtSigner> signer, jose::JwtVerifier verifier, Options options,
               const common::Clock* clock);

  std::unique_ptr<jose::JwtSigner> signer_;
  jose::JwtVerifier verifier_;
  Options options_;
  const common::Clock* clock_;
  common::Json jwks_;
};

// Rebuilds an AttestationResult from EAR claims (exposed for tests).
absl::StatusOr<std::shared_ptr<AttestationResult>> ResultFromEarClaims(common::Json claims);

}  // namespace kbs::token

#endif  // KBS_KBS_TOKEN_TOKEN_SERVICE_H_
