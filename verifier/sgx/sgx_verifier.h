// The Intel SGX DCAP verifier (tee "sgx"): the agent's evidence {"quote"},
// an SGX quote v3 verified by dcap::QuoteVerifier, REPORTDATA bound to the
// runtime data and CONFIGID to the init-data digest, and the enclave
// appraised into claims (evidence-formats.md §4).
#ifndef KBS_VERIFIER_SGX_SGX_VERIFIER_H_
#define KBS_VERIFIER_SGX_SGX_VERIFIER_H_

#include <optional>
#include <string>

#include "common/clock.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/verifier.h"

namespace kbs::verifier::sgx {

// {"quote": base64} (gc attester/src/sgx_dcap). Returns the raw quote.
absl::StatusOr<std::string> ParseSgxEvidence(const common::Json& evidence);

struct SgxExpectations {
  std::optional<std::string> report_data;  // fitted to 64 bytes
  std::optional<std::string> config_id;    // init-data digest, fitted to 64 bytes
  absl::Time at;
};

// Thread-safe.
class SgxVerifier final : public Verifier {
 public:
  SgxVerifier(dcap::QuoteVerifierOptions options, const common::Clock* clock)
      : quotes_(std::move(options)), clock_(clock) {}

  absl::string_view tee() const override { return "sgx"; }
  absl::string_view tee_class() const override { return "cpu"; }
  absl::StatusOr<VerifiedClaims> Verify(const common::Json& evidence,
                                        const EvidenceBinding& binding) const override;

  absl::StatusOr<VerifiedClaims> VerifyQuote(absl::string_view quote, const SgxExpectations& expect,
                                             const dcap::Collateral* collateral = nullptr) const;

 private:
  dcap::QuoteVerifier quotes_;
  const common::Clock* clock_;
};

}  // namespace kbs::verifier::sgx

#endif  // KBS_VERIFIER_SGX_SGX_VERIFIER_H_
