#include "verifier/snp/snp_verifier.h"

#include <openssl/bn.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kbs::verifier::snp {
namespace {

using common::Json;

constexpr size_t kMaxCachedChains = 10000;

std::string Hex(absl::Span<const uint8_t> bytes) { return common::HexEncode(bytes); }

// ECDSA P-384/SHA-384 over the signed bytes; R and S are 72-byte
// little-endian integers (SEV-SNP ABI 56860, Table 131).
bool VerifyReportSignature(const SnpReport& report, EVP_PKEY* key) {
  BIGNUM* r = BN_lebin2bn(report.signature_r.data(), report.signature_r.size(), nullptr);
  BIGNUM* s = BN_lebin2bn(report.signature_s.data(), report.signature_s.size(), nullptr);
  common::EcdsaSigPtr sig(ECDSA_SIG_new());
  if (r == nullptr || s == nullptr || !sig || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return false;
  }
  unsigned char* der = nullptr;
  int der_len = i2d_ECDSA_SIG(sig.get(), &der);
  if (der_len <= 0) return false;
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = ctx &&
            EVP_DigestVerifyInit(ctx.get(), nullptr,
                                 common::FetchedDigest(common::HashAlgorithm::kSha384), nullptr,
                                 key) == 1 &&
            EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                             reinterpret_cast<const unsigned char*>(report.signed_bytes.data()),
                             report.signed_bytes.size()) == 1;
  OPENSSL_free(der);
  ERR_clear_error();
  return ok;
}

Json TcbJson(const TcbVersion& t) {
  Json j = {
      {"bootloader", t.bootloader}, {"tee", t.tee}, {"snp", t.snp}, {"microcode", t.microcode}};
  if (t.fmc.has_value()) j["fmc"] = *t.fmc;
  return j;
}

std::string TcbText(const TcbVersion& t) {
  return absl::StrCat(t.fmc.has_value() ? absl::StrCat("fmc=", *t.fmc, " ") : "",
                      "bl=", t.bootloader, " tee=", t.tee, " snp=", t.snp, " ucode=", t.microcode);
}

std::string Firmware(const FirmwareVersion& v) {
  return absl::StrCat(v.major, ".", v.minor, ".", v.build);
}

Json Claims(const SnpReport& r, const VekCertificate& vek, Product product,
            absl::string_view ark_crl) {
  const bool turin = product == Product::kTurin;
  const uint64_t p = r.policy;
  const uint64_t pi = r.platform_info;
  Json claims = {
      {"version", r.version},
      {"product", std::string(ProductName(product))},
      {"signer", std::string(SignerName(vek.type))},
      {"measurement", Hex(r.measurement)},
      {"host_data", Hex(r.host_data)},
      {"report_data", Hex(r.report_data)},
      {"debug", r.debug_allowed()},
      {"policy",
       {{"abi_minor", p & 0xFF},
        {"abi_major", (p >> 8) & 0xFF},
        {"smt", ((p >> 16) & 1) != 0},
        {"migrate_ma", ((p >> 18) & 1) != 0},
        {"debug", ((p >> 19) & 1) != 0},
        {"single_socket", ((p >> 20) & 1) != 0},
        {"raw", p}}},
      {"vmpl", r.vmpl},
      {"guest_svn", r.guest_svn},
      {"reported_tcb", TcbJson(TcbVersion::Decode(r.reported_tcb, turin))},
      {"current_tcb", TcbJson(TcbVersion::Decode(r.current_tcb, turin))},
      {"committed_tcb", TcbJson(TcbVersion::Decode(r.committed_tcb, turin))},
      {"launch_tcb", TcbJson(TcbVersion::Decode(r.launch_tcb, turin))},
      {"platform_info",
       {{"smt_enabled", (pi & 1) != 0},
        {"tsme_enabled", ((pi >> 1) & 1) != 0},
        {"ecc_enabled", ((pi >> 2) & 1) != 0},
        {"rapl_disabled", ((pi >> 3) & 1) != 0},
        {"ciphertext_hiding_enabled", ((pi >> 4) & 1) != 0},
        {"alias_check_complete", ((pi >> 5) & 1) != 0},
        {"raw", pi}}},
      {"family_id", Hex(r.family_id)},
      {"image_id", Hex(r.image_id)},
      {"id_key_digest", Hex(r.id_key_digest)},
      {"author_key_digest", Hex(r.author_key_digest)},
      {"author_key_enabled", (r.key_info & 1) != 0},
      {"chip_id", Hex(r.chip_id)},
      {"report_id", Hex(r.report_id)},
      {"report_id_ma", Hex(r.report_id_ma)},
      {"firmware", {{"current", Firmware(r.current)}, {"committed", Firmware(r.committed)}}},
      {"ark_crl", std::string(ark_crl)},
  };
  if (vek.type == SignerType::kVlek) claims["csp_id"] = vek.csp_id;
  return claims;
}

}  // namespace

std::unique_ptr<SnpVerifier> SnpVerifier::Create(SnpVerifierOptions options,
                                                 const common::Clock* clock) {
  return std::unique_ptr<SnpVerifier>(new SnpVerifier(std::move(options), clock));
}

absl::StatusOr<VerifiedClaims> SnpVerifier::Verify(const Json& evidence,
                                                   const EvidenceBinding& binding) const {
  KBS_ASSIGN_OR_RETURN(SnpEvidence parsed, ParseSnpEvidence(evidence));
  SnpExpectations expect;
  expect.report_data = binding.report_data;
  expect.host_data = binding.init_data_digest;
  expect.at = clock_->Now();
  return VerifyEvidence(parsed, expect);
}

absl::StatusOr<SnpVerifier::VerifiedVek> SnpVerifier::GetVerifiedVek(
    const SnpReport& report, const SnpEvidence& evidence,
    const std::vector<std::string>& extra_certs_der, absl::Time at, absl::Time deadline) const {
  const uint32_t signing_key = report.signing_key();
  if (signing_key != 0 && signing_key != 1) {
    return absl::UnauthenticatedError(absl::StrCat(
        "SNP report is not signed by a VCEK or VLEK (KEY_INFO.SIGNING_KEY=", signing_key, ")"));
  }
  const SignerType signer = signing_key == 0 ? SignerType::kVcek : SignerType::kVlek;
  const char* signer_name = signer == SignerType::kVcek ? "VCEK" : "VLEK";

  // The VEK: from the evidence's certificate table, else from collateral
  // (VCEKs only: KDS indexes them by chip id and TCB).
  std::string vek_der;
  for (const CertTableEntry& e : evidence.cert_chain) {
    if (e.type == signer_name) vek_der = e.der;
  }
  // From version 3 on the product is the report's CPUID (evidence-formats.md
  // §1.2); one outside the product table is not a product this verifier
  // knows how to check.
  std::optional<Product> cpuid_product = report.cpuid_product();
  if (report.version >= 3 && !cpuid_product.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat(
        "unknown AMD product: the report's CPUID family 0x", absl::Hex(report.cpuid_family),
        " model 0x", absl::Hex(report.cpuid_model), " is not Milan, Genoa or Turin"));
  }
  if (vek_der.empty()) {
    if (signer == SignerType::kVlek) {
      return absl::UnauthenticatedError("VLEK-signed report without a VLEK in cert_chain");
    }
    if (options_.collateral == nullptr) {
      return absl::UnauthenticatedError(
          "no VCEK in the evidence and no collateral source configured");
    }
    std::vector<Product> products;
    if (cpuid_product.has_value()) {
      products = {*cpuid_product};
    } else {
      products = {Product::kMilan, Product::kGenoa, Product::kTurin};
    }
    absl::Status last = absl::NotFoundError("VCEK not found");
    for (Product p : products) {
      const bool turin = p == Product::kTurin;
      VcekRequest request{
          p, std::string(reinterpret_cast<const char*>(report.chip_id.data()), turin ? 8 : 64),
          TcbVersion::Decode(report.reported_tcb, turin)};
      auto der = options_.collateral->GetVcek(request, deadline);
      if (der.ok()) {
        vek_der = *std::move(der);
        break;
      }
      last = der.status();
      if (last.code() != absl::StatusCode::kNotFound) break;
    }
    if (vek_der.empty()) {
      if (last.code() == absl::StatusCode::kUnavailable) return last;
      return absl::UnauthenticatedError(
          absl::StrCat("no VCEK for this chip and TCB: ", last.message()));
    }
  }
  auto check_type = [&](const VekCertificate& vek) -> absl::Status {
    if (vek.type != signer) {
      return absl::UnauthenticatedError(absl::StrCat("the report says it is signed by a ",
                                                     signer_name, " but the certificate is a ",
                                                     SignerName(vek.type)));
    }
    return absl::OkStatus();
  };
  const std::string key = common::Sha256(vek_der);
  std::optional<VerifiedVek> cached;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = chain_cache_.find(key);
    if (it != chain_cache_.end() && at >= it->second.validity.not_before &&
        at <= it->second.validity.not_after) {
      cached = it->second;
    }
  }
  if (cached.has_value()) {
    KBS_RETURN_IF_ERROR(check_type(*cached->vek));
    KBS_RETURN_IF_ERROR(CheckRevocation(key, evidence, *cached, at, deadline));
    return *std::move(cached);
  }
  auto parsed = ParseVekCertificate(vek_der);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(signer_name, ": ", parsed.status().message()));
  }
  auto vek = std::make_shared<VekCertificate>(*std::move(parsed));
  KBS_RETURN_IF_ERROR(check_type(*vek));
  // The chain is checked for the product the certificate names (v2 reports
  // carry no CPUID); the report's CPUID must agree after the signature.
  std::optional<Product> product = vek->product ? vek->product : cpuid_product;
  if (!product.has_value()) {
    return absl::UnauthenticatedError(absl::StrCat("cannot tell the AMD product: ", signer_name,
                                                   " productName '", vek->product_name,
                                                   "' and the report's CPUID are both unknown"));
  }
  AmdCertificates certs;
  auto add_cert = [&certs](absl::string_view der) {
    auto cert = common::ParseDerCertificate(common::AsSpan(der));
    if (cert.ok()) certs.candidates.push_back(*std::move(cert));
  };
  for (const CertTableEntry& e : evidence.cert_chain) {
    if (e.type == "ASK" || e.type == "ARK" || e.type == "ASVK") add_cert(e.der);
  }
  for (const std::string& der : extra_certs_der) add_cert(der);
  if (options_.collateral != nullptr) {
    auto chain = options_.collateral->GetChain(*product, signer, deadline);
    if (chain.ok()) {
      for (const std::string& der : chain->certs_der) add_cert(der);
    } else if (chain.status().code() == absl::StatusCode::kUnavailable &&
               certs.candidates.empty()) {
      return chain.status();
    }
  }
  // CRLs are checked below, for cached chains too.
  KBS_ASSIGN_OR_RETURN(ChainValidity validity,
                       VerifyVekChain(*vek, *product, certs, options_.anchors, at));
  VerifiedVek verified;
  verified.vek = std::move(vek);
  verified.product = *product;
  verified.validity = std::move(validity);
  KBS_RETURN_IF_ERROR(CheckRevocation(key, evidence, verified, at, deadline));
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (chain_cache_.size() >= kMaxCachedChains) chain_cache_.clear();
    chain_cache_[key] = verified;
  }
  return verified;
}

absl::Status SnpVerifier::CheckRevocation(const std::string& key, const SnpEvidence& evidence,
                                          VerifiedVek& vv, absl::Time at,
                                          absl::Time deadline) const {
  const X509* ark = vv.validity.ark.get();
  CrlStatus status = CrlStatus::kNone;
  auto note = [&status, at](const ArkCrl& crl) {
    status = std::max(status, crl.CurrentAt(at) ? CrlStatus::kCurrent : CrlStatus::kStale);
  };
  // CRLs in the evidence count when the ARK signed them.
  for (const CertTableEntry& e : evidence.cert_chain) {
    if (e.type != "CRL") continue;
    auto crl = ParseArkCrl(e.der, ark);
    if (!crl.ok()) continue;
    KBS_RETURN_IF_ERROR(CheckNotRevoked((*crl)->crl.get(), *vv.vek, vv.validity));
    note(**crl);
  }

  // The collateral's CRL for this ARK, looked up when due (see
  // SnpVerifierOptions); one lookup at a time claims the slot.
  std::shared_ptr<const ArkCrl> held;
  bool look = false;
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    CrlState& state = crls_[vv.validity.ark_sha256];
    held = state.crl;
    const absl::Time now = clock_->Now();
    const absl::Duration every = held != nullptr && held->CurrentAt(at)
                                     ? options_.crl_recheck_interval
                                     : options_.crl_retry_interval;
    if (options_.collateral != nullptr && now - state.last_lookup >= every) {
      look = true;
      state.last_lookup = now;
    }
  }
  if (look) {
    // Best effort within the attestation's deadline: without it, the CRL
    // held (if any) still applies and the lookup is tried again later.
    auto der = options_.collateral->GetCrl(vv.product, at, deadline);
    if (der.ok()) {
      auto fetched = ParseArkCrl(*der, ark);
      if (fetched.ok()) {
        std::lock_guard<std::mutex> lock(cache_mu_);
        CrlState& state = crls_[vv.validity.ark_sha256];
        // Never trade a CRL for an older one.
        if (state.crl == nullptr || (*fetched)->this_update >= state.crl->this_update) {
          state.crl = *std::move(fetched);
        }
        held = state.crl;
      } else {
        KBS_LOG(kWarning, "ignoring the ", ProductName(vv.product),
                " ARK CRL from collateral: ", fetched.status().message());
      }
    } else if (der.status().code() != absl::StatusCode::kNotFound) {
      KBS_LOG(kWarning, "no ", ProductName(vv.product),
              " ARK CRL from collateral this time: ", der.status().message());
    }
  }
  if (held != nullptr) {
    if (vv.crl_checked != held->sha256) {
      absl::Status revoked = CheckNotRevoked(held->crl.get(), *vv.vek, vv.validity);
      std::lock_guard<std::mutex> lock(cache_mu_);
      auto it = chain_cache_.find(key);
      if (!revoked.ok()) {
        if (it != chain_cache_.end()) chain_cache_.erase(it);
        return revoked;
      }
      vv.crl_checked = held->sha256;
      if (it != chain_cache_.end()) it->second.crl_checked = held->sha256;
    }
    note(*held);
  }
  vv.crl_status = status;
  return absl::OkStatus();
}

absl::StatusOr<VerifiedClaims> SnpVerifier::VerifyEvidence(
    const SnpEvidence& evidence, const SnpExpectations& expect,
    const std::vector<std::string>& extra_certs_der) const {
  // Parse.
  KBS_ASSIGN_OR_RETURN(SnpReport report, ParseSnpReport(common::AsSpan(evidence.report)));

  // Verify: the VEK's chain, then the report's signature.
  const absl::Time deadline = absl::Now() + options_.collateral_timeout;
  KBS_ASSIGN_OR_RETURN(VerifiedVek vv,
                       GetVerifiedVek(report, evidence, extra_certs_der, expect.at, deadline));
  const VekCertificate& vek = *vv.vek;
  const char* signer_name = vek.type == SignerType::kVcek ? "VCEK" : "VLEK";
  if (!VerifyReportSignature(report, X509_get0_pubkey(vek.cert.get()))) {
    return absl::UnauthenticatedError(
        absl::StrCat("SNP report signature does not verify with the ", signer_name,
                     " (the report was altered, or signed by another chip)"));
  }
  // The report and its certificate agree on product, TCB and chip.
  std::optional<Product> cpuid_product = report.cpuid_product();
  if (cpuid_product.has_value() && *cpuid_product != vv.product) {
    return absl::UnauthenticatedError(
        absl::StrCat("wrong product: the report's CPUID says ", ProductName(*cpuid_product),
                     " but the ", signer_name, " is for ", ProductName(vv.product)));
  }
  const bool turin = vv.product == Product::kTurin;
  TcbVersion reported = TcbVersion::Decode(report.reported_tcb, turin);
  if (!VekTcbMatches(vek.tcb, reported, vv.product)) {
    return absl::UnauthenticatedError(absl::StrCat(
        "TCB mismatch: the ", signer_name, " is issued for ", TcbText(vek.tcb),
        turin && !vek.tcb.fmc.has_value() ? " (no fmcSPL, which a Turin certificate must carry)"
                                          : "",
        " but REPORTED_TCB is ", TcbText(reported)));
  }
  if (vek.type == SignerType::kVcek) {
    absl::Span<const uint8_t> chip(report.chip_id.data(), turin ? 8 : 64);
    if (!common::ConstantTimeEquals(common::AsSpan(vek.hwid), chip)) {
      return absl::UnauthenticatedError(
          "hwID mismatch: the VCEK was issued for another chip than the report's CHIP_ID");
    }
  }

  // Bind the report to this attestation.
  if (expect.report_data.has_value()) {
    std::string want = FitReportData(*expect.report_data, report.report_data.size());
    if (!common::ConstantTimeEquals(common::AsSpan(want), report.report_data)) {
      return absl::UnauthenticatedError(
          "SNP REPORT_DATA does not match the runtime-data digest (nonce, tee-pubkey or "
          "additional evidence differ)");
    }
  }
  if (expect.host_data.has_value()) {
    std::string want = FitReportData(*expect.host_data, report.host_data.size());
    if (!common::ConstantTimeEquals(common::AsSpan(want), report.host_data)) {
      return absl::UnauthenticatedError("SNP HOST_DATA does not match the init-data digest");
    }
  }

  // Appraise.
  TrustVector tv;
  tv.hardware = kAffirming;  // genuine AMD silicon, chained to a pinned ARK
  if (report.debug_allowed() || report.vmpl != 0) tv.configuration = kWarningUnsafeConfig;
  const char* ark_crl = vv.crl_status == CrlStatus::kCurrent ? "current"
                        : vv.crl_status == CrlStatus::kStale ? "stale"
                                                             : "none";
  return MakeVerifiedClaims("snp", Claims(report, vek, vv.product, ark_crl), tv);
}

}  // namespace kbs::verifier::snp
