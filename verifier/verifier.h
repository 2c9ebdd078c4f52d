// The per-TEE verification seam. A Verifier takes TEE evidence (the JSON the
// attestation agent sends for its TEE) and the values the broker expects it
// to be bound to, and either proves the evidence genuine and bound, or fails.
// Parse, verify and appraise are separate steps inside each implementation;
// what leaves it is a VerifiedClaims, which only verification can construct.
#ifndef KBS_VERIFIER_VERIFIER_H_
#define KBS_VERIFIER_VERIFIER_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"
#include "common/json.h"
#include "verifier/trust_vector.h"

namespace kbs::verifier {

// What the evidence must be bound to (kbs-protocol.md §2.4, §6.6).
struct EvidenceBinding {
  // Digest of the JCS runtime data, `hash_algorithm`-sized. Verifiers pad or
  // truncate it to their hardware report-data field as their TEE defines.
  std::string report_data;
  common::HashAlgorithm hash_algorithm = common::HashAlgorithm::kSha384;
  // Digest of the init-data TOML as sent, with the algorithm it declares.
  std::optional<std::string> init_data_digest;
};

class Verifier;

// Zero-pads or truncates `value` to `size`: how a digest is fitted to a
// hardware report-data field (trustee's regularize_data).
inline std::string FitReportData(absl::string_view value, size_t size) {
  std::string out(value.substr(0, size));
  out.resize(size, '\0');
  return out;
}

// Claims about a TEE that passed verification. Immutable.
class VerifiedClaims final {
 public:
  // The TEE type that was verified ("sample", "snp", ...).
  const std::string& tee() const { return tee_; }
  // TEE-specific claims (a JSON object), e.g. {"measurement": "..."}.
  const common::Json& claims() const { return claims_; }
  // The verifier's appraisal in AR4SI terms.
  const TrustVector& trust_vector() const { return trust_vector_; }

 private:
  friend class Verifier;
  VerifiedClaims(std::string tee, common::Json claims, TrustVector trust_vector)
      : tee_(std::move(tee)), claims_(std::move(claims)), trust_vector_(trust_vector) {}

  std::string tee_;
  common::Json claims_;
  TrustVector trust_vector_;
};

// Thread-safe: Verify() is called concurrently.
class Verifier {
 public:
  virtual ~Verifier() = default;

  // The kbs-types TEE name this verifier handles, e.g. "sample", "snp".
  virtual absl::string_view tee() const = 0;
  // The EAR submodule class: "cpu" for primary TEEs, "gpu" for devices.
  virtual absl::string_view tee_class() const = 0;

  // Verifies `evidence` and its binding. Returns:
  //  - InvalidArgument when the evidence is malformed (wrong shape, types,
  //    encodings, sizes);
  //  - Unauthenticated when it is well-formed but does not verify (bad
  //    signature or chain, report data or init-data mismatch);
  //  - Unavailable when collateral needed to decide cannot be obtained.
  // Messages name the failed check and never include secret material.
  virtual absl::StatusOr<VerifiedClaims> Verify(const common::Json& evidence,
                                                const EvidenceBinding& binding) const = 0;

 protected:
  // The only way to construct VerifiedClaims: from inside a verifier.
  static VerifiedClaims MakeVerifiedClaims(std::string tee, common::Json claims,
                                           TrustVector trust_vector) {
    return VerifiedClaims(std::move(tee), std::move(claims), trust_vector);
  }
};

}  // namespace kbs::verifier

#endif  // KBS_VERIFIER_VERIFIER_H_
