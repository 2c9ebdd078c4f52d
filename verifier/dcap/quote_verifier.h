// The DCAP quote verification shared by the TDX and SGX verifiers
// (evidence-formats.md §2.3): PCK chain to a pinned Intel root, QE report
// signed by the PCK key and binding the attestation key, quote signed by the
// attestation key, collateral signed by the TCB Signing key and current, CRLs,
// and the TCB status as Intel's quote verification library defines it.
#ifndef KBS_VERIFIER_DCAP_QUOTE_VERIFIER_H_
#define KBS_VERIFIER_DCAP_QUOTE_VERIFIER_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "verifier/dcap/collateral.h"
#include "verifier/dcap/pck.h"
#include "verifier/dcap/quote.h"

namespace kbs::verifier::dcap {

// The TCB statuses Intel defines, combined over platform, TDX module and QE.
struct TcbEvaluation {
  std::string status;  // UpToDate, SWHardeningNeeded, ConfigurationNeeded,
                       // ConfigurationAndSWHardeningNeeded, OutOfDate,
                       // OutOfDateConfigurationNeeded, Revoked
  std::vector<std::string> advisory_ids;
  std::string tcb_date;                      // of the matching platform TCB level
  std::string platform_status;               // the matching platform level's status
  std::optional<std::string> module_status;  // TDX module identities only
  std::string qe_status;
};

// Matches the quote's platform (PCK components and PCESVN, TEE_TCB_SVN for
// TDX), TDX module and QE against the collateral. Unauthenticated when no
// TCB level matches the platform, the TDX module or the QE (Intel:
// TCB_NOT_SUPPORTED), when the TDX module or the QE is not the one the
// collateral describes, or when the converged status is not usable
// (Revoked, or a status Intel may add later).
absl::StatusOr<TcbEvaluation> EvaluateTcb(const Quote& quote, const PckExtensions& pck,
                                          const TcbInfo& tcb_info,
                                          const EnclaveIdentity& qe_identity);

struct QuoteVerifierOptions {
  RootAnchors anchors = RootAnchors::IntelDefault();
  // Where collateral comes from (not owned; may be null when every call
  // passes its own collateral).
  CollateralSource* collateral = nullptr;
  absl::Duration collateral_timeout = absl::Seconds(10);
};

struct VerifiedQuote {
  Quote quote;
  PckExtensions pck;
  PckCa ca = PckCa::kPlatform;
  TcbEvaluation tcb;
  std::shared_ptr<const VerifiedCollateral> collateral;
};

// Thread-safe. Caches verified PCK chains (by the chain's bytes), verified
// collateral (per TEE, FMSPC and CA, until it expires) and QE report
// signatures that verified (by chain, report and signature bytes: a
// platform's QE report is the same in every quote until its QE restarts).
// Each quote's own signature, the attestation-key binding, validity windows
// and TCB evaluation are always checked.
class QuoteVerifier {
 public:
  explicit QuoteVerifier(QuoteVerifierOptions options) : options_(std::move(options)) {}

  // InvalidArgument for a malformed quote; Unauthenticated for a failed
  // check (naming it); Unavailable when collateral cannot be had.
  // `collateral`, when given, is used instead of the configured source.
  absl::StatusOr<VerifiedQuote> Verify(absl::Span<const uint8_t> quote, DcapTee tee, absl::Time at,
                                       const Collateral* collateral = nullptr) const;

 private:
  struct CachedChain {
    PckChain chain;
    ChainWindow window;
    std::string ca_sha256;  // raw SHA-256 of the intermediate's DER
  };
  struct CachedCollateral {
    std::shared_ptr<const VerifiedCollateral> collateral;
    // Intermediates whose CRL checks passed against this collateral.
    std::vector<std::string> crl_checked_cas;
    absl::Time refresh_at;
  };
  // The quote's chain, verified at `at`, cached by `key` (SHA-256 of its
  // bytes).
  absl::StatusOr<std::shared_ptr<const CachedChain>> GetChain(const Quote& quote,
                                                              const std::string& key,
                                                              absl::Time at) const;
  absl::StatusOr<std::shared_ptr<const VerifiedCollateral>> GetCollateral(
      const CollateralRequest& request, const CachedChain& chain, absl::Time at,
      const Collateral* explicit_collateral) const;

  // The attestation key as an OpenSSL key, cached by its bytes: a platform
  // keeps its key while its QE runs, and decoding costs as much as a verify.
  absl::StatusOr<std::shared_ptr<EVP_PKEY>> AttestationKey(const std::string& xy) const;

  // Whether the QE report's signature verifies with the chain's PCK key;
  // only successes are remembered.
  bool QeReportVerifies(const Quote& quote, const std::string& chain_key,
                        const CachedChain& chain) const;

  QuoteVerifierOptions options_;
  mutable std::mutex mu_;
  // SHA-256 of (chain key, QE report, its signature) for signatures that
  // verified.
  mutable std::set<std::string> verified_qe_reports_;
  mutable std::map<std::string, std::shared_ptr<EVP_PKEY>> attestation_keys_;
  mutable std::map<std::string, std::shared_ptr<const CachedChain>> chains_;
  mutable std::map<std::string, CachedCollateral> collateral_;
};

// Revocation checks of a PCK chain against verified collateral's CRLs.
absl::Status CheckRevocation(const PckChain& chain, const VerifiedCollateral& collateral,
                             absl::Time at);

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_QUOTE_VERIFIER_H_
