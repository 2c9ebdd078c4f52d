// Intel DCAP collateral (evidence-formats.md §2.5): TCB info (v2/v3, SGX and
// TDX), enclave identities (QE, TD_QE), CRLs, and where they come from.
//
// Collateral is signed by "Intel SGX TCB Signing" over the exact bytes of the
// JSON object as Intel served it, so the signed text is kept verbatim and
// only parsed after its signature verifies.
//
// The offline directory layout (docs/tdx.md):
//   <dir>/tdx/tcb_info/<fmspc, 12 lowercase hex>.json   PCS body {"tcbInfo":..,"signature":..}
//   <dir>/sgx/tcb_info/<fmspc>.json
//   <dir>/tdx/qe_identity.json                          PCS body {"enclaveIdentity":..,..}
//   <dir>/sgx/qe_identity.json
//   <dir>/tcb_signing_chain.pem    TCB Signing certificate and root (PCS header
//                                  TCB-Info-Issuer-Chain, URL-decoded)
//   <dir>/pck_crl/platform.der     PCK Platform CA CRL (DER or PEM; optional)
//   <dir>/pck_crl/processor.der    PCK Processor CA CRL (optional)
//   <dir>/root_ca_crl.der          Intel SGX Root CA CRL (optional)
#ifndef KBS_VERIFIER_DCAP_COLLATERAL_H_
#define KBS_VERIFIER_DCAP_COLLATERAL_H_

#include <array>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/x509.h"
#include "verifier/dcap/pck.h"

namespace kbs::verifier::dcap {

enum class DcapTee { kSgx, kTdx };
absl::string_view DcapTeeName(DcapTee tee);  // "sgx", "tdx"

// One TCB level of a TCB info, or of an enclave/module identity.
struct TcbLevel {
  std::array<uint8_t, 16> sgx_components{};
  uint16_t pce_svn = 0;
  std::optional<std::array<uint8_t, 16>> tdx_components;  // TDX TCB info
  uint16_t isv_svn = 0;                                   // identity levels
  std::string tcb_date;                                   // RFC 3339, as given
  std::string status;                                     // "UpToDate", ...
  std::vector<std::string> advisory_ids;
};

struct TdxModuleIdentity {
  std::string id;         // "TDX_01", ...; "" for the v3 `tdxModule` default
  std::string mr_signer;  // 48
  uint64_t attributes = 0;
  uint64_t attributes_mask = 0;
  std::vector<TcbLevel> levels;  // isv_svn levels, descending
};

struct TcbInfo {
  std::string id;  // "SGX" or "TDX" (v3); v2 has none and means SGX
  int version = 0;
  absl::Time issue_date, next_update;
  std::string fmspc;   // 6
  std::string pce_id;  // 2
  int64_t tcb_evaluation_data_number = 0;
  std::optional<TdxModuleIdentity> tdx_module;
  std::vector<TdxModuleIdentity> tdx_module_identities;
  std::vector<TcbLevel> levels;  // in Intel's (descending) order
};

struct EnclaveIdentity {
  std::string id;  // "QE", "TD_QE", "QVE"
  int version = 0;
  absl::Time issue_date, next_update;
  int64_t tcb_evaluation_data_number = 0;
  uint32_t miscselect = 0, miscselect_mask = 0;
  std::string attributes, attributes_mask;  // 16 each
  std::string mr_signer;                    // 32
  uint16_t isv_prod_id = 0;
  std::vector<TcbLevel> levels;  // isv_svn levels, descending
};

// Parse the signed objects (the `tcbInfo` / `enclaveIdentity` values).
// InvalidArgument naming the member that is missing or mistyped.
absl::StatusOr<TcbInfo> ParseTcbInfo(absl::string_view json);
absl::StatusOr<EnclaveIdentity> ParseEnclaveIdentity(absl::string_view json);

// A PCS response body {"<member>": {...}, "signature": "<hex r||s>"}: the
// member's exact text and the raw 64-byte signature.
struct SignedObject {
  std::string text;
  std::string signature;
};
absl::StatusOr<SignedObject> SplitPcsBody(absl::string_view body, absl::string_view member);

// Collateral for one quote, as served (nothing verified).
struct Collateral {
  std::string tcb_info;               // exact signed text of the tcbInfo object
  std::string tcb_info_signature;     // 64
  std::string tcb_info_issuer_chain;  // PEM: TCB Signing, root
  std::string qe_identity;            // exact signed text of enclaveIdentity
  std::string qe_identity_signature;  // 64
  std::string qe_identity_issuer_chain;
  std::string pck_crl;      // DER; empty when not available
  std::string root_ca_crl;  // DER; empty when not available
};

// The dcap-qvl / PCCS JSON bundle (QuoteCollateralV3: tcb_info,
// tcb_info_signature (hex), tcb_info_issuer_chain, qe_identity, ...,
// pck_crl and root_ca_crl in hex DER).
absl::StatusOr<Collateral> ParseCollateralBundle(absl::string_view json);

// Collateral whose signatures and chains verified, parsed.
struct VerifiedCollateral {
  TcbInfo tcb_info;
  EnclaveIdentity qe_identity;
  common::X509CrlPtr pck_crl;   // null when none was given
  common::X509CrlPtr root_crl;  // null when none was given
  // Every item and signing certificate is valid inside [not_before,
  // not_after] (the latest issue date and the earliest expiry).
  absl::Time not_before, not_after;
  absl::Time earliest_issue_date;
  std::optional<int64_t> pck_crl_number, root_crl_number;
};

// Verifies the signatures of TCB info and QE identity with their issuer
// chains (TCB Signing <- pinned root, valid at `at`), the root CRL's
// signature, and that every item is current at `at`; checks the TCB info and
// identity ids fit `tee`. The PCK CRL is parsed here and checked against the
// quote's PCK CA by the quote verifier. Unauthenticated naming the item.
absl::StatusOr<std::shared_ptr<const VerifiedCollateral>> VerifyCollateral(
    const Collateral& collateral, DcapTee tee, const RootAnchors& anchors, absl::Time at);

struct CollateralRequest {
  DcapTee tee = DcapTee::kTdx;
  std::string fmspc;  // 6 raw bytes
  PckCa ca = PckCa::kPlatform;
};

// Thread-safe.
class CollateralSource {
 public:
  virtual ~CollateralSource() = default;
  // NotFound when this source has nothing for `request`; Unavailable when
  // it cannot answer within `timeout`.
  virtual absl::StatusOr<Collateral> Get(const CollateralRequest& request,
                                         absl::Duration timeout) = 0;
};

// The offline directory (layout above). Store() writes what a fetcher got.
class DirectoryCollateral final : public CollateralSource {
 public:
  explicit DirectoryCollateral(std::string dir) : dir_(std::move(dir)) {}
  absl::StatusOr<Collateral> Get(const CollateralRequest& request, absl::Duration timeout) override;
  // Writes the PCS bodies, chain and CRLs of `collateral` atomically.
  absl::Status Store(const CollateralRequest& request, const Collateral& collateral);

 private:
  std::string dir_;
};

// One fixed bundle (kbsctl --collateral FILE.json), whatever is asked.
class FixedCollateral final : public CollateralSource {
 public:
  explicit FixedCollateral(Collateral c) : collateral_(std::move(c)) {}
  absl::StatusOr<Collateral> Get(const CollateralRequest&, absl::Duration) override {
    return collateral_;
  }

 private:
  Collateral collateral_;
};

// Tries each source in order; the first answer other than NotFound wins.
class ChainedCollateral final : public CollateralSource {
 public:
  explicit ChainedCollateral(std::vector<CollateralSource*> sources)
      : sources_(std::move(sources)) {}
  absl::StatusOr<Collateral> Get(const CollateralRequest& request, absl::Duration timeout) override;

 private:
  std::vector<CollateralSource*> sources_;
};

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_COLLATERAL_H_
