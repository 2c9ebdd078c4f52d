#include "tests/testing/snp_generator.h"

#include <openssl/ecdsa.h>
#include <openssl/pem.h>
#include <openssl/rsa.h>
#include <openssl/x509v3.h>

#include <cstring>

#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "common/x509.h"
#include "verifier/snp/evidence.h"

namespace kbs::testing {
namespace {

using verifier::snp::Product;

void AddName(X509_NAME* name, absl::string_view cn) {
  X509_NAME_add_entry_by_txt(name, "OU", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Engineering"), -1, -1, 0);
  X509_NAME_add_entry_by_txt(name, "O", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>("Advanced Micro Devices"), -1,
                             -1, 0);
  std::string c(cn);
  X509_NAME_add_entry_by_txt(name, "CN", MBSTRING_ASC,
                             reinterpret_cast<const unsigned char*>(c.c_str()), -1, -1, 0);
}

// Signs `cert` with RSASSA-PSS/SHA-384, MGF1-SHA-384, salt 48, as AMD does.
absl::Status SignPss(X509* cert, EVP_PKEY* key) {
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (!ctx || EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha384(), nullptr, key) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) != 1 ||
      EVP_PKEY_CTX_set_rsa_mgf1_md(pctx, EVP_sha384()) != 1 ||
      X509_sign_ctx(cert, ctx.get()) <= 0) {
    return common::OpenSslError("signing test certificate");
  }
  return absl::OkStatus();
}

// An extension whose value is the given DER (or raw) bytes.
absl::Status AddRawExtension(X509* cert, const char* oid, absl::string_view value) {
  std::unique_ptr<ASN1_OBJECT, common::OpenSslDeleter<ASN1_OBJECT, ASN1_OBJECT_free>> obj(
      OBJ_txt2obj(oid, 1));
  std::unique_ptr<ASN1_OCTET_STRING,
                  common::OpenSslDeleter<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>>
      data(ASN1_OCTET_STRING_new());
  ASN1_OCTET_STRING_set(data.get(), reinterpret_cast<const unsigned char*>(value.data()),
                        static_cast<int>(value.size()));
  X509_EXTENSION* ext = X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 0, data.get());
  if (ext == nullptr || X509_add_ext(cert, ext, -1) != 1) {
    X509_EXTENSION_free(ext);
    return common::OpenSslError("adding extension");
  }
  X509_EXTENSION_free(ext);
  return absl::OkStatus();
}

std::string DerInteger(int64_t v) {
  std::unique_ptr<ASN1_INTEGER, common::OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>> i(
      ASN1_INTEGER_new());
  ASN1_INTEGER_set_int64(i.get(), v);
  unsigned char* der = nullptr;
  int len = i2d_ASN1_INTEGER(i.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

std::string DerIa5(absl::string_view s) {
  std::unique_ptr<ASN1_IA5STRING, common::OpenSslDeleter<ASN1_IA5STRING, ASN1_IA5STRING_free>> v(
      ASN1_IA5STRING_new());
  ASN1_STRING_set(v.get(), s.data(), static_cast<int>(s.size()));
  unsigned char* der = nullptr;
  int len = i2d_ASN1_IA5STRING(v.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<common::X509Ptr> MakeCert(absl::string_view cn, EVP_PKEY* subject_key,
                                         const X509* issuer, EVP_PKEY* issuer_key, long serial,
                                         absl::Time not_before, absl::Time not_after) {
  common::X509Ptr cert(X509_new());
  X509_set_version(cert.get(), 2);
  ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial);
  ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(not_before));
  ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(not_after));
  AddName(X509_get_subject_name(cert.get()), cn);
  X509_set_issuer_name(cert.get(), issuer != nullptr ? X509_get_subject_name(issuer)
                                                     : X509_get_subject_name(cert.get()));
  X509_set_pubkey(cert.get(), subject_key);
  if (absl::Status s = SignPss(cert.get(), issuer_key); !s.ok()) return s;
  return cert;
}

std::string Der(const X509* cert) { return *common::CertificateDer(cert); }

}  // namespace

verifier::snp::TcbVersion PlausibleTcb() {
  verifier::snp::TcbVersion tcb;
  tcb.bootloader = 10;
  tcb.snp = 23;
  tcb.microcode = 25;
  return tcb;
}

absl::StatusOr<std::unique_ptr<SnpTestChain>> SnpTestChain::Create(Product product) {
  auto chain = std::unique_ptr<SnpTestChain>(new SnpTestChain());
  chain->product_ = product;
  std::string name(verifier::snp::ProductName(product));
  KBS_ASSIGN_OR_RETURN(chain->ark_key_, common::GenerateRsaKey(2048));
  KBS_ASSIGN_OR_RETURN(chain->ask_key_, common::GenerateRsaKey(2048));
  KBS_ASSIGN_OR_RETURN(chain->asvk_key_, common::GenerateRsaKey(2048));
  absl::Time from = absl::FromUnixSeconds(1600000000);  // 2020-09-13
  absl::Time to = absl::FromUnixSeconds(2400000000);    // 2046-01-20
  KBS_ASSIGN_OR_RETURN(chain->ark_, MakeCert("ARK-" + name, chain->ark_key_.get(), nullptr,
                                             chain->ark_key_.get(), 1, from, to));
  KBS_ASSIGN_OR_RETURN(chain->ask_,
                       MakeCert("SEV-" + name, chain->ask_key_.get(), chain->ark_.get(),
                                chain->ark_key_.get(), 2, from, to));
  KBS_ASSIGN_OR_RETURN(chain->asvk_,
                       MakeCert("SEV-VLEK-" + name, chain->asvk_key_.get(), chain->ark_.get(),
                                chain->ark_key_.get(), 3, from, to));
  return chain;
}

std::string SnpTestChain::ArkFingerprintHex() const {
  return common::HexEncode(*common::CertificateSha256(ark_.get()));
}

std::string SnpTestChain::ChainPem() const {
  return PemOfDers({Der(ask_.get()), Der(ark_.get()), Der(asvk_.get())});
}

std::string PemOfDers(const std::vector<std::string>& ders) {
  std::string out;
  for (const std::string& der : ders) {
    auto cert = common::ParseDerCertificate(common::AsSpan(der));
    if (!cert.ok()) return "";
    common::BioPtr bio(BIO_new(BIO_s_mem()));
    PEM_write_bio_X509(bio.get(), cert->get());
    char* data = nullptr;
    long len = BIO_get_mem_data(bio.get(), &data);
    out.append(data, static_cast<size_t>(len));
  }
  return out;
}

std::string SnpTestChain::AskDer() const { return Der(ask_.get()); }
std::string SnpTestChain::ArkDer() const { return Der(ark_.get()); }

// A VCEK (hwID = chip id) or VLEK (cspID) with AMD's extensions, signed by
// the ASK or ASVK.
absl::StatusOr<std::string> SnpTestChain::IssueVek(const SnpCertOptions& o, bool vlek,
                                                   absl::string_view csp_id) {
  KBS_ASSIGN_OR_RETURN(vek_key_, common::GenerateEcKey(common::EcCurve::kP384));
  const X509* issuer = vlek ? asvk_.get() : ask_.get();
  EVP_PKEY* issuer_key = vlek ? asvk_key_.get() : ask_key_.get();
  KBS_ASSIGN_OR_RETURN(common::X509Ptr cert,
                       MakeCert(vlek ? "SEV-VLEK" : "SEV-VCEK", vek_key_.get(), issuer, issuer_key,
                                0, o.not_before, o.not_after));
  // Extensions go in after the first signature: the certificate is re-signed.
  std::vector<std::pair<const char*, std::string>> extensions = {
      {"1.3.6.1.4.1.3704.1.1", DerInteger(0)},
      {"1.3.6.1.4.1.3704.1.2", DerIa5(o.product_name)},
      {"1.3.6.1.4.1.3704.1.3.1", DerInteger(o.tcb.bootloader)},
      {"1.3.6.1.4.1.3704.1.3.2", DerInteger(o.tcb.tee)},
      {"1.3.6.1.4.1.3704.1.3.3", DerInteger(o.tcb.snp)},
      {"1.3.6.1.4.1.3704.1.3.8", DerInteger(o.tcb.microcode)}};
  if (o.tcb.fmc.has_value())
    extensions.emplace_back("1.3.6.1.4.1.3704.1.3.9", DerInteger(*o.tcb.fmc));
  if (vlek) {
    extensions.emplace_back("1.3.6.1.4.1.3704.1.5", DerIa5(csp_id));
  } else {
    // KDS stores the hwID raw, without a DER tag.
    extensions.emplace_back("1.3.6.1.4.1.3704.1.4", o.chip_id);
  }
  for (const auto& [oid, value] : extensions) {
    KBS_RETURN_IF_ERROR(AddRawExtension(cert.get(), oid, value));
  }
  KBS_RETURN_IF_ERROR(SignPss(cert.get(), issuer_key));
  return Der(cert.get());
}

absl::StatusOr<std::string> SnpTestChain::IssueVcek(const SnpCertOptions& options) {
  return IssueVek(options, /*vlek=*/false, "");
}

absl::StatusOr<std::string> SnpTestChain::IssueVlek(const SnpCertOptions& options,
                                                    absl::string_view csp_id) {
  return IssueVek(options, /*vlek=*/true, csp_id);
}

absl::StatusOr<std::string> SnpTestChain::SignReport(const SnpReportFields& f) const {
  if (!vek_key_) return absl::FailedPreconditionError("issue a VEK first");
  return SignReportWith(vek_key_.get(), product_, f);
}

absl::StatusOr<std::string> SnpTestChain::MakeCrl(const std::vector<long>& revoked) const {
  return MakeCrl(revoked, absl::FromUnixSeconds(1700000000), absl::InfiniteFuture());
}

absl::StatusOr<std::string> SnpTestChain::MakeCrl(const std::vector<long>& revoked,
                                                  absl::Time this_update,
                                                  absl::Time next_update) const {
  common::X509CrlPtr crl(X509_CRL_new());
  X509_CRL_set_version(crl.get(), 1);
  X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(ark_.get()));
  using Asn1TimePtr = std::unique_ptr<ASN1_TIME, common::OpenSslDeleter<ASN1_TIME, ASN1_TIME_free>>;
  Asn1TimePtr now(ASN1_TIME_set(nullptr, absl::ToUnixSeconds(this_update)));
  X509_CRL_set1_lastUpdate(crl.get(), now.get());
  if (next_update != absl::InfiniteFuture()) {
    Asn1TimePtr next(ASN1_TIME_set(nullptr, absl::ToUnixSeconds(next_update)));
    X509_CRL_set1_nextUpdate(crl.get(), next.get());
  }
  for (long serial : revoked) {
    X509_REVOKED* entry = X509_REVOKED_new();
    std::unique_ptr<ASN1_INTEGER, common::OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>> sn(
        ASN1_INTEGER_new());
    ASN1_INTEGER_set(sn.get(), serial);
    X509_REVOKED_set_serialNumber(entry, sn.get());
    X509_REVOKED_set_revocationDate(entry, now.get());
    X509_CRL_add0_revoked(crl.get(), entry);
  }
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  EVP_PKEY_CTX* pctx = nullptr;
  if (EVP_DigestSignInit(ctx.get(), &pctx, EVP_sha384(), nullptr, ark_key_.get()) != 1 ||
      EVP_PKEY_CTX_set_rsa_padding(pctx, RSA_PKCS1_PSS_PADDING) != 1 ||
      EVP_PKEY_CTX_set_rsa_pss_saltlen(pctx, 48) != 1 ||
      X509_CRL_sign_ctx(crl.get(), ctx.get()) <= 0) {
    return common::OpenSslError("signing test CRL");
  }
  unsigned char* der = nullptr;
  int len = i2d_X509_CRL(crl.get(), &der);
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> SnpTestChain::VekKeyPem() const {
  if (!vek_key_) return absl::FailedPreconditionError("issue a VEK first");
  return common::PrivateKeyToPem(vek_key_.get());
}

absl::StatusOr<std::string> SnpTestChain::SignReportWith(EVP_PKEY* vek_key, Product product,
                                                         const SnpReportFields& f) {
  std::string b(verifier::snp::kReportSize, '\0');
  auto put = [&b](size_t off, uint64_t v, size_t width) {
    for (size_t i = 0; i < width; ++i) b[off + i] = static_cast<char>(v >> (8 * i));
  };
  auto fit = [](absl::string_view v, size_t n) {
    std::string out(v.substr(0, n));
    out.resize(n, '\0');
    return out;
  };
  const bool turin = product == Product::kTurin;
  put(0x000, f.version, 4);
  put(0x004, 1, 4);  // GUEST_SVN
  put(0x008, f.policy, 8);
  put(0x030, f.vmpl, 4);
  put(0x034, 1, 4);  // ECDSA P-384 with SHA-384
  put(0x038, f.reported_tcb.Encode(turin), 8);
  put(0x040, 0x25, 8);  // PLATFORM_INFO
  put(0x048, static_cast<uint64_t>(f.signing_key) << 2, 4);
  std::memcpy(b.data() + 0x050, fit(f.report_data, 64).data(), 64);
  std::memcpy(b.data() + 0x090, fit(f.measurement, 48).data(), 48);
  std::memcpy(b.data() + 0x0C0, fit(f.host_data, 32).data(), 32);
  put(0x180, f.reported_tcb.Encode(turin), 8);
  if (f.version >= 3) {
    b[0x188] = static_cast<char>(f.cpuid_family);
    b[0x189] = static_cast<char>(f.cpuid_model);
    b[0x18A] = static_cast<char>(f.cpuid_stepping);
  }
  std::memcpy(b.data() + 0x1A0, fit(f.chip_id, 64).data(), 64);
  put(0x1E0, f.reported_tcb.Encode(turin), 8);
  b[0x1E8] = 40;  // firmware 1.55.40
  b[0x1E9] = 55;
  b[0x1EA] = 1;
  b[0x1EC] = 40;
  b[0x1ED] = 55;
  b[0x1EE] = 1;
  put(0x1F0, f.reported_tcb.Encode(turin), 8);

  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(b.data());
  if (EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha384(), nullptr, vek_key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, verifier::snp::kSignedSize) != 1) {
    return common::OpenSslError("signing report");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len, data,
                     verifier::snp::kSignedSize) != 1) {
    return common::OpenSslError("signing report");
  }
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  common::EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  BN_bn2lebinpad(r, reinterpret_cast<unsigned char*>(b.data()) + 0x2A0, 72);
  BN_bn2lebinpad(s, reinterpret_cast<unsigned char*>(b.data()) + 0x2E8, 72);
  return b;
}

absl::StatusOr<common::Json> SnpTestChain::EvidenceJson(absl::string_view report,
                                                        absl::string_view vek_der,
                                                        absl::string_view cert_type) {
  verifier::snp::SnpEvidence evidence;
  evidence.report = std::string(report);
  evidence.cert_chain.push_back({std::string(cert_type), std::string(vek_der)});
  return verifier::snp::SnpEvidenceToJson(evidence);
}

}  // namespace kbs::testing
