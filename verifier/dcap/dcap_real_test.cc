// The TDX and SGX verifiers on real quotes and Intel collateral, each set at
// the time and with the outcome ../shared/testdata/PROVENANCE.md documents.
#include <cstdlib>
#include <filesystem>

#include "absl/time/time.h"
#include "common/encoding.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/testdata.h"
#include "verifier/dcap/collateral.h"
#include "verifier/dcap/quote.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/sgx/sgx_verifier.h"
#include "verifier/tdx/eventlog.h"
#include "verifier/tdx/tdx_verifier.h"

namespace kbs::verifier::dcap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;

#define REQUIRE_TESTDATA()                                                              \
  if (!std::filesystem::exists(kbs::testing::TestDataDir() + "/tdx")) {                 \
    GTEST_SKIP() << "real Intel quotes not found: set KBS_TESTDATA to shared/testdata"; \
  }

std::string Read(const std::string& relative) {
  auto data = common::ReadFile(kbs::testing::TestDataDir() + "/" + relative);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.value_or("");
}

absl::Time At(const char* rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

Collateral Bundle(const std::string& relative) {
  auto c = ParseCollateralBundle(Read(relative));
  EXPECT_TRUE(c.ok()) << c.status();
  return c.value_or(Collateral{});
}

// TCB info and QE identity from PCS bodies, with the TCB Signing chain.
Collateral FromPcs(const std::string& tcb_info, const std::string& qe_identity,
                   const std::string& chain) {
  Collateral c;
  auto tcb = SplitPcsBody(Read(tcb_info), "tcbInfo");
  auto qe = SplitPcsBody(Read(qe_identity), "enclaveIdentity");
  EXPECT_TRUE(tcb.ok()) << tcb.status();
  EXPECT_TRUE(qe.ok()) << qe.status();
  if (!tcb.ok() || !qe.ok()) return c;
  c.tcb_info = tcb->text;
  c.tcb_info_signature = tcb->signature;
  c.qe_identity = qe->text;
  c.qe_identity_signature = qe->signature;
  c.tcb_info_issuer_chain = Read(chain);
  c.qe_identity_issuer_chain = c.tcb_info_issuer_chain;
  return c;
}

class RealQuotes : public ::testing::Test {
 protected:
  absl::StatusOr<VerifiedQuote> Verify(const std::string& quote, DcapTee tee, const char* at,
                                       const Collateral& c) {
    QuoteVerifier v{QuoteVerifierOptions{}};
    return v.Verify(common::AsSpan(Read(quote)), tee, At(at), &c);
  }
};

TEST_F(RealQuotes, PhalaTdxV4IsUpToDate) {
  REQUIRE_TESTDATA();
  auto q = Verify("tdx/phala-tdx-v4-quote.bin", DcapTee::kTdx, "2025-07-01T00:00:00Z",
                  Bundle("tdx/phala-tdx-v4-collateral.json"));
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "UpToDate");
  EXPECT_TRUE(q->tcb.advisory_ids.empty());
  EXPECT_EQ(q->tcb.tcb_date, "2024-03-13T00:00:00Z");
  EXPECT_EQ(q->tcb.module_status, "UpToDate");
  EXPECT_EQ(q->tcb.qe_status, "UpToDate");
  EXPECT_EQ(common::HexEncode(q->pck.fmspc), "b0c06f000000");
  EXPECT_EQ(q->pck.pce_svn, 11);
  EXPECT_EQ(common::HexEncode(q->pck.ppid), "811dca2a26b952e85bb6448b097ba4fd");
  EXPECT_EQ(q->pck.smt_enabled, true);
  EXPECT_EQ(q->quote.size, 4936u);
  EXPECT_FALSE(q->quote.td->debug());
}

TEST_F(RealQuotes, PhalaTdxV4OutsideTheCollateralWindowFails) {
  REQUIRE_TESTDATA();
  auto q = Verify("tdx/phala-tdx-v4-quote.bin", DcapTee::kTdx, "2025-08-01T00:00:00Z",
                  Bundle("tdx/phala-tdx-v4-collateral.json"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(q.status().message(), HasSubstr("not current"));
}

Collateral TrusteeDebugCollateral() {
  Collateral c =
      FromPcs("tdx/gotdx-tcbInfo-50806f000000-2023-06.json", "tdx/gotdx-tdqe-identity-2023-06.json",
              "intel-common/derived-tcb-signing-chain-2018-2025.pem");
  c.pck_crl = Read("intel-common/gotdx-pckcrl-platform-2023-06.der");
  c.root_ca_crl = Read("intel-common/gotdx-rootcrl-2023-04.der");
  return c;
}

TEST_F(RealQuotes, TrusteeDebugTdIsUpToDateAndDebug) {
  REQUIRE_TESTDATA();
  Collateral c = TrusteeDebugCollateral();
  auto q =
      Verify("tdx/trustee-tdx-v4-spr-debug-quote.dat", DcapTee::kTdx, "2023-06-20T00:00:00Z", c);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "UpToDate");
  EXPECT_TRUE(q->quote.td->debug());
  EXPECT_TRUE(q->collateral->pck_crl != nullptr);
  // The same set a month later: the PCK CRL has expired.
  auto late =
      Verify("tdx/trustee-tdx-v4-spr-debug-quote.dat", DcapTee::kTdx, "2023-08-01T00:00:00Z", c);
  ASSERT_FALSE(late.ok());
  EXPECT_EQ(late.status().code(), absl::StatusCode::kUnavailable);

  // Through the TDX verifier: claims, with debug visible to the policy.
  tdx::TdxVerifier verifier(QuoteVerifierOptions{}, nullptr);
  tdx::TdxEvidence ev{Read("tdx/trustee-tdx-v4-spr-debug-quote.dat"), std::nullopt};
  tdx::TdxExpectations expect;
  expect.at = At("2023-06-20T00:00:00Z");
  auto claims = verifier.VerifyEvidence(ev, expect, &c);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["tcb_status"], "UpToDate");
  EXPECT_EQ(claims->claims()["td_attributes"]["debug"], true);
  EXPECT_EQ(claims->claims()["debug"], true);
  EXPECT_EQ(claims->claims()["fmspc"], "50806f000000");
  EXPECT_EQ(claims->trust_vector().configuration, kWarningUnsafeConfig);
  EXPECT_EQ(claims->trust_vector().hardware, kAffirming);
}

TEST_F(RealQuotes, GotdxV5IsUpToDate) {
  REQUIRE_TESTDATA();
  Collateral phala = Bundle("tdx/phala-tdx-v5-outdated-collateral.json");
  auto tcb = SplitPcsBody(Read("tdx/gotdx-tcbInfo-90c06f000000-2026-02.json"), "tcbInfo");
  ASSERT_TRUE(tcb.ok()) << tcb.status();
  Collateral c = phala;
  c.tcb_info = tcb->text;
  c.tcb_info_signature = tcb->signature;
  auto q = Verify("tdx/gotdx-tdx-v5-quote.dat", DcapTee::kTdx, "2026-02-25T00:00:00Z", c);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->quote.header.version, 5);
  EXPECT_EQ(q->quote.body_type, 3);
  EXPECT_TRUE(q->quote.td->tee_tcb_svn2.has_value());
  EXPECT_EQ(q->tcb.status, "UpToDate");
  EXPECT_EQ(q->tcb.tcb_date, "2024-11-13T00:00:00Z");
  // phala's 2026 TCB info for the same FMSPC agrees.
  auto q2 = Verify("tdx/gotdx-tdx-v5-quote.dat", DcapTee::kTdx, "2026-02-25T00:00:00Z", phala);
  ASSERT_TRUE(q2.ok()) << q2.status();
  EXPECT_EQ(q2->tcb.status, "UpToDate");
}

TEST_F(RealQuotes, OutdatedV5MatchesNoTcbLevel) {
  REQUIRE_TESTDATA();
  auto q = Verify("tdx/phala-tdx-v5-outdated-quote.bin", DcapTee::kTdx, "2026-03-01T00:00:00Z",
                  Bundle("tdx/phala-tdx-v5-outdated-collateral.json"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(q.status().message(), HasSubstr("TCB level not supported"));
}

TEST_F(RealQuotes, GraniteRapidsIsOutOfDate) {
  REQUIRE_TESTDATA();
  Collateral c =
      FromPcs("tdx/trustee-tcbInfo-00A06D080000.json", "tdx/trustee-tdqe-identity-2025-10.json",
              "intel-common/derived-tcb-signing-chain-2025-2032.pem");
  auto q = Verify("tdx/trustee-tdx-v4-gnr-quote.dat", DcapTee::kTdx, "2025-11-01T00:00:00Z", c);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "OutOfDate");
  EXPECT_EQ(q->tcb.platform_status, "OutOfDate");
  EXPECT_EQ(q->tcb.tcb_date, "2018-01-04T00:00:00Z");
  EXPECT_EQ(q->tcb.module_status, "UpToDate");
  EXPECT_EQ(q->pck.sgx_type, 2);
}

TEST_F(RealQuotes, SprE4AndEmrQuotesMatchNoLevel) {
  REQUIRE_TESTDATA();
  auto spr = Verify("tdx/gotdx-tdx-v4-spr-e4-quote.dat", DcapTee::kTdx, "2023-06-20T00:00:00Z",
                    TrusteeDebugCollateral());
  ASSERT_FALSE(spr.ok());
  EXPECT_THAT(spr.status().message(), HasSubstr("TCB level not supported"));
  Collateral phala = Bundle("tdx/phala-tdx-v5-outdated-collateral.json");
  auto emr =
      Verify("tdx/trustee-tdx-v5-emr-quote.dat", DcapTee::kTdx, "2026-03-01T00:00:00Z", phala);
  ASSERT_FALSE(emr.ok());
  EXPECT_THAT(emr.status().message(), HasSubstr("TCB level not supported"));
}

TEST_F(RealQuotes, SgxNeedsConfigurationAndHardening) {
  REQUIRE_TESTDATA();
  Collateral c = Bundle("sgx/phala-sgx-v3-collateral.json");
  auto q = Verify("sgx/phala-sgx-v3-quote.bin", DcapTee::kSgx, "2025-07-01T00:00:00Z", c);
  ASSERT_TRUE(q.ok()) << q.status();
  EXPECT_EQ(q->tcb.status, "ConfigurationAndSWHardeningNeeded");
  EXPECT_THAT(q->tcb.advisory_ids, ElementsAre("INTEL-SA-00289", "INTEL-SA-00615"));
  EXPECT_EQ(q->ca, PckCa::kProcessor);
  EXPECT_EQ(q->quote.header.qe_svn, 10);
  EXPECT_EQ(q->quote.header.pce_svn, 15);

  sgx::SgxVerifier verifier(QuoteVerifierOptions{}, nullptr);
  sgx::SgxExpectations expect;
  expect.at = At("2025-07-01T00:00:00Z");
  expect.report_data = std::string("Hello, world!");
  auto claims = verifier.VerifyQuote(Read("sgx/phala-sgx-v3-quote.bin"), expect, &c);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["mr_enclave"],
            "33d8736db756ed4997e04ba358d27833188f1932ff7b1d156904d3f560452fbb");
  EXPECT_EQ(claims->claims()["attributes"]["debug"], false);
  EXPECT_EQ(claims->claims()["tcb_status"], "ConfigurationAndSWHardeningNeeded");
  expect.report_data = std::string("Hello, world?");
  auto wrong = verifier.VerifyQuote(Read("sgx/phala-sgx-v3-quote.bin"), expect, &c);
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("REPORTDATA"));
  // A TDX verifier refuses an SGX quote.
  QuoteVerifier v{QuoteVerifierOptions{}};
  auto as_tdx = v.Verify(common::AsSpan(Read("sgx/phala-sgx-v3-quote.bin")), DcapTee::kTdx,
                         At("2025-07-01T00:00:00Z"), &c);
  EXPECT_EQ(as_tdx.status().code(), absl::StatusCode::kInvalidArgument);
}

// Set SGX-A: the enclave's CPUSVN (0b0b1a18ffff04..) is `cpu_svn`; the
// PCK certificate's (0b0b0202ff01..) is `pck_cpu_svn`. Set TDX-A: the PCK's
// CPUSVN is `pck_cpu_svn`, and a TD has no `cpu_svn`.
TEST_F(RealQuotes, CpuSvnClaimsNameTheirSource) {
  REQUIRE_TESTDATA();
  Collateral sgx_collateral = Bundle("sgx/phala-sgx-v3-collateral.json");
  sgx::SgxVerifier sgx_verifier(QuoteVerifierOptions{}, nullptr);
  sgx::SgxExpectations sgx_expect;
  sgx_expect.at = At("2025-07-01T00:00:00Z");
  auto sgx =
      sgx_verifier.VerifyQuote(Read("sgx/phala-sgx-v3-quote.bin"), sgx_expect, &sgx_collateral);
  ASSERT_TRUE(sgx.ok()) << sgx.status();
  EXPECT_EQ(sgx->claims().value("cpu_svn", ""), "0b0b1a18ffff04000000000000000000");
  EXPECT_EQ(sgx->claims().value("pck_cpu_svn", ""), "0b0b0202ff0100000000000000000000");

  Collateral tdx_collateral = Bundle("tdx/phala-tdx-v4-collateral.json");
  tdx::TdxVerifier tdx_verifier(QuoteVerifierOptions{}, nullptr);
  tdx::TdxExpectations tdx_expect;
  tdx_expect.at = At("2025-07-01T00:00:00Z");
  auto tdx = tdx_verifier.VerifyEvidence({Read("tdx/phala-tdx-v4-quote.bin"), std::nullopt},
                                         tdx_expect, &tdx_collateral);
  ASSERT_TRUE(tdx.ok()) << tdx.status();
  EXPECT_EQ(tdx->claims().value("pck_cpu_svn", ""), "03030202040100050000000000000000");
  EXPECT_FALSE(tdx->claims().contains("cpu_svn"));
}

TEST_F(RealQuotes, OcclumDebugEnclaveVerifiesUpToCollateral) {
  REQUIRE_TESTDATA();
  // No collateral was collected for this FMSPC: the signatures and chain
  // verify, then the verifier says what it lacks.
  QuoteVerifier v{QuoteVerifierOptions{}};
  auto q = v.Verify(common::AsSpan(Read("sgx/trustee-occlum-sgx-v3-quote.dat")), DcapTee::kSgx,
                    At("2025-01-01T00:00:00Z"));
  ASSERT_FALSE(q.ok());
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(q.status().message(), HasSubstr("00606a000000"));
  auto parsed = ParseQuote(common::AsSpan(Read("sgx/trustee-occlum-sgx-v3-quote.dat")));
  ASSERT_TRUE(parsed.ok());
  EXPECT_TRUE(parsed->enclave->debug());
}

TEST_F(RealQuotes, GcpEventLogReplaysToTheQuotedRtmrs) {
  REQUIRE_TESTDATA();
  auto quote = ParseQuote(common::AsSpan(Read("tdx/gotdx-gcp-cos-tdx-v4-quote.dat")));
  ASSERT_TRUE(quote.ok()) << quote.status();
  auto log = tdx::ParseCcEventLog(common::AsSpan(Read("tdx/gotdx-gcp-cos-ccel-eventlog.bin")));
  ASSERT_TRUE(log.ok()) << log.status();
  std::array<std::string, 4> rtmrs = tdx::ReplayRtmrs(*log);
  for (int i = 0; i < 4; ++i) EXPECT_EQ(rtmrs[i], quote->td->rtmr[i]) << "RTMR" << i;
  // The quote itself verifies up to the collateral nobody collected.
  QuoteVerifier v{QuoteVerifierOptions{}};
  auto q = v.Verify(common::AsSpan(Read("tdx/gotdx-gcp-cos-tdx-v4-quote.dat")), DcapTee::kTdx,
                    At("2025-01-01T00:00:00Z"));
  EXPECT_EQ(q.status().code(), absl::StatusCode::kUnavailable) << q.status();
}

TEST_F(RealQuotes, EveryRealQuoteParsesWithItsDeclaredLength) {
  REQUIRE_TESTDATA();
  for (const char* f : {"tdx/phala-tdx-v4-quote.bin", "tdx/trustee-tdx-v4-spr-debug-quote.dat",
                        "tdx/gotdx-tdx-v5-quote.dat", "tdx/phala-tdx-v5-outdated-quote.bin",
                        "tdx/trustee-tdx-v4-gnr-quote.dat", "tdx/gotdx-gcp-cos-tdx-v4-quote.dat",
                        "tdx/gotdx-tdx-v4-spr-e4-quote.dat", "tdx/trustee-tdx-v5-emr-quote.dat",
                        "sgx/phala-sgx-v3-quote.bin", "sgx/trustee-occlum-sgx-v3-quote.dat"}) {
    std::string bytes = Read(f);
    auto q = ParseQuote(common::AsSpan(bytes));
    ASSERT_TRUE(q.ok()) << f << ": " << q.status();
    EXPECT_LE(q->size, bytes.size()) << f;
    auto chain = ParsePckChain(q->pck_chain_pem);
    EXPECT_TRUE(chain.ok()) << f << ": " << chain.status();
    // Every prefix short of the declared size fails cleanly.
    for (size_t n : {size_t{0}, size_t{47}, size_t{48}, size_t{600}, q->size - 1}) {
      EXPECT_FALSE(ParseQuote(common::AsSpan(bytes.substr(0, n))).ok()) << f << " at " << n;
    }
  }
}

}  // namespace
}  // namespace kbs::verifier::dcap
