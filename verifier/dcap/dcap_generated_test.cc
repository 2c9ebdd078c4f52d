// The DCAP verifiers against quotes and collateral from a test PKI
// (tests/testing/dcap_generator.h): every check fails on its own with a
// clear error, and every TCB status comes out as Intel defines it.
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/json.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/dcap_generator.h"
#include "verifier/dcap/collateral.h"
#include "verifier/dcap/quote.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/sgx/sgx_verifier.h"
#include "verifier/tdx/eventlog.h"
#include "verifier/tdx/tdx_verifier.h"

namespace kbs::verifier::dcap {
namespace {

using testing::DcapTestPki;
using ::testing::ElementsAre;
using testing::EnclaveReportFields;
using ::testing::HasSubstr;
using testing::PckOptions;
using testing::QeFields;
using testing::QuoteKind;
using testing::TdReportFields;

const absl::Time kAt = absl::FromCivil(absl::CivilSecond(2026, 1, 1, 0, 0, 0), absl::UTCTimeZone());

class GeneratedDcapTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto pki = DcapTestPki::Create();
    ASSERT_TRUE(pki.ok()) << pki.status();
    pki_ = *std::move(pki);
    ASSERT_TRUE(pki_->IssuePck(PckOptions{}).ok());
    ASSERT_TRUE(options_.anchors.Add(pki_->RootFingerprintHex()).ok());
    tcb_info_ =
        DcapTestPki::DefaultTdxTcbInfo(kAt - absl::Hours(24 * 10), kAt + absl::Hours(24 * 20));
    qe_identity_ = DcapTestPki::DefaultQeIdentity(true, kAt - absl::Hours(24 * 10),
                                                  kAt + absl::Hours(24 * 20));
  }

  Collateral MakeCollateral(std::vector<long> revoked = {}, bool platform = true) {
    auto pck_crl =
        pki_->MakePckCrl(platform, revoked, kAt - absl::Hours(24), kAt + absl::Hours(24 * 30));
    auto root_crl = pki_->MakeRootCrl({}, kAt - absl::Hours(24 * 100), kAt + absl::Hours(24 * 300));
    EXPECT_TRUE(pck_crl.ok() && root_crl.ok());
    auto bundle = pki_->CollateralBundle(tcb_info_, qe_identity_, platform, pck_crl.value_or(""),
                                         root_crl.value_or(""));
    EXPECT_TRUE(bundle.ok()) << bundle.status();
    auto c = ParseCollateralBundle(common::DumpJson(bundle.value_or(common::Json::object())));
    EXPECT_TRUE(c.ok()) << c.status();
    return c.value_or(Collateral{});
  }

  std::string Quote(QuoteKind kind = QuoteKind::kTdxV4, TdReportFields td = {},
                    QeFields qe = QeFields()) {
    auto q = pki_->MakeQuote(kind, td, EnclaveReportFields{}, qe);
    EXPECT_TRUE(q.ok()) << q.status();
    return q.value_or("");
  }

  absl::StatusOr<VerifiedQuote> Verify(absl::string_view quote, const Collateral& c,
                                       DcapTee tee = DcapTee::kTdx, absl::Time at = kAt) {
    QuoteVerifier v(options_);
    return v.Verify(common::AsSpan(quote), tee, at, &c);
  }

  std::unique_ptr<DcapTestPki> pki_;
  QuoteVerifierOptions options_;
  common::Json tcb_info_, qe_identity_;
};

TEST_F(GeneratedDcapTest, EveryQuoteKindVerifiesUpToDate) {
  Collateral c = MakeCollateral();
  for (QuoteKind kind : {QuoteKind::kTdxV4, QuoteKind::kTdxV5Td10, QuoteKind::kTdxV5Td15}) {
    auto q = Verify(Quote(kind), c);
    ASSERT_TRUE(q.ok()) << static_cast<int>(kind) << ": " << q.status();
    EXPECT_EQ(q->tcb.status, "UpToDate");
    EXPECT_EQ(q->tcb.module_status, "UpToDate");
  }
  tcb_info_ = DcapTestPki::DefaultSgxTcbInfo(kAt - absl::Hours(24), kAt + absl::Hours(24));
  qe_identity_ =
      DcapTestPki::DefaultQeIdentity(false, kAt - absl::Hours(24), kAt + absl::Hours(24));
  auto sgx = pki_->MakeQuote(QuoteKind::kSgxV3, {}, EnclaveReportFields{}, QeFields::ForSgx());
  ASSERT_TRUE(sgx.ok());
  auto q = Verify(*sgx, MakeCollateral(), DcapTee::kSgx);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "UpToDate");
}

// Offsets in a v4 quote: header || body is [0, 632); the signature data
// starts at 636: signature, attestation key, type-6 header, QE report,
// QE report signature, auth data size and auth data.
TEST_F(GeneratedDcapTest, EverySignedByteMatters) {
  Collateral c = MakeCollateral();
  const std::string quote = Quote();
  ASSERT_TRUE(Verify(quote, c).ok());
  struct Region {
    size_t begin, end;
    const char* what;
  };
  const size_t sig = 636, key = sig + 64, qe = key + 64 + 6, qe_sig = qe + 384,
               auth = qe_sig + 64 + 2;
  for (Region r : {Region{0, 632, "header and body"}, Region{sig, sig + 64, "quote signature"},
                   Region{key, key + 64, "attestation key"}, Region{qe, qe + 384, "QE report"},
                   Region{qe_sig, qe_sig + 64, "QE report signature"},
                   Region{auth, auth + 32, "QE auth data"}}) {
    for (size_t i = r.begin; i < r.end; ++i) {
      std::string bad = quote;
      bad[i] ^= 0x01;
      auto q = Verify(bad, c);
      ASSERT_FALSE(q.ok()) << r.what << " byte " << i << " altered, still verifies";
    }
  }
  std::string body = quote;
  body[48 + 136] ^= 1;  // MRTD
  EXPECT_THAT(Verify(body, c).status().message(), HasSubstr("quote signature does not verify"));
  std::string qe_report = quote;
  qe_report[qe + 10] ^= 1;
  EXPECT_THAT(Verify(qe_report, c).status().message(), HasSubstr("QE report signature"));
  std::string auth_data = quote;
  auth_data[auth] ^= 1;
  EXPECT_THAT(Verify(auth_data, c).status().message(), HasSubstr("does not bind"));
}

// The verifier remembers QE report signatures that verified (a platform
// quotes the same QE report until its QE restarts): only the same report
// and signature under the same PCK chain skip the check.
TEST_F(GeneratedDcapTest, RememberedQeReportSignaturesAreExactAndPerChain) {
  Collateral c = MakeCollateral();
  QuoteVerifier v(options_);
  auto a = pki_->MakeQuoteSigner(QeFields());
  ASSERT_TRUE(a.ok()) << a.status();
  auto exported = a->Export();
  ASSERT_TRUE(exported.ok());
  auto key_pem = common::ParseJson(*exported);
  ASSERT_TRUE(key_pem.ok());
  TdReportFields td;
  auto first = a->Sign(QuoteKind::kTdxV4, td);
  ASSERT_TRUE(first.ok());
  ASSERT_TRUE(v.Verify(common::AsSpan(*first), DcapTee::kTdx, kAt, &c).ok());
  // The same QE report in a second quote: verifies, and each quote's own
  // signature still counts.
  td.report_data = std::string(64, '\x07');
  auto second = a->Sign(QuoteKind::kTdxV4, td);
  ASSERT_TRUE(second.ok());
  ASSERT_TRUE(v.Verify(common::AsSpan(*second), DcapTee::kTdx, kAt, &c).ok());
  std::string body = *second;
  body[48 + 520] ^= 1;  // report data
  EXPECT_THAT(v.Verify(common::AsSpan(body), DcapTee::kTdx, kAt, &c).status().message(),
              HasSubstr("quote signature does not verify"));
  // Offsets as in EverySignedByteMatters: the QE report at 770, its
  // signature at 1154.
  constexpr size_t kQe = 770, kQeSig = kQe + 384;
  for (size_t i : {kQe + 1, kQeSig, kQeSig + 63}) {
    std::string bad = *second;
    bad[i] ^= 1;
    EXPECT_THAT(v.Verify(common::AsSpan(bad), DcapTee::kTdx, kAt, &c).status().message(),
                HasSubstr("QE report signature"))
        << "byte " << i;
  }
  // The same QE report and signature under another platform's PCK chain
  // (same CA): the signature is not that PCK's.
  ASSERT_TRUE(pki_->IssuePck(PckOptions{}).ok());
  auto b = pki_->MakeQuoteSigner(QeFields(), (*key_pem)["attestation_key"].get<std::string>());
  ASSERT_TRUE(b.ok()) << b.status();
  auto other = b->Sign(QuoteKind::kTdxV4, td);
  ASSERT_TRUE(other.ok());
  ASSERT_TRUE(v.Verify(common::AsSpan(*other), DcapTee::kTdx, kAt, &c).ok());
  ASSERT_EQ(other->substr(kQe, 384), second->substr(kQe, 384));
  std::string spliced = *other;
  spliced.replace(kQe, 384 + 64, second->substr(kQe, 384 + 64));
  ASSERT_NE(spliced, *other);
  EXPECT_THAT(v.Verify(common::AsSpan(spliced), DcapTee::kTdx, kAt, &c).status().message(),
              HasSubstr("QE report signature"));
}

TEST_F(GeneratedDcapTest, QeReportMustBindTheAttestationKey) {
  QeFields qe;
  qe.report_data = std::string(64, '\x42');
  auto q = Verify(Quote(QuoteKind::kTdxV4, {}, qe), MakeCollateral());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(q.status().message(), HasSubstr("does not bind the attestation key"));
}

TEST_F(GeneratedDcapTest, UnpinnedRootIsRefused) {
  options_ = QuoteVerifierOptions{};  // Intel's root only
  auto q = Verify(Quote(), MakeCollateral());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(q.status().message(), HasSubstr("not a pinned Intel SGX root"));
}

TEST_F(GeneratedDcapTest, RevokedPckIsRefused) {
  auto q = Verify(Quote(), MakeCollateral({pki_->LastPckSerial()}));
  ASSERT_FALSE(q.ok());
  EXPECT_THAT(q.status().message(), HasSubstr("PCK certificate is revoked"));
}

TEST_F(GeneratedDcapTest, ExpiredCollateralIsRefused) {
  auto q = Verify(Quote(), MakeCollateral(), DcapTee::kTdx, kAt + absl::Hours(24 * 21));
  ASSERT_FALSE(q.ok());
  // The quote was not judged: the KBS lacks usable collateral (503).
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(q.status().message(), HasSubstr("not current"));
  auto early = Verify(Quote(), MakeCollateral(), DcapTee::kTdx, kAt - absl::Hours(24 * 11));
  ASSERT_FALSE(early.ok());
}

TEST_F(GeneratedDcapTest, BadCollateralSignaturesAreRefused) {
  Collateral c = MakeCollateral();
  Collateral tcb = c;
  size_t pos = tcb.tcb_info.find("UpToDate");
  ASSERT_NE(pos, std::string::npos);
  tcb.tcb_info.replace(pos, 8, "OutOfDat");
  EXPECT_THAT(Verify(Quote(), tcb).status().message(),
              HasSubstr("TCB info signature does not verify"));
  Collateral qe = c;
  qe.qe_identity_signature[5] ^= 1;
  EXPECT_THAT(Verify(Quote(), qe).status().message(),
              HasSubstr("QE identity signature does not verify"));
  // Collateral signed by another key under the same root (here the PCK
  // Platform CA's chain) is refused even with a valid signature.
  Collateral chain = c;
  chain.tcb_info_issuer_chain = pki_->PckCrlIssuerChainPem(true);
  EXPECT_THAT(std::string(Verify(Quote(), chain).status().message()),
              HasSubstr("not by an SGX TCB Signing certificate"));
  Collateral crl = c;
  crl.pck_crl[crl.pck_crl.size() - 3] ^= 1;  // inside the CRL's signature
  EXPECT_FALSE(Verify(Quote(), crl).ok());
}

TEST_F(GeneratedDcapTest, TcbStatusFollowsIntelsRules) {
  // Lower platform SVNs: the second level, OutOfDate, with its advisories.
  PckOptions older;
  older.comp_svn[0] = 2;
  ASSERT_TRUE(pki_->IssuePck(older).ok());
  auto q = Verify(Quote(), MakeCollateral());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "OutOfDate");
  EXPECT_THAT(q->tcb.advisory_ids, ElementsAre("INTEL-SA-01036", "INTEL-SA-01099"));
  EXPECT_EQ(q->tcb.tcb_date, "2024-03-13T00:00:00Z");

  // Below every level: not supported, a verification failure.
  PckOptions ancient;
  ancient.comp_svn = {};
  ASSERT_TRUE(pki_->IssuePck(ancient).ok());
  EXPECT_THAT(Verify(Quote(), MakeCollateral()).status().message(),
              HasSubstr("TCB level not supported"));

  ASSERT_TRUE(pki_->IssuePck(PckOptions{}).ok());
  // An older TDX module: its OutOfDate level turns the result OutOfDate.
  TdReportFields old_module;
  old_module.tee_tcb_svn[0] = 5;
  q = Verify(Quote(QuoteKind::kTdxV4, old_module), MakeCollateral());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.module_status, "OutOfDate");
  EXPECT_EQ(q->tcb.status, "OutOfDate");
  // A module version the TCB info does not know.
  TdReportFields unknown_module;
  unknown_module.tee_tcb_svn[1] = 9;
  EXPECT_THAT(Verify(Quote(QuoteKind::kTdxV4, unknown_module), MakeCollateral()).status().message(),
              HasSubstr("TDX_09"));
  // An older QE.
  QeFields old_qe;
  old_qe.isv_svn = 3;
  q = Verify(Quote(QuoteKind::kTdxV4, {}, old_qe), MakeCollateral());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.qe_status, "OutOfDate");
  EXPECT_EQ(q->tcb.status, "OutOfDate");
  // A QE signed by someone else.
  QeFields other_qe;
  other_qe.mr_signer = std::string(32, '\x01');
  EXPECT_THAT(Verify(Quote(QuoteKind::kTdxV4, {}, other_qe), MakeCollateral()).status().message(),
              HasSubstr("QE identity mismatch"));
  // A QE below every level is not supported (Intel QVL), a verification
  // failure (QeBelowEveryIdentityLevelIsNotSupported has more).
  QeFields ancient_qe;
  ancient_qe.isv_svn = 1;
  auto unsupported_qe = Verify(Quote(QuoteKind::kTdxV4, {}, ancient_qe), MakeCollateral());
  EXPECT_EQ(unsupported_qe.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unsupported_qe.status().message(),
              HasSubstr("QE ISVSVN 1 is below every QE identity"));
  // Revoked is terminal.
  tcb_info_["tcbLevels"][0]["tcbStatus"] = "Revoked";
  q = Verify(Quote(), MakeCollateral());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(q.status().message(), HasSubstr("TCB status Revoked"));
  // A status Intel may add later is not taken as usable.
  tcb_info_["tcbLevels"][0]["tcbStatus"] = "SomethingNew";
  EXPECT_FALSE(Verify(Quote(), MakeCollateral()).ok());
}

// Intel's QVL: a QE whose ISVSVN is below every level of its identity is
// STATUS_SGX_ENCLAVE_REPORT_ISVSVN_NOT_SUPPORTED, which the convergence turns
// into STATUS_TCB_NOT_SUPPORTED: the quote fails verification, and no
// "Revoked" (or any other) status is reported for it.
TEST_F(GeneratedDcapTest, QeBelowEveryIdentityLevelIsNotSupported) {
  // TD_QE: the QE report's ISVSVN is 8, the lowest level asks for 10.
  qe_identity_["tcbLevels"][0]["tcb"]["isvsvn"] = 12;
  qe_identity_["tcbLevels"][1]["tcb"]["isvsvn"] = 10;
  auto q = Verify(Quote(), MakeCollateral());
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(q.status().message(),
              HasSubstr("QE ISVSVN 8 is below every QE identity TCB level (not supported)"));
  EXPECT_THAT(q.status().message(), HasSubstr("TD_QE's lowest level is ISVSVN 10"));
  EXPECT_THAT(q.status().message(), ::testing::Not(HasSubstr("Revoked")));
  // One level down, the same QE verifies (OutOfDate).
  qe_identity_["tcbLevels"][1]["tcb"]["isvsvn"] = 8;
  q = Verify(Quote(), MakeCollateral());
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.qe_status, "OutOfDate");

  // SGX (QE3), through the SGX verifier.
  tcb_info_ = DcapTestPki::DefaultSgxTcbInfo(kAt - absl::Hours(24), kAt + absl::Hours(24));
  qe_identity_ =
      DcapTestPki::DefaultQeIdentity(false, kAt - absl::Hours(24), kAt + absl::Hours(24));
  for (auto& level : qe_identity_["tcbLevels"]) {
    level["tcb"]["isvsvn"] = level["tcb"]["isvsvn"].get<int>() + 20;
  }
  auto sgx = pki_->MakeQuote(QuoteKind::kSgxV3, {}, EnclaveReportFields{}, QeFields::ForSgx());
  ASSERT_TRUE(sgx.ok()) << sgx.status();
  Collateral c = MakeCollateral();
  sgx::SgxVerifier verifier(options_, nullptr);
  sgx::SgxExpectations expect;
  expect.at = kAt;
  auto claims = verifier.VerifyQuote(*sgx, expect, &c);
  ASSERT_FALSE(claims.ok());
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(claims.status().message(),
              HasSubstr("QE ISVSVN 8 is below every QE identity TCB level (not supported)"));
  EXPECT_THAT(claims.status().message(), HasSubstr("QE's lowest level is ISVSVN 26"));
}

// The SGX claim `cpu_svn` is the enclave report's CPUSVN (as trustee's);
// the PCK certificate's is `pck_cpu_svn`, in SGX and TDX claims alike.
TEST_F(GeneratedDcapTest, SgxCpuSvnIsTheEnclavesAndThePcksIsPckCpuSvn) {
  PckOptions pck = PckOptions::ProcessorCa();
  pck.cpu_svn = std::string("\x0b\x0b\x02\x02\xff\x01", 6) + std::string(10, '\0');
  ASSERT_TRUE(pki_->IssuePck(pck).ok());
  tcb_info_ = DcapTestPki::DefaultSgxTcbInfo(kAt - absl::Hours(24), kAt + absl::Hours(24));
  qe_identity_ =
      DcapTestPki::DefaultQeIdentity(false, kAt - absl::Hours(24), kAt + absl::Hours(24));
  EnclaveReportFields enclave;
  enclave.cpu_svn = std::string("\x0b\x0b\x1a\x18\xff\xff\x04", 7) + std::string(9, '\0');
  auto quote = pki_->MakeQuote(QuoteKind::kSgxV3, {}, enclave, QeFields::ForSgx());
  ASSERT_TRUE(quote.ok()) << quote.status();
  Collateral c = MakeCollateral({}, /*platform=*/false);
  sgx::SgxVerifier verifier(options_, nullptr);
  sgx::SgxExpectations expect;
  expect.at = kAt;
  auto claims = verifier.VerifyQuote(*quote, expect, &c);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims().value("cpu_svn", ""), "0b0b1a18ffff04000000000000000000");
  EXPECT_EQ(claims->claims().value("pck_cpu_svn", ""), "0b0b0202ff0100000000000000000000");

  // TDX reports have no CPUSVN: the PCK's is `pck_cpu_svn`, and there is no
  // `cpu_svn` (trustee's TDX claims have none either).
  ASSERT_TRUE(pki_->IssuePck(PckOptions{}).ok());
  tcb_info_ =
      DcapTestPki::DefaultTdxTcbInfo(kAt - absl::Hours(24 * 10), kAt + absl::Hours(24 * 20));
  qe_identity_ =
      DcapTestPki::DefaultQeIdentity(true, kAt - absl::Hours(24 * 10), kAt + absl::Hours(24 * 20));
  Collateral tdx_collateral = MakeCollateral();
  tdx::TdxVerifier tdx_verifier(options_, nullptr);
  tdx::TdxExpectations tdx_expect;
  tdx_expect.at = kAt;
  auto tdx_claims =
      tdx_verifier.VerifyEvidence({Quote(), std::nullopt}, tdx_expect, &tdx_collateral);
  ASSERT_TRUE(tdx_claims.ok()) << tdx_claims.status();
  EXPECT_EQ(tdx_claims->claims().value("pck_cpu_svn", ""), "03030202040100050000000000000000");
  EXPECT_FALSE(tdx_claims->claims().contains("cpu_svn"));
}

// A CC event log of one Spec ID event and `digests` extending RTMR0.
std::string EventLog(const std::vector<std::string>& digests) {
  std::string log;
  auto u32 = [&log](uint32_t v) {
    for (int i = 0; i < 4; ++i) log.push_back(static_cast<char>((v >> (8 * i)) & 0xFF));
  };
  auto u16 = [&log](uint16_t v) {
    log.push_back(static_cast<char>(v & 0xFF));
    log.push_back(static_cast<char>(v >> 8));
  };
  std::string spec("Spec ID Event03\0", 16);
  u32(0);
  u32(3);  // EV_NO_ACTION
  log.append(20, '\0');
  u32(16 + 4 + 4 + 4 + 4 + 1);
  log += spec;
  u32(0);                                     // platform class
  log += std::string("\x00\x02\x00\x02", 4);  // version 2.0, errata 0, uintn size 2
  u32(1);                                     // one algorithm
  u16(0x000C);
  u16(48);
  log.push_back('\0');  // no vendor info
  for (const std::string& d : digests) {
    u32(1);    // RTMR0
    u32(0xD);  // EV_IPL
    u32(1);
    u16(0x000C);
    log += d;
    u32(13);
    log += "console=ttyS0";
  }
  return log;
}

TEST_F(GeneratedDcapTest, TdxVerifierBindsAndReplays) {
  Collateral c = MakeCollateral();
  const std::string digest(48, '\x07');
  const std::string rtmr0 =
      common::Digest(common::HashAlgorithm::kSha384, absl::StrCat(std::string(48, '\0'), digest));
  TdReportFields td;
  td.report_data = std::string(48, '\x11');
  td.mr_config_id = std::string(48, '\x22');
  td.rtmr[0] = rtmr0;
  const std::string quote = Quote(QuoteKind::kTdxV4, td);
  tdx::TdxVerifier verifier(options_, nullptr);
  tdx::TdxExpectations expect{std::string(48, '\x11'), std::string(48, '\x22'), kAt};
  auto ok = verifier.VerifyEvidence({quote, EventLog({digest})}, expect, &c);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->claims()["event_log"][0]["data"], "console=ttyS0");
  EXPECT_EQ(ok->claims()["event_log"][0]["measured"], true);
  // The digest is not the hash of the text: the text is not proven.
  EXPECT_EQ(ok->claims()["event_log"][0]["data_verified"], false);
  EXPECT_EQ(ok->claims()["revocation_checked"]["pck_crl"], true);
  EXPECT_EQ(ok->claims()["tcb_status"], "UpToDate");
  EXPECT_EQ(ok->claims()["debug"], false);
  EXPECT_EQ(ok->trust_vector().hardware, kAffirming);

  auto replay = verifier.VerifyEvidence({quote, EventLog({std::string(48, '\x08')})}, expect, &c);
  ASSERT_FALSE(replay.ok());
  EXPECT_THAT(replay.status().message(), HasSubstr("does not replay to the quote's RTMR0"));

  tdx::TdxExpectations wrong_nonce = expect;
  wrong_nonce.report_data = std::string(48, '\x12');
  EXPECT_THAT(verifier.VerifyEvidence({quote, std::nullopt}, wrong_nonce, &c).status().message(),
              HasSubstr("REPORTDATA"));
  tdx::TdxExpectations wrong_init = expect;
  wrong_init.mr_config_id = std::string(48, '\x23');
  EXPECT_THAT(verifier.VerifyEvidence({quote, std::nullopt}, wrong_init, &c).status().message(),
              HasSubstr("MRCONFIGID"));
}

TEST_F(GeneratedDcapTest, MalformedInputIsRejectedCleanly) {
  const std::string quote = Quote();
  auto parsed = ParseQuote(common::AsSpan(quote));
  ASSERT_TRUE(parsed.ok());
  for (size_t n = 0; n < parsed->size; n += 7) {
    auto q = ParseQuote(common::AsSpan(quote.substr(0, n)));
    ASSERT_FALSE(q.ok()) << n;
    EXPECT_EQ(q.status().code(), absl::StatusCode::kInvalidArgument);
  }
  // A signature-data length far beyond the buffer.
  std::string huge = quote;
  huge[632] = '\xff';
  huge[633] = '\xff';
  huge[634] = '\xff';
  huge[635] = '\x7f';
  EXPECT_THAT(ParseQuote(common::AsSpan(huge)).status().message(), HasSubstr("exceeds"));
  std::string version = quote;
  version[0] = 9;
  EXPECT_THAT(ParseQuote(common::AsSpan(version)).status().message(), HasSubstr("version 9"));
  std::string key_type = quote;
  key_type[2] = 3;
  EXPECT_THAT(ParseQuote(common::AsSpan(key_type)).status().message(),
              HasSubstr("attestation key type"));

  tdx::TdxVerifier verifier(options_, nullptr);
  EvidenceBinding binding;
  for (const char* bad : {R"([])", R"({})", R"({"quote": 5})", R"({"quote": "!!"})",
                          R"({"quote": "AAAA", "cc_eventlog": 7})"}) {
    auto json = common::ParseJson(bad);
    ASSERT_TRUE(json.ok());
    auto r = verifier.Verify(*json, binding);
    ASSERT_FALSE(r.ok()) << bad;
    EXPECT_EQ(r.status().code(), absl::StatusCode::kInvalidArgument) << bad << r.status();
  }
  common::Json oversized = {{"quote", std::string(100000, 'A')}};
  EXPECT_EQ(verifier.Verify(oversized, binding).status().code(),
            absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kbs::verifier::dcap
