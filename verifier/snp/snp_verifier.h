// The AMD SEV-SNP verifier (tee "snp"): parse the agent's evidence, get the
// VCEK/VLEK (from the evidence or the collateral sources), verify its chain
// to a pinned ARK and the report's signature, check the certificate's TCB
// and chip id against the report, bind REPORT_DATA and HOST_DATA, and
// appraise the report into claims (evidence-formats.md §1).
#ifndef KBS_VERIFIER_SNP_SNP_VERIFIER_H_
#define KBS_VERIFIER_SNP_SNP_VERIFIER_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "verifier/snp/certs.h"
#include "verifier/snp/collateral.h"
#include "verifier/snp/evidence.h"
#include "verifier/snp/report.h"
#include "verifier/verifier.h"

namespace kbs::verifier::snp {

struct SnpVerifierOptions {
  TrustAnchors anchors = TrustAnchors::AmdDefaults();
  // Where certificates missing from the evidence come from (not owned; may
  // be null: then the evidence must carry the whole chain).
  CollateralSource* collateral = nullptr;
  // The longest an attestation waits for collateral.
  absl::Duration collateral_timeout = absl::Seconds(10);
};

// What a report must match, beyond its signature and chain.
struct SnpExpectations {
  std::optional<std::string> report_data;  // zero-padded/truncated to 64 bytes
  std::optional<std::string> host_data;    // zero-padded/truncated to 32 bytes
  absl::Time at;                           // certificate validity time
};

// Thread-safe.
class SnpVerifier final : public Verifier {
 public:
  static std::unique_ptr<SnpVerifier> Create(SnpVerifierOptions options,
                                             const common::Clock* clock);

  absl::string_view tee() const override { return "snp"; }
  absl::string_view tee_class() const override { return "cpu"; }
  absl::StatusOr<VerifiedClaims> Verify(const common::Json& evidence,
                                        const EvidenceBinding& binding) const override;

  // Verification of parsed evidence against explicit expectations (offline
  // use: `kbsctl evidence verify`). `extra_certs_der` adds AMD certificates
  // (ASK/ASVK/ARK) to those of the evidence and the collateral.
  absl::StatusOr<VerifiedClaims> VerifyEvidence(
      const SnpEvidence& evidence, const SnpExpectations& expect,
      const std::vector<std::string>& extra_certs_der = {}) const;

 private:
  SnpVerifier(SnpVerifierOptions options, const common::Clock* clock)
      : options_(std::move(options)), clock_(clock) {}

  struct VerifiedVek {
    std::shared_ptr<VekCertificate> vek;
    Product product;
    ChainValidity validity;
  };
  absl::StatusOr<VerifiedVek> GetVerifiedVek(const SnpReport& report, const SnpEvidence& evidence,
                                             const std::vector<std::string>& extra_certs_der,
                                             absl::Time at) const;

  SnpVerifierOptions options_;
  const common::Clock* clock_;
  // Verified chains by SHA-256 of the VEK's DER: the RSA chain is checked once
  // per VEK; every report's own signature is always checked.
  mutable std::mutex cache_mu_;
  mutable std::map<std::string, VerifiedVek> chain_cache_;
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_SNP_VERIFIER_H_
