// Checks the DCAP generator's artifacts with OpenSSL directly (not with the
// verifier under test): chains, quote and QE report signatures, the QE
// report binding, collateral signatures over the exact bytes, CRLs. Where
// the shared test data is present, the same checks run on real quotes and
// collateral, and the generated shapes are compared with Intel's.
#include "tests/testing/dcap_generator.h"

#include <openssl/ecdsa.h>
#include <openssl/x509.h>
#include <openssl/x509_vfy.h>

#include <cstdlib>
#include <filesystem>
#include <map>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "common/x509.h"
#include "gtest/gtest.h"
#include "tests/testing/testdata.h"

namespace kbs::testing {
namespace {

using common::Json;

const absl::Time kNow = absl::FromUnixSeconds(1767225600);  // 2026-01-01
const absl::Time kIssue = absl::FromUnixSeconds(1765000000);
const absl::Time kNext = absl::FromUnixSeconds(1770000000);

// Real files are optional: the checks on them are skipped when absent.
std::optional<std::string> ReadTestData(const std::string& relative) {
  std::string path = kbs::testing::TestDataDir() + "/" + relative;
  if (!std::filesystem::exists(path)) return std::nullopt;
  auto data = common::ReadFile(path);
  if (!data.ok()) return std::nullopt;
  return *data;
}

uint64_t Le(absl::string_view b, size_t off, size_t width) {
  uint64_t v = 0;
  for (size_t i = 0; i < width; ++i) v |= uint64_t{static_cast<uint8_t>(b[off + i])} << (8 * i);
  return v;
}

// ECDSA P-256/SHA-256 with a raw r || s signature.
bool VerifyRaw(EVP_PKEY* key, absl::string_view data, absl::string_view sig) {
  if (sig.size() != 64) return false;
  common::EcdsaSigPtr s(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()), 32, nullptr);
  BIGNUM* ss = BN_bin2bn(reinterpret_cast<const unsigned char*>(sig.data()) + 32, 32, nullptr);
  if (ECDSA_SIG_set0(s.get(), r, ss) != 1) return false;
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(s.get(), &der);
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok = EVP_DigestVerifyInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(len),
                             reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  OPENSSL_free(der);
  return ok;
}

EVP_PKEY* CertKey(const X509* cert) { return X509_get0_pubkey(cert); }

// The quote fields this test checks, cut at the offsets of §2.2/§4.2.
struct QuoteParts {
  uint16_t version = 0;
  uint32_t tee_type = 0;
  std::string header, body, signed_bytes;
  uint16_t body_type = 0;
  std::string signature, attestation_key, qe_report, qe_signature, auth_data, chain;
  size_t end = 0;
};

absl::StatusOr<QuoteParts> CutQuote(absl::string_view q) {
  QuoteParts p;
  size_t off = 0;
  auto take = [&](size_t n) -> absl::StatusOr<std::string> {
    if (q.size() - off < n) return absl::InvalidArgumentError(absl::StrCat("short at ", off));
    std::string out(q.substr(off, n));
    off += n;
    return out;
  };
  auto u = [&](size_t n) -> absl::StatusOr<uint64_t> {
    if (q.size() - off < n) return absl::InvalidArgumentError(absl::StrCat("short at ", off));
    uint64_t v = Le(q, off, n);
    off += n;
    return v;
  };
  KBS_ASSIGN_OR_RETURN(p.header, take(48));
  p.version = static_cast<uint16_t>(Le(p.header, 0, 2));
  p.tee_type = static_cast<uint32_t>(Le(p.header, 4, 4));
  size_t body_size = p.version == 3 ? 384 : 584;
  p.body_type = p.version == 3 ? 1 : 2;
  if (p.version == 5) {
    KBS_ASSIGN_OR_RETURN(uint64_t type, u(2));
    KBS_ASSIGN_OR_RETURN(uint64_t size, u(4));
    p.body_type = static_cast<uint16_t>(type);
    body_size = size;
  }
  KBS_ASSIGN_OR_RETURN(p.body, take(body_size));
  p.signed_bytes = std::string(q.substr(0, off));
  KBS_ASSIGN_OR_RETURN(uint64_t sig_len, u(4));
  const size_t sig_end = off + sig_len;
  KBS_ASSIGN_OR_RETURN(p.signature, take(64));
  KBS_ASSIGN_OR_RETURN(p.attestation_key, take(64));
  if (p.version != 3) {
    KBS_ASSIGN_OR_RETURN(uint64_t type, u(2));
    KBS_ASSIGN_OR_RETURN(uint64_t size, u(4));
    if (type != 6 || off + size != sig_end) return absl::InvalidArgumentError("bad type 6 data");
  }
  KBS_ASSIGN_OR_RETURN(p.qe_report, take(384));
  KBS_ASSIGN_OR_RETURN(p.qe_signature, take(64));
  KBS_ASSIGN_OR_RETURN(uint64_t auth_len, u(2));
  KBS_ASSIGN_OR_RETURN(p.auth_data, take(auth_len));
  KBS_ASSIGN_OR_RETURN(uint64_t cert_type, u(2));
  KBS_ASSIGN_OR_RETURN(uint64_t cert_len, u(4));
  if (cert_type != 5) return absl::InvalidArgumentError("not a PCK chain");
  KBS_ASSIGN_OR_RETURN(p.chain, take(cert_len));
  if (off != sig_end) return absl::InvalidArgumentError("signature data length mismatch");
  p.end = off;
  return p;
}

// The checks a verifier makes with the keys alone (§2.3 steps 3, 4, 6).
void ExpectQuoteSignaturesVerify(const QuoteParts& p) {
  auto key = common::EcPublicKeyFromPoint(common::EcCurve::kP256, p.attestation_key.substr(0, 32),
                                          p.attestation_key.substr(32));
  ASSERT_TRUE(key.ok()) << key.status();
  EXPECT_TRUE(VerifyRaw(key->get(), p.signed_bytes, p.signature)) << "quote signature";
  auto chain = common::ParsePemCertificates(p.chain);
  ASSERT_TRUE(chain.ok()) << chain.status();
  ASSERT_EQ(chain->size(), 3u);
  EXPECT_TRUE(VerifyRaw(CertKey((*chain)[0].get()), p.qe_report, p.qe_signature))
      << "QE report signature";
  EXPECT_EQ(p.qe_report.substr(320, 64),
            common::Sha256(p.attestation_key + p.auth_data) + std::string(32, '\0'))
      << "QE report data binding";
}

// X509_verify_cert from `certs[0]` through the middle ones to the last
// (the only trusted certificate) at `at`, optionally checking all CRLs.
int VerifyChain(const std::vector<X509*>& certs, absl::Time at,
                const std::vector<X509_CRL*>& crls = {}) {
  std::unique_ptr<X509_STORE, common::OpenSslDeleter<X509_STORE, X509_STORE_free>> store(
      X509_STORE_new());
  X509_STORE_add_cert(store.get(), certs.back());
  STACK_OF(X509)* untrusted = sk_X509_new_null();
  for (size_t i = 1; i + 1 < certs.size(); ++i) sk_X509_push(untrusted, certs[i]);
  STACK_OF(X509_CRL)* crl_stack = sk_X509_CRL_new_null();
  for (X509_CRL* crl : crls) sk_X509_CRL_push(crl_stack, crl);
  std::unique_ptr<X509_STORE_CTX, common::OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>> ctx(
      X509_STORE_CTX_new());
  X509_STORE_CTX_init(ctx.get(), store.get(), certs.front(), untrusted);
  X509_STORE_CTX_set_time(ctx.get(), 0, absl::ToTimeT(at));
  if (!crls.empty()) {
    X509_STORE_CTX_set0_crls(ctx.get(), crl_stack);
    X509_STORE_CTX_set_flags(ctx.get(), X509_V_FLAG_CRL_CHECK | X509_V_FLAG_CRL_CHECK_ALL);
  }
  int result = X509_verify_cert(ctx.get()) == 1 ? X509_V_OK : X509_STORE_CTX_get_error(ctx.get());
  sk_X509_free(untrusted);
  sk_X509_CRL_free(crl_stack);
  return result;
}

std::vector<X509*> Raw(const std::vector<common::X509Ptr>& certs) {
  std::vector<X509*> out;
  for (const auto& c : certs) out.push_back(c.get());
  return out;
}

// The SGX extension walked as SEQUENCE OF SEQUENCE {OID, value}: `shape`
// lists each OID with its value's type (octet strings with their length),
// `values` maps each OID to its value.
struct Decoded {
  std::string shape;
  std::map<std::string, std::string> values;
};

bool Walk(absl::string_view der, Decoded* out) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  std::unique_ptr<ASN1_SEQUENCE_ANY, void (*)(ASN1_SEQUENCE_ANY*)> seq(
      d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(der.size())),
      [](ASN1_SEQUENCE_ANY* s) { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); });
  if (!seq || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) return false;
  out->shape += "{";
  for (int i = 0; i < sk_ASN1_TYPE_num(seq.get()); ++i) {
    const ASN1_TYPE* entry = sk_ASN1_TYPE_value(seq.get(), i);
    if (entry->type != V_ASN1_SEQUENCE) return false;
    const ASN1_STRING* e = entry->value.sequence;
    const auto* q = ASN1_STRING_get0_data(e);
    std::unique_ptr<ASN1_SEQUENCE_ANY, void (*)(ASN1_SEQUENCE_ANY*)> pair(
        d2i_ASN1_SEQUENCE_ANY(nullptr, &q, ASN1_STRING_length(e)),
        [](ASN1_SEQUENCE_ANY* s) { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); });
    if (!pair || sk_ASN1_TYPE_num(pair.get()) != 2) return false;
    const ASN1_TYPE* oid = sk_ASN1_TYPE_value(pair.get(), 0);
    const ASN1_TYPE* value = sk_ASN1_TYPE_value(pair.get(), 1);
    if (oid->type != V_ASN1_OBJECT) return false;
    char name[80];
    OBJ_obj2txt(name, sizeof(name), oid->value.object, 1);
    out->shape += absl::StrCat(name, "=");
    switch (value->type) {
      case V_ASN1_SEQUENCE:
        if (!Walk(absl::string_view(
                      reinterpret_cast<const char*>(ASN1_STRING_get0_data(value->value.sequence)),
                      ASN1_STRING_length(value->value.sequence)),
                  out)) {
          return false;
        }
        break;
      case V_ASN1_INTEGER:
        out->shape += "INTEGER";
        out->values[name] = std::to_string(ASN1_INTEGER_get(value->value.integer));
        break;
      case V_ASN1_ENUMERATED:
        out->shape += "ENUMERATED";
        out->values[name] = std::to_string(ASN1_ENUMERATED_get(value->value.enumerated));
        break;
      case V_ASN1_BOOLEAN:
        out->shape += "BOOLEAN";
        out->values[name] = value->value.boolean != 0 ? "true" : "false";
        break;
      case V_ASN1_OCTET_STRING: {
        const ASN1_STRING* s = value->value.octet_string;
        out->shape += absl::StrCat("OCTETS", ASN1_STRING_length(s));
        out->values[name] = common::HexEncode(absl::string_view(
            reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), ASN1_STRING_length(s)));
        break;
      }
      default:
        return false;
    }
    out->shape += ";";
  }
  out->shape += "}";
  return true;
}

std::optional<Decoded> DecodeSgxExtension(const X509* cert) {
  std::optional<std::string> der = common::ExtensionValue(cert, "1.2.840.113741.1.13.1");
  if (!der.has_value()) return std::nullopt;
  Decoded out;
  if (!Walk(*der, &out)) return std::nullopt;
  return out;
}

// The signed value of a PCS body {"<member>":<value>,"signature":"<hex>"}.
std::pair<std::string, std::string> SplitPcsBody(absl::string_view body, absl::string_view member) {
  const std::string prefix = absl::StrCat("{\"", member, "\":");
  const size_t sig = body.rfind(",\"signature\":\"");
  if (!absl::StartsWith(body, prefix) || sig == absl::string_view::npos ||
      !absl::EndsWith(body, "\"}")) {
    return {};
  }
  return {std::string(body.substr(prefix.size(), sig - prefix.size())),
          std::string(body.substr(sig + 14, body.size() - sig - 14 - 2))};
}

class DcapGeneratorTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = DcapTestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = std::move(*pki);
    auto chain = pki_->IssuePck(PckOptions());
    ASSERT_TRUE(chain.ok()) << chain.status();
    chain_pem_ = *chain;
  }
  std::unique_ptr<DcapTestPki> pki_;
  std::string chain_pem_;
};

TEST_F(DcapGeneratorTest, PckChainVerifiesAtTimesInsideValidity) {
  auto certs = common::ParsePemCertificates(chain_pem_);
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_EQ(certs->size(), 3u);
  EXPECT_EQ(common::CommonName((*certs)[0].get()), kDcapPckCn);
  EXPECT_EQ(common::CommonName((*certs)[1].get()), kDcapPckPlatformCaCn);
  EXPECT_EQ(common::CommonName((*certs)[2].get()), kDcapTestRootCn);
  EXPECT_EQ(common::HexEncode(*common::CertificateSha256((*certs)[2].get())),
            pki_->RootFingerprintHex());
  EXPECT_EQ(*common::CertificateDer((*certs)[2].get()), pki_->RootDer());
  EXPECT_EQ(VerifyChain(Raw(*certs), kNow), X509_V_OK);
  EXPECT_EQ(VerifyChain(Raw(*certs), absl::FromUnixSeconds(1960000000)),
            X509_V_ERR_CERT_HAS_EXPIRED);  // after the PCK's notAfter (2031)

  auto processor = pki_->IssuePck(PckOptions::ProcessorCa());
  ASSERT_TRUE(processor.ok()) << processor.status();
  auto processor_certs = common::ParsePemCertificates(*processor);
  ASSERT_TRUE(processor_certs.ok());
  EXPECT_EQ(common::CommonName((*processor_certs)[1].get()), kDcapPckProcessorCaCn);
  EXPECT_EQ(VerifyChain(Raw(*processor_certs), kNow), X509_V_OK);

  auto tcb = common::ParsePemCertificates(pki_->TcbSigningChainPem());
  ASSERT_TRUE(tcb.ok());
  ASSERT_EQ(tcb->size(), 2u);
  EXPECT_EQ(common::CommonName((*tcb)[0].get()), kDcapTestTcbSigningCn);
  EXPECT_EQ(VerifyChain(Raw(*tcb), kNow), X509_V_OK);
  for (bool platform : {true, false}) {
    auto issuer = common::ParsePemCertificates(pki_->PckCrlIssuerChainPem(platform));
    ASSERT_TRUE(issuer.ok());
    EXPECT_EQ(VerifyChain(Raw(*issuer), kNow), X509_V_OK);
  }
}

TEST_F(DcapGeneratorTest, PckExtensionHasIntelsStructure) {
  auto certs = common::ParsePemCertificates(chain_pem_);
  ASSERT_TRUE(certs.ok());
  std::optional<Decoded> ours = DecodeSgxExtension((*certs)[0].get());
  ASSERT_TRUE(ours.has_value());
  const std::string b = "1.2.840.113741.1.13.1";
  EXPECT_EQ(ours->values[b + ".4"], "00806f050000");
  EXPECT_EQ(ours->values[b + ".3"], "0000");
  EXPECT_EQ(ours->values[b + ".2.1"], "3");
  EXPECT_EQ(ours->values[b + ".2.8"], "5");
  EXPECT_EQ(ours->values[b + ".2.17"], "11");
  EXPECT_EQ(ours->values[b + ".2.18"], "03030202040100050000000000000000");
  EXPECT_EQ(ours->values[b + ".5"], "1");
  EXPECT_EQ(ours->values[b + ".6"], "07070707070707070707070707070707");
  EXPECT_EQ(ours->values[b + ".7.3"], "true");

  PckOptions o = PckOptions::ProcessorCa();
  o.comp_svn[4] = 255;  // two content octets, as Intel encodes it
  auto processor = pki_->IssuePck(o);
  ASSERT_TRUE(processor.ok());
  auto pcerts = common::ParsePemCertificates(*processor);
  std::optional<Decoded> proc = DecodeSgxExtension((*pcerts)[0].get());
  ASSERT_TRUE(proc.has_value());
  EXPECT_EQ(proc->values[b + ".2.5"], "255");
  EXPECT_EQ(proc->values[b + ".5"], "0");
  EXPECT_EQ(proc->values.count(b + ".6"), 0u);
  EXPECT_EQ(proc->values.count(b + ".7.1"), 0u);

  // Same OIDs, order, types and octet-string sizes as Intel's PCKs: a
  // Platform-CA one (TDX quote) and a Processor-CA one (SGX quote).
  for (auto [file, decoded] : {std::pair{"tdx/phala-tdx-v4-quote.bin", &*ours},
                               std::pair{"sgx/phala-sgx-v3-quote.bin", &*proc}}) {
    std::optional<std::string> quote = ReadTestData(file);
    if (!quote.has_value()) continue;
    auto parts = CutQuote(*quote);
    ASSERT_TRUE(parts.ok()) << parts.status();
    auto real = common::ParsePemCertificates(parts->chain);
    ASSERT_TRUE(real.ok());
    std::optional<Decoded> intel = DecodeSgxExtension((*real)[0].get());
    ASSERT_TRUE(intel.has_value());
    EXPECT_EQ(decoded->shape, intel->shape) << file;
  }
}

class DcapQuoteTest : public DcapGeneratorTest, public ::testing::WithParamInterface<QuoteKind> {};

TEST_P(DcapQuoteTest, SignaturesAndBindingVerify) {
  const QuoteKind kind = GetParam();
  const bool sgx = kind == QuoteKind::kSgxV3;
  TdReportFields td;
  td.report_data = "td-nonce";
  td.mr_config_id = std::string(48, '\xc1');
  EnclaveReportFields enclave;
  enclave.report_data = "enclave-nonce";
  QeFields qe = sgx ? QeFields::ForSgx() : QeFields();
  QuoteOptions options;
  options.trailing_padding = 70;
  auto quote = pki_->MakeQuote(kind, td, enclave, qe, options);
  ASSERT_TRUE(quote.ok()) << quote.status();
  auto p = CutQuote(*quote);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->end + 70, quote->size());

  const uint16_t version = kind == QuoteKind::kTdxV4 ? 4 : sgx ? 3 : 5;
  EXPECT_EQ(p->version, version);
  EXPECT_EQ(Le(p->header, 2, 2), 2u);
  EXPECT_EQ(p->tee_type, sgx ? 0u : 0x81u);
  EXPECT_EQ(common::HexEncode(p->header.substr(12, 16)), "939a7233f79c4ca9940a0db3957f0607");
  if (sgx) {
    EXPECT_EQ(Le(p->header, 8, 2), qe.isv_svn);  // qe_svn
    EXPECT_EQ(Le(p->header, 10, 2), 11u);        // pce_svn of the PCK
    EXPECT_EQ(p->body.size(), 384u);
    EXPECT_EQ(p->body.substr(320, 13), "enclave-nonce");
    EXPECT_EQ(p->body.substr(64, 32), enclave.mr_enclave);
  } else {
    EXPECT_EQ(Le(p->header, 8, 4), 0u);
    const bool td15 = kind == QuoteKind::kTdxV5Td15;
    EXPECT_EQ(p->body.size(), td15 ? 648u : 584u);
    if (version == 5) {
      EXPECT_EQ(p->body_type, td15 ? 3 : 2);
    }
    EXPECT_EQ(p->body.substr(520, 8), "td-nonce");
    EXPECT_EQ(p->body.substr(184, 48), td.mr_config_id);
    EXPECT_EQ(Le(p->body, 120, 8), td.td_attributes);
  }
  ExpectQuoteSignaturesVerify(*p);

  // The QE report carries the QE's identity at the §4.2 offsets.
  EXPECT_EQ(p->qe_report.substr(128, 32), qe.mr_signer);
  EXPECT_EQ(Le(p->qe_report, 256, 2), qe.isv_prod_id);
  EXPECT_EQ(p->auth_data, QeFields::DefaultAuthData());
  // The quoted chain is the issued one, NUL-terminated as real QEs send it.
  EXPECT_EQ(p->chain, chain_pem_ + std::string(1, '\0'));

  // One flipped body byte breaks the quote signature and nothing else.
  std::string tampered = *quote;
  tampered[p->signed_bytes.size() - 1] ^= 1;
  auto t = CutQuote(tampered);
  ASSERT_TRUE(t.ok());
  auto key = common::EcPublicKeyFromPoint(common::EcCurve::kP256, t->attestation_key.substr(0, 32),
                                          t->attestation_key.substr(32));
  ASSERT_TRUE(key.ok());
  EXPECT_FALSE(VerifyRaw(key->get(), t->signed_bytes, t->signature));
}

INSTANTIATE_TEST_SUITE_P(AllKinds, DcapQuoteTest,
                         ::testing::Values(QuoteKind::kTdxV4, QuoteKind::kTdxV5Td10,
                                           QuoteKind::kTdxV5Td15, QuoteKind::kSgxV3));

// The test's own quote cutter and checks accept real quotes, so the layout
// they confirm for generated quotes is Intel's.
TEST(DcapRealQuoteTest, RealQuotesPassTheSameChecks) {
  int checked = 0;
  for (const char* file : {"tdx/phala-tdx-v4-quote.bin", "tdx/phala-tdx-v5-outdated-quote.bin",
                           "tdx/trustee-tdx-v5-emr-quote.dat", "sgx/phala-sgx-v3-quote.bin"}) {
    std::optional<std::string> quote = ReadTestData(file);
    if (!quote.has_value()) continue;
    auto p = CutQuote(*quote);
    ASSERT_TRUE(p.ok()) << file << ": " << p.status();
    ExpectQuoteSignaturesVerify(*p);
    EXPECT_EQ(p->chain.back(), '\0') << file;
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "real DCAP quotes not found: set KBS_TESTDATA";
}

TEST_F(DcapGeneratorTest, ModifiedQeFieldsReachTheQuote) {
  QeFields qe;
  qe.report_data = std::string(64, '\x42');  // breaks the binding on purpose
  qe.nul_terminated_chain = false;
  auto quote = pki_->MakeQuote(QuoteKind::kTdxV4, {}, {}, qe);
  ASSERT_TRUE(quote.ok());
  auto p = CutQuote(*quote);
  ASSERT_TRUE(p.ok());
  EXPECT_EQ(p->qe_report.substr(320), std::string(64, '\x42'));
  EXPECT_EQ(p->chain, chain_pem_);

  QuoteOptions options;
  options.version = 7;
  options.qe_vendor_id = std::string(16, '\0');
  auto odd = pki_->MakeQuote(QuoteKind::kTdxV4, {}, {}, QeFields(), options);
  ASSERT_TRUE(odd.ok());
  EXPECT_EQ(Le(*odd, 0, 2), 7u);
  EXPECT_EQ(odd->substr(12, 16), std::string(16, '\0'));

  auto fresh = DcapTestPki::Create();
  ASSERT_TRUE(fresh.ok());
  EXPECT_EQ((*fresh)->MakeQuote(QuoteKind::kTdxV4, {}, {}, QeFields()).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

TEST_F(DcapGeneratorTest, QuoteSignerSurvivesExportAndImport) {
  auto signer = pki_->MakeQuoteSigner(QeFields());
  ASSERT_TRUE(signer.ok()) << signer.status();
  auto exported = signer->Export();
  ASSERT_TRUE(exported.ok());
  auto imported = QuoteSigner::Import(*exported);
  ASSERT_TRUE(imported.ok()) << imported.status();
  EXPECT_EQ(imported->attestation_public_key(), signer->attestation_public_key());
  EXPECT_EQ(imported->qe_certification_data(), signer->qe_certification_data());
  for (int i = 0; i < 3; ++i) {
    TdReportFields td;
    td.report_data = absl::StrCat("nonce-", i);
    auto quote = imported->Sign(QuoteKind::kTdxV5Td10, td);
    ASSERT_TRUE(quote.ok());
    auto p = CutQuote(*quote);
    ASSERT_TRUE(p.ok());
    ExpectQuoteSignaturesVerify(*p);
    EXPECT_EQ(p->attestation_key, signer->attestation_public_key());
  }
  auto sgx = imported->SignEnclave(EnclaveReportFields());
  ASSERT_TRUE(sgx.ok());
  EXPECT_EQ(Le(*sgx, 10, 2), 11u);  // pce_svn travelled with the export
  EXPECT_FALSE(imported->Sign(QuoteKind::kSgxV3, {}).ok());
  EXPECT_FALSE(QuoteSigner::Import("{}").ok());
  EXPECT_FALSE(QuoteSigner::Import("not json").ok());

  // A given attestation key is used as is.
  auto exported_json = common::ParseJson(*exported);
  ASSERT_TRUE(exported_json.ok());
  auto again =
      pki_->MakeQuoteSigner(QeFields(), (*exported_json)["attestation_key"].get<std::string>());
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->attestation_public_key(), signer->attestation_public_key());
}

TEST_F(DcapGeneratorTest, CollateralSignaturesCoverTheExactBytes) {
  auto tcb_chain = common::ParsePemCertificates(pki_->TcbSigningChainPem());
  ASSERT_TRUE(tcb_chain.ok());
  EVP_PKEY* tcb_key = CertKey((*tcb_chain)[0].get());

  for (bool tdx : {true, false}) {
    Json info = tdx ? DcapTestPki::DefaultTdxTcbInfo(kIssue, kNext)
                    : DcapTestPki::DefaultSgxTcbInfo(kIssue, kNext);
    auto body = pki_->SignTcbInfo(info);
    ASSERT_TRUE(body.ok()) << body.status();
    auto [text, signature] = SplitPcsBody(*body, "tcbInfo");
    ASSERT_FALSE(text.empty()) << *body;
    EXPECT_TRUE(absl::StartsWith(
        text, absl::StrCat("{\"id\":\"", tdx ? "TDX" : "SGX", "\",\"version\":3,\"issueDate\":\"",
                           DcapTestPki::IntelTime(kIssue), "\",\"nextUpdate\":\"")))
        << text;
    auto sig = common::HexDecode(signature);
    ASSERT_TRUE(sig.ok());
    EXPECT_TRUE(VerifyRaw(tcb_key, text, *sig));
    auto parsed = common::ParseJson(text);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(*parsed, info);
    // Re-serializing changes the bytes: a verifier must keep what it got.
    EXPECT_NE(common::DumpJson(*parsed), text);
    EXPECT_FALSE(VerifyRaw(tcb_key, common::DumpJson(*parsed), *sig));
    EXPECT_EQ(info["fmspc"], "00806F050000");
  }

  for (bool tdx : {true, false}) {
    Json identity = DcapTestPki::DefaultQeIdentity(tdx, kIssue, kNext);
    auto body = pki_->SignQeIdentity(identity);
    ASSERT_TRUE(body.ok());
    auto [text, signature] = SplitPcsBody(*body, "enclaveIdentity");
    ASSERT_FALSE(text.empty()) << *body;
    EXPECT_TRUE(absl::StartsWith(
        text, absl::StrCat("{\"id\":\"", tdx ? "TD_QE" : "QE", "\",\"version\":2,")))
        << text;
    EXPECT_NE(text.find(absl::StrCat("\"mrsigner\":\"", tdx ? "DC9E2A7C" : "8C4F5775")),
              std::string::npos);
    EXPECT_TRUE(VerifyRaw(tcb_key, text, *common::HexDecode(signature)));
  }

  // Caller-made text is signed verbatim.
  auto spaced = pki_->SignTcbInfoText("{ \"id\" : \"TDX\" }");
  ASSERT_TRUE(spaced.ok());
  EXPECT_TRUE(absl::StartsWith(*spaced, "{\"tcbInfo\":{ \"id\" : \"TDX\" },\"signature\":\""));
}

// CollateralText reproduces Intel's member order byte for byte.
TEST(DcapCollateralTextTest, MatchesIntelsSerialization) {
  int checked = 0;
  for (const char* file :
       {"tdx/phala-tdx-v4-collateral.json", "sgx/phala-sgx-v3-collateral.json"}) {
    std::optional<std::string> bundle = ReadTestData(file);
    if (!bundle.has_value()) continue;
    auto json = common::ParseJson(*bundle);
    ASSERT_TRUE(json.ok());
    for (const char* member : {"tcb_info", "qe_identity"}) {
      const std::string real = (*json)[member].get<std::string>();
      auto parsed = common::ParseJson(real);
      ASSERT_TRUE(parsed.ok());
      EXPECT_EQ(DcapTestPki::CollateralText(*parsed), real) << file << " " << member;
    }
    ++checked;
  }
  for (auto [file, member] :
       {std::pair{"tdx/gotdx-tcbInfo-90c06f000000-2026-02.json", "tcbInfo"},
        std::pair{"tdx/trustee-tdqe-identity-2025-10.json", "enclaveIdentity"}}) {
    std::optional<std::string> body = ReadTestData(file);
    if (!body.has_value()) continue;
    // Stored PCS bodies may end with a newline after the closing brace.
    auto [text, signature] = SplitPcsBody(absl::StripTrailingAsciiWhitespace(*body), member);
    ASSERT_FALSE(text.empty()) << file;
    auto parsed = common::ParseJson(text);
    ASSERT_TRUE(parsed.ok());
    EXPECT_EQ(DcapTestPki::CollateralText(*parsed), text) << file;
    ++checked;
  }
  if (checked == 0) GTEST_SKIP() << "real DCAP collateral not found: set KBS_TESTDATA";
}

TEST_F(DcapGeneratorTest, CrlsAreSignedByTheirIssuersAndRevoke) {
  auto certs = common::ParsePemCertificates(chain_pem_);
  ASSERT_TRUE(certs.ok());
  X509* pck = (*certs)[0].get();
  X509* platform_ca = (*certs)[1].get();
  X509* root = (*certs)[2].get();
  const long serial = pki_->LastPckSerial();
  EXPECT_EQ(ASN1_INTEGER_get(X509_get0_serialNumber(pck)), serial);

  auto pck_crl_der = pki_->MakePckCrl(true, {serial, 9999}, kIssue, kNext);
  ASSERT_TRUE(pck_crl_der.ok()) << pck_crl_der.status();
  auto pck_crl = common::ParseCrl(*pck_crl_der);
  ASSERT_TRUE(pck_crl.ok());
  EXPECT_TRUE(common::IsCrlSignedBy(pck_crl->get(), platform_ca));
  EXPECT_FALSE(common::IsCrlSignedBy(pck_crl->get(), root));
  EXPECT_TRUE(common::IsRevoked(pck_crl->get(), pck));
  EXPECT_EQ(X509_CRL_get_version(pck_crl->get()), 1);
  EXPECT_EQ(X509_NAME_cmp(X509_CRL_get_issuer(pck_crl->get()), X509_get_subject_name(platform_ca)),
            0);

  auto root_crl_der = pki_->MakeRootCrl({}, kIssue, kNext);
  ASSERT_TRUE(root_crl_der.ok());
  auto root_crl = common::ParseCrl(*root_crl_der);
  ASSERT_TRUE(root_crl.ok());
  EXPECT_TRUE(common::IsCrlSignedBy(root_crl->get(), root));

  EXPECT_EQ(VerifyChain(Raw(*certs), kNow, {pck_crl->get(), root_crl->get()}),
            X509_V_ERR_CERT_REVOKED);
  auto clean_der = pki_->MakePckCrl(true, {}, kIssue, kNext);
  ASSERT_TRUE(clean_der.ok());
  auto clean = common::ParseCrl(*clean_der);
  ASSERT_TRUE(clean.ok());
  EXPECT_EQ(VerifyChain(Raw(*certs), kNow, {clean->get(), root_crl->get()}), X509_V_OK);
  // The root CRL revokes intermediates.
  auto ca_revoked_der = pki_->MakeRootCrl({kDcapPlatformCaSerial}, kIssue, kNext);
  ASSERT_TRUE(ca_revoked_der.ok());
  auto ca_revoked = common::ParseCrl(*ca_revoked_der);
  ASSERT_TRUE(ca_revoked.ok());
  EXPECT_EQ(VerifyChain(Raw(*certs), kNow, {clean->get(), ca_revoked->get()}),
            X509_V_ERR_CERT_REVOKED);
  // Processor-CA CRLs come from the Processor CA.
  auto processor_crl_der = pki_->MakePckCrl(false, {}, kIssue, kNext);
  ASSERT_TRUE(processor_crl_der.ok());
  auto processor_chain = common::ParsePemCertificates(pki_->PckCrlIssuerChainPem(false));
  ASSERT_TRUE(processor_chain.ok());
  EXPECT_TRUE(common::IsCrlSignedBy(common::ParseCrl(*processor_crl_der)->get(),
                                    (*processor_chain)[0].get()));
}

TEST_F(DcapGeneratorTest, CollateralBundleHasDcapQvlShape) {
  auto pck_crl = pki_->MakePckCrl(true, {}, kIssue, kNext);
  auto root_crl = pki_->MakeRootCrl({}, kIssue, kNext);
  ASSERT_TRUE(pck_crl.ok() && root_crl.ok());
  auto bundle = pki_->CollateralBundle(DcapTestPki::DefaultTdxTcbInfo(kIssue, kNext),
                                       DcapTestPki::DefaultQeIdentity(true, kIssue, kNext),
                                       /*platform=*/true, *pck_crl, *root_crl);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  std::vector<std::string> keys;
  for (auto it = bundle->begin(); it != bundle->end(); ++it) keys.push_back(it.key());
  if (std::optional<std::string> real = ReadTestData("tdx/phala-tdx-v4-collateral.json")) {
    std::vector<std::string> real_keys;
    Json real_json = *common::ParseJson(*real);
    for (auto it = real_json.begin(); it != real_json.end(); ++it) real_keys.push_back(it.key());
    EXPECT_EQ(keys, real_keys);
  }
  EXPECT_EQ(keys.size(), 9u);
  EXPECT_EQ((*bundle)["pck_crl"], common::HexEncode(*pck_crl));
  EXPECT_EQ((*bundle)["root_ca_crl"], common::HexEncode(*root_crl));
  auto tcb_chain =
      common::ParsePemCertificates((*bundle)["tcb_info_issuer_chain"].get<std::string>());
  ASSERT_TRUE(tcb_chain.ok());
  for (const char* item : {"tcb_info", "qe_identity"}) {
    EXPECT_TRUE(VerifyRaw(
        CertKey((*tcb_chain)[0].get()), (*bundle)[item].get<std::string>(),
        *common::HexDecode((*bundle)[absl::StrCat(item, "_signature")].get<std::string>())))
        << item;
  }

  Json evidence = DcapTestPki::TdxEvidenceJson("quote");
  EXPECT_TRUE(evidence["cc_eventlog"].is_null());
  EXPECT_EQ(evidence["quote"], common::Base64Encode("quote"));
  EXPECT_EQ(DcapTestPki::SgxEvidenceJson("q").dump(), "{\"quote\":\"cQ==\"}");
}

}  // namespace
}  // namespace kbs::testing
