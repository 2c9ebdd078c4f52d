// The Intel TDX verifier (tee "tdx"): the agent's evidence {"quote",
// "cc_eventlog"}, the DCAP quote verified by dcap::QuoteVerifier, REPORTDATA
// bound to the runtime data and MRCONFIGID to the init-data digest, the CC
// event log replayed to RTMR0-3, and the TD appraised into claims
// (evidence-formats.md §2).
#ifndef KBS_VERIFIER_TDX_TDX_VERIFIER_H_
#define KBS_VERIFIER_TDX_TDX_VERIFIER_H_

#include <memory>
#include <optional>
#include <string>

#include "common/clock.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/verifier.h"

namespace kbs::verifier::tdx {

struct TdxEvidence {
  std::string quote;                       // raw quote bytes
  std::optional<std::string> cc_eventlog;  // raw CCEL log area
};

// {"quote": base64, "cc_eventlog": base64 | null} (gc attester/src/tdx).
absl::StatusOr<TdxEvidence> ParseTdxEvidence(const common::Json& evidence);
// The inverse, for attesters and tests (`cc_eventlog` null when absent).
common::Json TdxEvidenceToJson(const TdxEvidence& evidence);

// What a quote must match beyond its signatures.
struct TdxExpectations {
  std::optional<std::string> report_data;   // fitted to 64 bytes
  std::optional<std::string> mr_config_id;  // init-data digest, fitted to 48 bytes
  absl::Time at;
};

// Thread-safe.
class TdxVerifier final : public Verifier {
 public:
  TdxVerifier(dcap::QuoteVerifierOptions options, const common::Clock* clock)
      : quotes_(std::move(options)), clock_(clock) {}

  absl::string_view tee() const override { return "tdx"; }
  absl::string_view tee_class() const override { return "cpu"; }
  absl::StatusOr<VerifiedClaims> Verify(const common::Json& evidence,
                                        const EvidenceBinding& binding) const override;

  // Offline verification (`kbsctl evidence verify`); `collateral`, when
  // given, replaces the configured sources.
  absl::StatusOr<VerifiedClaims> VerifyEvidence(const TdxEvidence& evidence,
                                                const TdxExpectations& expect,
                                                const dcap::Collateral* collateral = nullptr) const;

 private:
  dcap::QuoteVerifier quotes_;
  const common::Clock* clock_;
};

}  // namespace kbs::verifier::tdx

#endif  // KBS_VERIFIER_TDX_TDX_VERIFIER_H_
