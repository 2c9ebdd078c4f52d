#include "verifier/dcap/quote_verifier.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/status_macros.h"
#include "verifier/dcap/signature.h"

namespace kbs::verifier::dcap {
namespace {

constexpr size_t kMaxCachedChains = 10000;
constexpr size_t kMaxCachedKeys = 10000;
// Verified collateral is asked for again after this, so new CRL entries
// take effect within a day (sources cache what they fetched).
constexpr absl::Duration kCollateralRefresh = absl::Hours(24);

bool IsConfiguration(absl::string_view s) {
  return s == "ConfigurationNeeded" || s == "ConfigurationAndSWHardeningNeeded";
}

// Intel QVL's convergence of the platform status with an OutOfDate or
// Revoked TDX module or QE (TcbLevelCheck.cpp).
std::string Converge(const std::string& platform, const std::string& other) {
  if (other == "Revoked") return "Revoked";
  if (other == "OutOfDate") {
    if (platform == "UpToDate" || platform == "SWHardeningNeeded") return "OutOfDate";
    if (IsConfiguration(platform)) return "OutOfDateConfigurationNeeded";
  }
  return platform;
}

void AddAdvisories(std::vector<std::string>& out, const std::vector<std::string>& ids) {
  for (const std::string& id : ids) {
    if (std::find(out.begin(), out.end(), id) == out.end()) out.push_back(id);
  }
}

std::string Svns(absl::Span<const uint8_t> v) {
  return absl::StrCat("[", absl::StrJoin(v, ","), "]");
}

// The first identity level the SVN reaches, or null.
const TcbLevel* IdentityLevel(const std::vector<TcbLevel>& levels, uint16_t svn) {
  for (const TcbLevel& l : levels) {
    if (svn >= l.isv_svn) return &l;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<TcbEvaluation> EvaluateTcb(const Quote& quote, const PckExtensions& pck,
                                          const TcbInfo& tcb_info,
                                          const EnclaveIdentity& qe_identity) {
  TcbEvaluation out;
  const bool tdx = quote.is_tdx();
  const std::string fmspc = common::HexEncode(pck.fmspc);
  std::array<uint8_t, 16> tee_svn{};
  if (tdx) std::memcpy(tee_svn.data(), quote.td->tee_tcb_svn.data(), 16);
  const uint8_t module_version = tee_svn[1];

  // Platform level: the first (highest) level this platform reaches.
  const TcbLevel* level = nullptr;
  for (const TcbLevel& l : tcb_info.levels) {
    bool ok = pck.pce_svn >= l.pce_svn;
    for (int i = 0; ok && i < 16; ++i) ok = pck.comp_svn[i] >= l.sgx_components[i];
    if (ok && tdx) {
      if (!l.tdx_components.has_value()) continue;
      // With a TDX module version, its SVN and version bytes are judged by
      // the module identity instead (Intel QVL).
      for (int i = module_version > 0 ? 2 : 0; ok && i < 16; ++i) {
        ok = tee_svn[i] >= (*l.tdx_components)[i];
      }
    }
    if (ok) {
      level = &l;
      break;
    }
  }
  if (level == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat(
        "TCB level not supported: the platform (PCK components ", Svns(pck.comp_svn), ", PCESVN ",
        pck.pce_svn, tdx ? absl::StrCat(", TEE_TCB_SVN ", Svns(tee_svn)) : "",
        ") is below every TCB level of FMSPC ", fmspc));
  }
  out.platform_status = level->status;
  out.tcb_date = level->tcb_date;
  out.status = level->status;
  AddAdvisories(out.advisory_ids, level->advisory_ids);

  // TDX module.
  if (tdx) {
    const TdReport& td = *quote.td;
    const TdxModuleIdentity* module = nullptr;
    std::string module_name = "tdxModule";
    if (module_version > 0) {
      module_name = absl::StrFormat("TDX_%02X", module_version);
      for (const TdxModuleIdentity& m : tcb_info.tdx_module_identities) {
        if (m.id == module_name) module = &m;
      }
    } else if (tcb_info.tdx_module.has_value()) {
      module = &*tcb_info.tdx_module;
    }
    if (module == nullptr) {
      return absl::UnauthenticatedError(absl::StrCat(
          "TDX module ", module_name, " is not described by the TCB info of FMSPC ", fmspc));
    }
    if (!common::ConstantTimeEquals(module->mr_signer, td.mr_signer_seam)) {
      return absl::UnauthenticatedError(absl::StrCat(
          "TDX module mismatch: MRSIGNERSEAM is not the signer ", module_name, " names"));
    }
    if ((td.seam_attributes & module->attributes_mask) != module->attributes) {
      return absl::UnauthenticatedError(
          absl::StrCat("TDX module mismatch: SEAMATTRIBUTES do not match ", module_name));
    }
    if (module_version > 0) {
      const TcbLevel* m = IdentityLevel(module->levels, tee_svn[0]);
      if (m == nullptr) {
        return absl::UnauthenticatedError(absl::StrCat("TCB level not supported: TDX module SVN ",
                                                       tee_svn[0], " is below every level of ",
                                                       module_name));
      }
      out.module_status = m->status;
      out.status = Converge(out.status, m->status);
      AddAdvisories(out.advisory_ids, m->advisory_ids);
    }
  }

  // Quoting enclave.
  const EnclaveReport& qe = quote.qe_report;
  const EnclaveIdentity& id = qe_identity;
  if (!common::ConstantTimeEquals(qe.mr_signer, id.mr_signer)) {
    return absl::UnauthenticatedError(
        absl::StrCat("QE identity mismatch: the QE's MRSIGNER is not ", id.id, "'s"));
  }
  if (qe.isv_prod_id != id.isv_prod_id) {
    return absl::UnauthenticatedError(absl::StrCat("QE identity mismatch: ISVPRODID ",
                                                   qe.isv_prod_id, ", expected ", id.isv_prod_id));
  }
  if ((qe.misc_select & id.miscselect_mask) != id.miscselect) {
    return absl::UnauthenticatedError("QE identity mismatch: MISCSELECT");
  }
  for (int i = 0; i < 16; ++i) {
    if ((qe.attributes[i] & id.attributes_mask[i]) != id.attributes[i]) {
      return absl::UnauthenticatedError("QE identity mismatch: ATTRIBUTES");
    }
  }
  const TcbLevel* q = IdentityLevel(id.levels, qe.isv_svn);
  if (q == nullptr) {
    // Intel's QVL: STATUS_SGX_ENCLAVE_REPORT_ISVSVN_NOT_SUPPORTED
    // (EnclaveIdentityV2::getTcbStatus), which convergeTcbStatusWithQeTcbStatus
    // (TcbLevelCheck.cpp) turns into STATUS_TCB_NOT_SUPPORTED: no status a
    // policy could weigh, the quote is not trusted.
    std::string lowest = " has no TCB levels";
    if (!id.levels.empty()) {
      auto it = std::min_element(
          id.levels.begin(), id.levels.end(),
          [](const TcbLevel& a, const TcbLevel& b) { return a.isv_svn < b.isv_svn; });
      lowest = absl::StrCat("'s lowest level is ISVSVN ", it->isv_svn);
    }
    return absl::UnauthenticatedError(
        absl::StrCat("TCB level not supported: QE ISVSVN ", qe.isv_svn,
                     " is below every QE identity TCB level (not supported); ", id.id, lowest));
  }
  out.qe_status = q->status;
  out.status = Converge(out.status, out.qe_status);
  AddAdvisories(out.advisory_ids, q->advisory_ids);
  // Revoked (and anything Intel may add later) is terminal, as in Intel's
  // QVL and trustee: the quote is not trusted whatever the policy says.
  static constexpr absl::string_view kUsable[] = {"UpToDate",
                                                  "SWHardeningNeeded",
                                                  "ConfigurationNeeded",
                                                  "ConfigurationAndSWHardeningNeeded",
                                                  "OutOfDate",
                                                  "OutOfDateConfigurationNeeded"};
  if (std::find(std::begin(kUsable), std::end(kUsable), out.status) == std::end(kUsable)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "TCB status ", out.status.substr(0, 40), " (platform ", out.platform_status.substr(0, 40),
        out.module_status ? absl::StrCat(", TDX module ", out.module_status->substr(0, 40)) : "",
        ", QE ", out.qe_status.substr(0, 40), ") for FMSPC ", fmspc,
        out.advisory_ids.empty()
            ? ""
            : absl::StrCat(", advisories ", absl::StrJoin(out.advisory_ids, ","))));
  }
  return out;
}

absl::Status CheckRevocation(const PckChain& chain, const VerifiedCollateral& collateral,
                             absl::Time at) {
  if (collateral.pck_crl) {
    KBS_RETURN_IF_ERROR(
        CheckCrl(collateral.pck_crl.get(), chain.intermediate.get(), at,
                 absl::StrCat("the PCK CRL (for the ", PckCaName(chain.ca), " CA)")));
    if (common::IsRevoked(collateral.pck_crl.get(), chain.pck.get())) {
      return absl::UnauthenticatedError("the PCK certificate is revoked (PCK CRL)");
    }
  }
  if (collateral.root_crl) {
    KBS_RETURN_IF_ERROR(
        CheckCrl(collateral.root_crl.get(), chain.root.get(), at, "the root CA CRL"));
    if (common::IsRevoked(collateral.root_crl.get(), chain.intermediate.get())) {
      return absl::UnauthenticatedError(
          absl::StrCat("the PCK ", PckCaName(chain.ca), " CA is revoked (root CA CRL)"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::shared_ptr<EVP_PKEY>> QuoteVerifier::AttestationKey(
    const std::string& xy) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = attestation_keys_.find(xy);
    if (it != attestation_keys_.end()) return it->second;
  }
  auto key = P256PublicKey(xy);
  if (!key.ok()) return absl::UnauthenticatedError(key.status().message());
  std::shared_ptr<EVP_PKEY> shared(key->release(), EVP_PKEY_free);
  std::lock_guard<std::mutex> lock(mu_);
  if (attestation_keys_.size() >= kMaxCachedKeys) attestation_keys_.clear();
  attestation_keys_[xy] = shared;
  return shared;
}

bool QuoteVerifier::QeReportVerifies(const Quote& quote, const std::string& chain_key,
                                     const CachedChain& chain) const {
  // Fixed-size fields (a 32-byte digest, the 384-byte report, the 64-byte
  // signature): the concatenation is unambiguous.
  const std::string key =
      common::Sha256(absl::StrCat(chain_key, quote.qe_report.raw, quote.qe_report_signature));
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (verified_qe_reports_.count(key) > 0) return true;
  }
  if (!VerifyP256Signature(X509_get0_pubkey(chain.chain.pck.get()), quote.qe_report.raw,
                           quote.qe_report_signature)) {
    return false;
  }
  std::lock_guard<std::mutex> lock(mu_);
  if (verified_qe_reports_.size() >= kMaxCachedKeys) verified_qe_reports_.clear();
  verified_qe_reports_.insert(key);
  return true;
}

absl::StatusOr<std::shared_ptr<const QuoteVerifier::CachedChain>> QuoteVerifier::GetChain(
    const Quote& quote, const std::string& key, absl::Time at) const {
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = chains_.find(key);
    if (it != chains_.end() && at >= it->second->window.not_before &&
        at <= it->second->window.not_after) {
      return it->second;
    }
  }
  KBS_ASSIGN_OR_RETURN(PckChain chain, ParsePckChain(quote.pck_chain_pem));
  KBS_ASSIGN_OR_RETURN(ChainWindow window,
                       VerifyChain(chain.pck.get(), {chain.intermediate.get()}, chain.root.get(),
                                   options_.anchors, at, "PCK certificate chain"));
  auto cached = std::make_shared<CachedChain>();
  KBS_ASSIGN_OR_RETURN(cached->ca_sha256, common::CertificateSha256(chain.intermediate.get()));
  cached->chain = std::move(chain);
  cached->window = window;
  std::lock_guard<std::mutex> lock(mu_);
  if (chains_.size() >= kMaxCachedChains) chains_.clear();
  chains_[key] = cached;
  return std::shared_ptr<const CachedChain>(cached);
}

absl::StatusOr<std::shared_ptr<const VerifiedCollateral>> QuoteVerifier::GetCollateral(
    const CollateralRequest& request, const CachedChain& chain, absl::Time at,
    const Collateral* explicit_collateral) const {
  auto unusable = [&request](const absl::Status& s) {
    return absl::UnavailableError(absl::StrCat("Intel collateral for ", DcapTeeName(request.tee),
                                               " FMSPC ", common::HexEncode(request.fmspc),
                                               " is unusable: ", s.message()));
  };
  if (explicit_collateral != nullptr) {
    auto verified = VerifyCollateral(*explicit_collateral, request.tee, options_.anchors, at);
    if (!verified.ok()) return unusable(verified.status());
    KBS_RETURN_IF_ERROR(CheckRevocation(chain.chain, **verified, at));
    return *verified;
  }
  const std::string key = absl::StrCat(
      DcapTeeName(request.tee), "/", common::HexEncode(request.fmspc), "/", PckCaName(request.ca));
  std::shared_ptr<const VerifiedCollateral> cached;
  bool crl_checked = false;
  {
    std::lock_guard<std::mutex> lock(mu_);
    auto it = collateral_.find(key);
    if (it != collateral_.end() && at >= it->second.collateral->not_before &&
        at <= it->second.collateral->not_after && at < it->second.refresh_at) {
      cached = it->second.collateral;
      const auto& checked = it->second.crl_checked_cas;
      crl_checked = std::find(checked.begin(), checked.end(), chain.ca_sha256) != checked.end();
    }
  }
  if (cached != nullptr) {
    if (crl_checked) {
      // The CRLs' signatures were checked for this CA; revocation is a lookup.
      if (cached->pck_crl && common::IsRevoked(cached->pck_crl.get(), chain.chain.pck.get())) {
        return absl::UnauthenticatedError("the PCK certificate is revoked (PCK CRL)");
      }
      return cached;
    }
    KBS_RETURN_IF_ERROR(CheckRevocation(chain.chain, *cached, at));
    std::lock_guard<std::mutex> lock(mu_);
    auto it = collateral_.find(key);
    if (it != collateral_.end() && it->second.collateral == cached) {
      it->second.crl_checked_cas.push_back(chain.ca_sha256);
    }
    return cached;
  }
  if (options_.collateral == nullptr) {
    return absl::UnavailableError(absl::StrCat("no Intel collateral for FMSPC ",
                                               common::HexEncode(request.fmspc),
                                               ": no collateral source is configured"));
  }
  auto fetched = options_.collateral->Get(request, options_.collateral_timeout);
  if (!fetched.ok()) {
    if (fetched.status().code() == absl::StatusCode::kNotFound) {
      return absl::UnavailableError(
          absl::StrCat("no Intel collateral for ", DcapTeeName(request.tee), " FMSPC ",
                       common::HexEncode(request.fmspc), ": ", fetched.status().message()));
    }
    return fetched.status();
  }
  auto checked = VerifyCollateral(*fetched, request.tee, options_.anchors, at);
  if (!checked.ok()) return unusable(checked.status());
  std::shared_ptr<const VerifiedCollateral> verified = *std::move(checked);
  KBS_RETURN_IF_ERROR(CheckRevocation(chain.chain, *verified, at));
  std::lock_guard<std::mutex> lock(mu_);
  CachedCollateral& entry = collateral_[key];
  if (entry.collateral != verified) {
    entry.collateral = verified;
    entry.crl_checked_cas.clear();
    entry.refresh_at = at + kCollateralRefresh;
  }
  entry.crl_checked_cas.push_back(chain.ca_sha256);
  return verified;
}

absl::StatusOr<VerifiedQuote> QuoteVerifier::Verify(absl::Span<const uint8_t> bytes, DcapTee tee,
                                                    absl::Time at,
                                                    const Collateral* collateral) const {
  // Parse.
  KBS_ASSIGN_OR_RETURN(Quote quote, ParseQuote(bytes));
  if (quote.is_tdx() != (tee == DcapTee::kTdx)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "the quote is an ", quote.is_tdx() ? "TDX" : "SGX", " quote, not ", DcapTeeName(tee)));
  }
  if (!common::ConstantTimeEquals(common::AsSpan(quote.header.qe_vendor_id),
                                  absl::MakeConstSpan(kIntelQeVendorId))) {
    return absl::UnauthenticatedError("the quote's QE vendor id is not Intel's");
  }

  // Verify: PCK chain, QE report, attestation key binding, quote signature.
  const std::string chain_key = common::Sha256(quote.pck_chain_pem);
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<const CachedChain> chain, GetChain(quote, chain_key, at));
  if (!QeReportVerifies(quote, chain_key, *chain)) {
    return absl::UnauthenticatedError("the QE report signature does not verify with the PCK key");
  }
  std::string binding = common::Sha256(absl::StrCat(quote.attestation_key, quote.qe_auth_data));
  binding.resize(64, '\0');
  if (!common::ConstantTimeEquals(binding, quote.qe_report.report_data)) {
    return absl::UnauthenticatedError(
        "the QE report does not bind the attestation key (REPORTDATA != SHA-256(attestation "
        "key || QE auth data))");
  }
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<EVP_PKEY> att_key, AttestationKey(quote.attestation_key));
  if (!VerifyP256Signature(att_key.get(), quote.signed_bytes, quote.signature)) {
    return absl::UnauthenticatedError(
        "the quote signature does not verify with the attestation key (header or body altered)");
  }

  // Collateral and TCB.
  const PckExtensions& pck = chain->chain.extensions;
  CollateralRequest request{tee, pck.fmspc, chain->chain.ca};
  KBS_ASSIGN_OR_RETURN(std::shared_ptr<const VerifiedCollateral> verified,
                       GetCollateral(request, *chain, at, collateral));
  if (verified->tcb_info.fmspc != pck.fmspc) {
    return absl::UnauthenticatedError(
        absl::StrCat("the TCB info is for FMSPC ", common::HexEncode(verified->tcb_info.fmspc),
                     " but the PCK certificate's FMSPC is ", common::HexEncode(pck.fmspc)));
  }
  if (verified->tcb_info.pce_id != pck.pce_id) {
    return absl::UnauthenticatedError("the TCB info's PCE-ID differs from the PCK certificate's");
  }
  KBS_ASSIGN_OR_RETURN(TcbEvaluation tcb,
                       EvaluateTcb(quote, pck, verified->tcb_info, verified->qe_identity));
  VerifiedQuote out;
  out.pck = pck;
  out.ca = chain->chain.ca;
  out.tcb = std::move(tcb);
  out.collateral = std::move(verified);
  out.quote = std::move(quote);
  return out;
}

}  // namespace kbs::verifier::dcap
