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
  // The longest an attestation waits for collateral: one deadline for all
  // of its fetches (VCEK, chain, CRL) together.
  absl::Duration collateral_timeout = absl::Seconds(10);
  // The ARK's CRL comes from the evidence or the collateral. When no CRL
  // current at the verification time is held (none yet, or past its
  // nextUpdate), the collateral is asked again at most this often (by the
  // clock); a current one is looked up again after `crl_recheck_interval`,
  // so that a newer one placed in the directory takes effect. Entries of any
  // ARK-signed CRL held revoke, stale or not; a newly obtained CRL applies to
  // chains verified before it.
  absl::Duration crl_retry_interval = absl::Minutes(1);
  absl::Duration crl_recheck_interval = absl::Hours(1);
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

  // How fresh the ARK CRL checked was (claim `ark_crl`).
  enum class CrlStatus { kNone, kStale, kCurrent };
  struct VerifiedVek {
    std::shared_ptr<VekCertificate> vek;
    Product product;
    ChainValidity validity;
    std::string crl_checked;  // SHA-256 of the collateral CRL last checked ("" none)
    CrlStatus crl_status = CrlStatus::kNone;  // of this verification
  };
  struct CrlState {
    std::shared_ptr<const ArkCrl> crl;
    absl::Time last_lookup = absl::InfinitePast();  // by clock_
  };
  // `deadline` (real time) bounds every collateral fetch of one attestation.
  absl::StatusOr<VerifiedVek> GetVerifiedVek(const SnpReport& report, const SnpEvidence& evidence,
                                             const std::vector<std::string>& extra_certs_der,
                                             absl::Time at, absl::Time deadline) const;
  // Revocation of `vv` (cached under `key`) by the evidence's CRLs and the
  // collateral's CRL for its ARK, looked up when due; a revoked chain leaves
  // the cache. Sets vv.crl_status.
  absl::Status CheckRevocation(const std::string& key, const SnpEvidence& evidence, VerifiedVek& vv,
                               absl::Time at, absl::Time deadline) const;

  SnpVerifierOptions options_;
  const common::Clock* clock_;
  // Verified chains by SHA-256 of the VEK's DER: the RSA chain is checked once
  // per VEK; every report's own signature is always checked.
  mutable std::mutex cache_mu_;
  mutable std::map<std::string, VerifiedVek> chain_cache_;
  // The collateral's CRL per ARK (by SHA-256 of the ARK's DER); guarded by
  // cache_mu_.
  mutable std::map<std::string, CrlState> crls_;
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_SNP_VERIFIER_H_
