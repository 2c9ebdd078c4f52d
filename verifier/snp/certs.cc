#include "verifier/snp/certs.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "common/status_macros.h"

namespace kbs::verifier::snp {
namespace {

// AMD's OIDs under 1.3.6.1.4.1.3704.1 (evidence-formats.md §1.4).
constexpr char kProductName[] = "1.3.6.1.4.1.3704.1.2";
constexpr char kBlSpl[] = "1.3.6.1.4.1.3704.1.3.1";
constexpr char kTeeSpl[] = "1.3.6.1.4.1.3704.1.3.2";
constexpr char kSnpSpl[] = "1.3.6.1.4.1.3704.1.3.3";
constexpr char kUcodeSpl[] = "1.3.6.1.4.1.3704.1.3.8";
constexpr char kFmcSpl[] = "1.3.6.1.4.1.3704.1.3.9";
constexpr char kHwId[] = "1.3.6.1.4.1.3704.1.4";
constexpr char kCspId[] = "1.3.6.1.4.1.3704.1.5";

// ARK fingerprints (SHA-256 of the DER certificate), as published by AMD KDS
// (/vcek/v1/<product>/cert_chain) and listed in testdata/PROVENANCE.md.
constexpr std::pair<Product, const char*> kAmdArks[] = {
    {Product::kMilan, "69d063b45344d26a2e94e1f4210de49ef555308287d4c174445c95639a540bcd"},
    {Product::kGenoa, "4c6598d19c18719c5dfd4a7d335f674e5bfe1d8f800cea2cf270c10d103db2f1"},
    {Product::kTurin, "1f084161a44bb6d93778a904877d4819cafa5d05ef4193b2ded9dd9c73dd3f6a"},
};

absl::StatusOr<uint8_t> Spl(const X509* cert, const char* oid, absl::string_view name) {
  std::optional<std::string> value = common::ExtensionValue(cert, oid);
  if (!value.has_value()) {
    return absl::InvalidArgumentError(absl::StrCat("VEK certificate has no ", name, " extension"));
  }
  auto v = common::DecodeDerInteger(*value);
  if (!v.ok() || *v < 0 || *v > 255) {
    return absl::InvalidArgumentError(absl::StrCat("VEK certificate ", name, " is not 0..255"));
  }
  return static_cast<uint8_t>(*v);
}

bool IsSelfSigned(const X509* cert) {
  return X509_NAME_cmp(X509_get_subject_name(cert), X509_get_issuer_name(cert)) == 0 &&
         common::IsSignedBy(cert, cert);
}

}  // namespace

absl::string_view SignerName(SignerType t) { return t == SignerType::kVcek ? "vcek" : "vlek"; }

SharedX509 ShareX509(const X509* cert) {
  X509* mutable_cert = const_cast<X509*>(cert);
  X509_up_ref(mutable_cert);
  return SharedX509(mutable_cert, [](const X509* c) { X509_free(const_cast<X509*>(c)); });
}

AmdCaRole CaRoleOf(const X509* cert) {
  if (IsSelfSigned(cert)) return AmdCaRole::kArk;
  return absl::StrContains(common::CommonName(cert), "VLEK") ? AmdCaRole::kAsvk : AmdCaRole::kAsk;
}

AmdCaRole IntermediateRole(SignerType signer) {
  return signer == SignerType::kVlek ? AmdCaRole::kAsvk : AmdCaRole::kAsk;
}

bool VekTcbMatches(const TcbVersion& vek, const TcbVersion& reported, Product product) {
  if (vek.bootloader != reported.bootloader || vek.tee != reported.tee || vek.snp != reported.snp ||
      vek.microcode != reported.microcode) {
    return false;
  }
  if (product != Product::kTurin) return true;
  return vek.fmc.has_value() && reported.fmc.has_value() && *vek.fmc == *reported.fmc;
}

absl::StatusOr<VekCertificate> ParseVekCertificate(absl::string_view der) {
  KBS_ASSIGN_OR_RETURN(common::X509Ptr cert, common::ParseDerCertificate(common::AsSpan(der)));
  VekCertificate vek;
  std::optional<std::string> product = common::ExtensionValue(cert.get(), kProductName);
  if (product.has_value()) {
    auto name = common::DecodeDerIa5String(*product);
    if (!name.ok()) return absl::InvalidArgumentError("VEK productName is not an IA5String");
    vek.product_name = *name;
    vek.product = ProductFromName(*name);
  }
  std::optional<std::string> fmc = common::ExtensionValue(cert.get(), kFmcSpl);
  vek.tcb.fmc.reset();
  if (fmc.has_value()) {
    KBS_ASSIGN_OR_RETURN(uint8_t v, Spl(cert.get(), kFmcSpl, "fmcSPL"));
    vek.tcb.fmc = v;
  }
  KBS_ASSIGN_OR_RETURN(vek.tcb.bootloader, Spl(cert.get(), kBlSpl, "blSPL"));
  KBS_ASSIGN_OR_RETURN(vek.tcb.tee, Spl(cert.get(), kTeeSpl, "teeSPL"));
  KBS_ASSIGN_OR_RETURN(vek.tcb.snp, Spl(cert.get(), kSnpSpl, "snpSPL"));
  KBS_ASSIGN_OR_RETURN(vek.tcb.microcode, Spl(cert.get(), kUcodeSpl, "ucodeSPL"));
  std::optional<std::string> hwid = common::ExtensionValue(cert.get(), kHwId);
  std::optional<std::string> csp = common::ExtensionValue(cert.get(), kCspId);
  if (hwid.has_value() == csp.has_value()) {
    return absl::InvalidArgumentError(
        "VEK certificate must carry exactly one of hwID (VCEK) and cspID (VLEK)");
  }
  if (hwid.has_value()) {
    vek.type = SignerType::kVcek;
    // KDS puts the raw chip id in the extension without a DER tag; accept a
    // DER OCTET STRING wrapper too.
    std::string id = *hwid;
    if (id.size() >= 2 && static_cast<uint8_t>(id[0]) == 0x04 &&
        static_cast<uint8_t>(id[1]) == id.size() - 2 &&
        (id.size() - 2 == 64 || id.size() - 2 == 8)) {
      id = id.substr(2);
    }
    if (id.size() != 64 && id.size() != 8) {
      return absl::InvalidArgumentError("VCEK hwID must be 64 bytes (8 on Turin)");
    }
    vek.hwid = id;
  } else {
    vek.type = SignerType::kVlek;
    auto csp_id = common::DecodeDerIa5String(*csp);
    vek.csp_id = csp_id.ok() ? *csp_id : *csp;
  }
  auto curve = common::GetEcCurve(X509_get0_pubkey(cert.get()));
  if (!curve.ok() || *curve != common::EcCurve::kP384) {
    return absl::InvalidArgumentError("VEK certificate key is not EC P-384");
  }
  vek.cert = std::move(cert);
  return vek;
}

TrustAnchors TrustAnchors::AmdDefaults() {
  TrustAnchors anchors;
  for (const auto& [product, fp] : kAmdArks) (void)anchors.Add(product, fp);
  return anchors;
}

absl::Status TrustAnchors::Add(Product product, absl::string_view sha256_hex) {
  auto raw = common::HexDecode(sha256_hex);
  if (!raw.ok() || raw->size() != 32) {
    return absl::InvalidArgumentError("an ARK fingerprint is 64 hex digits (SHA-256 of the DER)");
  }
  pinned_[product].insert(*raw);
  return absl::OkStatus();
}

bool TrustAnchors::IsTrusted(Product product, const X509* ark) const {
  auto it = pinned_.find(product);
  if (it == pinned_.end()) return false;
  auto fp = common::CertificateSha256(ark);
  return fp.ok() && it->second.count(*fp) != 0;
}

absl::StatusOr<ChainValidity> VerifyVekChain(const VekCertificate& vek, Product product,
                                             const AmdCertificates& certs,
                                             const TrustAnchors& anchors, absl::Time at) {
  const std::string product_name(ProductName(product));
  // The ARK: pinned for this product and self-signed.
  const X509* ark = nullptr;
  for (const common::X509Ptr& c : certs.candidates) {
    if (anchors.IsTrusted(product, c.get())) {
      ark = c.get();
      break;
    }
  }
  if (ark == nullptr) {
    return absl::UnauthenticatedError(absl::StrCat(
        "no trusted ARK for ", product_name,
        " (the ARK offered does not match a pinned fingerprint, or none was found in the "
        "evidence or collateral)"));
  }
  if (!IsSelfSigned(ark)) {
    return absl::UnauthenticatedError(absl::StrCat("ARK-", product_name, " is not self-signed"));
  }
  KBS_RETURN_IF_ERROR(common::CheckValidity(ark, at, absl::StrCat("ARK-", product_name)));

  // The intermediate: ASK for a VCEK, ASVK for a VLEK, signed by the ARK,
  // and the one that signed the VEK.
  const bool vlek = vek.type == SignerType::kVlek;
  const char* role = vlek ? "ASVK" : "ASK";
  const X509* intermediate = nullptr;
  for (const common::X509Ptr& c : certs.candidates) {
    if (c.get() == ark || !common::IsSignedBy(vek.cert.get(), c.get())) continue;
    intermediate = c.get();
    break;
  }
  if (intermediate == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat(SignerName(vek.type), " signature does not verify with any ", role, " for ",
                     product_name, " (wrong chain, or the certificate was tampered with)"));
  }
  std::string cn = common::CommonName(intermediate);
  if (absl::StrContains(cn, "VLEK") != vlek) {
    return absl::UnauthenticatedError(absl::StrCat("the ", SignerName(vek.type), " is signed by ",
                                                   cn, ", which is not an ", role));
  }
  if (!common::IsSignedBy(intermediate, ark)) {
    return absl::UnauthenticatedError(
        absl::StrCat(role, " ", cn, " is not signed by the trusted ARK-", product_name));
  }
  KBS_RETURN_IF_ERROR(common::CheckValidity(intermediate, at, role));
  KBS_RETURN_IF_ERROR(
      common::CheckValidity(vek.cert.get(), at, vlek ? absl::string_view("VLEK") : "VCEK"));

  ChainValidity chain;
  chain.not_before = std::max(
      {common::NotBefore(ark), common::NotBefore(intermediate), common::NotBefore(vek.cert.get())});
  chain.not_after = std::min(
      {common::NotAfter(ark), common::NotAfter(intermediate), common::NotAfter(vek.cert.get())});
  chain.ark = ShareX509(ark);
  chain.intermediate = ShareX509(intermediate);
  KBS_ASSIGN_OR_RETURN(chain.ark_sha256, common::CertificateSha256(ark));

  // Revocation by the ARK's CRL, when one is available.
  for (const common::X509CrlPtr& crl : certs.crls) {
    if (!common::IsCrlSignedBy(crl.get(), ark)) continue;
    KBS_RETURN_IF_ERROR(CheckNotRevoked(crl.get(), vek, chain));
  }
  return chain;
}

absl::Status CheckNotRevoked(const X509_CRL* crl, const VekCertificate& vek,
                             const ChainValidity& chain) {
  if (common::IsRevoked(crl, chain.intermediate.get())) {
    const char* role = vek.type == SignerType::kVlek ? "ASVK" : "ASK";
    return absl::UnauthenticatedError(absl::StrCat(
        role, " ", common::CommonName(chain.intermediate.get()), " is revoked by the ARK CRL"));
  }
  if (common::IsRevoked(crl, vek.cert.get())) {
    return absl::UnauthenticatedError(
        absl::StrCat(SignerName(vek.type), " is revoked by the ARK CRL"));
  }
  return absl::OkStatus();
}

absl::StatusOr<AmdCaChain> CheckCaBundle(const std::vector<common::X509Ptr>& certs, Product product,
                                         SignerType signer, const TrustAnchors& anchors,
                                         std::optional<absl::Time> at) {
  const std::string product_name(ProductName(product));
  const AmdCaRole role = IntermediateRole(signer);
  const char* role_name = role == AmdCaRole::kAsvk ? "ASVK" : "ASK";
  const X509* ark = nullptr;
  for (const common::X509Ptr& c : certs) {
    if (anchors.IsTrusted(product, c.get()) && IsSelfSigned(c.get())) {
      ark = c.get();
      break;
    }
  }
  if (ark == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("no pinned, self-signed ARK-", product_name, " among the certificates"));
  }
  if (at.has_value()) {
    KBS_RETURN_IF_ERROR(common::CheckValidity(ark, *at, absl::StrCat("ARK-", product_name)));
  }
  const X509* intermediate = nullptr;
  for (const common::X509Ptr& c : certs) {
    if (c.get() == ark || CaRoleOf(c.get()) != role || !common::IsSignedBy(c.get(), ark)) continue;
    intermediate = c.get();
    break;
  }
  if (intermediate == nullptr) {
    return absl::UnauthenticatedError(
        absl::StrCat("no ", role_name, " signed by ARK-", product_name, " among the certificates"));
  }
  if (at.has_value()) {
    KBS_RETURN_IF_ERROR(common::CheckValidity(intermediate, *at, role_name));
  }
  return AmdCaChain{ShareX509(ark), ShareX509(intermediate)};
}

absl::StatusOr<std::shared_ptr<const ArkCrl>> ParseArkCrl(absl::string_view der, const X509* ark) {
  auto parsed = common::ParseCrl(der);
  if (!parsed.ok()) return absl::InvalidArgumentError("the ARK CRL is not a CRL");
  if (!common::IsCrlSignedBy(parsed->get(), ark)) {
    return absl::UnauthenticatedError(
        absl::StrCat("the CRL is not signed by ", common::CommonName(ark)));
  }
  auto out = std::make_shared<ArkCrl>();
  out->sha256 = common::Sha256(der);
  out->this_update = common::FromAsn1Time(X509_CRL_get0_lastUpdate(parsed->get()));
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(parsed->get());
  out->next_update = next == nullptr ? absl::InfiniteFuture() : common::FromAsn1Time(next);
  X509_CRL* crl = parsed->release();
  out->crl = std::shared_ptr<const X509_CRL>(
      crl, [](const X509_CRL* c) { X509_CRL_free(const_cast<X509_CRL*>(c)); });
  return std::shared_ptr<const ArkCrl>(std::move(out));
}

absl::StatusOr<std::pair<absl::Time, absl::Time>> CrlUpdateTimes(absl::string_view der) {
  auto parsed = common::ParseCrl(der);
  if (!parsed.ok()) return absl::InvalidArgumentError("not a CRL");
  const ASN1_TIME* next = X509_CRL_get0_nextUpdate(parsed->get());
  return std::make_pair(common::FromAsn1Time(X509_CRL_get0_lastUpdate(parsed->get())),
                        next == nullptr ? absl::InfiniteFuture() : common::FromAsn1Time(next));
}

}  // namespace kbs::verifier::snp
