#include "verifier/snp/kds.h"

#include <cstdlib>
#include <filesystem>

#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_http_server.h"
#include "tests/testing/testdata.h"
#include "verifier/snp/snp_verifier.h"

namespace kbs::verifier::snp {
namespace {

using ::testing::HasSubstr;

std::string Read(const std::string& relative) {
  return common::ReadFile(kbs::testing::TestDataDir() + "/" + relative).value_or("");
}

std::string TempDir(const std::string& name) {
  std::string dir = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A KDS stand-in serving the real Milan certificates (set SNP-2), answering
// 429 to the first `throttle` requests.
class KdsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kbs::testing::TestDataDir() + "/snp")) {
      GTEST_SKIP() << "real SNP evidence not found: set KBS_TESTDATA to shared/testdata";
    }
    report_ = Read("snp/milan-v2-trustee-report.bin");
    vcek_ = Read("snp/milan-v2-trustee-vcek.der");
    chain_ = Read("snp/milan_ask_ark_asvk.pem");
    parsed_ = *ParseSnpReport(common::AsSpan(report_));
    hwid_hex_ = common::HexEncode(parsed_.chip_id);
  }
  testing::FakeResponse Serve(const std::string& target) {
    if (throttle_ > 0) {
      --throttle_;
      return {429, "slow down", {}};
    }
    if (target == "/vcek/v1/Milan/" + hwid_hex_ + "?blSPL=3&teeSPL=0&snpSPL=8&ucodeSPL=115") {
      return {200, vcek_, {{"Content-Type", "application/octet-stream"}}};
    }
    if (target == "/vcek/v1/Milan/cert_chain") return {200, chain_, {}};
    return {404, "not found", {}};
  }

  std::string report_, vcek_, chain_, hwid_hex_;
  SnpReport parsed_;
  int throttle_ = 0;
};

TEST_F(KdsTest, FetchesCachesAndVerifies) {
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  std::string dir = TempDir("kds_cache");
  DirectoryCollateral cache(dir);
  KdsCollateral::Options options;
  options.base_url = kds.url();
  options.min_interval = absl::Milliseconds(20);
  KdsCollateral fetcher(options, &cache);
  ChainedCollateral collateral({&cache, &fetcher});
  SnpVerifierOptions verifier_options;
  verifier_options.collateral = &collateral;
  common::FakeClock clock(absl::FromUnixSeconds(1780000000));  // 2026-05-28
  auto verifier = SnpVerifier::Create(std::move(verifier_options), &clock);

  // No VCEK in the evidence: it comes from KDS, then from the cache.
  SnpEvidence evidence{report_, {}};
  SnpExpectations expect{std::nullopt, std::nullopt, clock.Now()};
  auto claims = verifier->VerifyEvidence(evidence, expect);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["product"], "Milan");
  EXPECT_TRUE(std::filesystem::exists(dir + "/Milan/cert_chain.pem"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/Milan/vcek/" + hwid_hex_ + "/7308000000000003.der"));
  int after_first = kds.requests();
  EXPECT_GE(after_first, 2);
  // A fresh verifier over the same cache directory needs no request.
  SnpVerifierOptions again;
  again.collateral = &collateral;
  auto verifier2 = SnpVerifier::Create(std::move(again), &clock);
  ASSERT_TRUE(verifier2->VerifyEvidence(evidence, expect).ok());
  EXPECT_EQ(kds.requests(), after_first);
}

TEST_F(KdsTest, RetriesThrottledRequestsWithBackoff) {
  throttle_ = 2;
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  KdsCollateral::Options options;
  options.base_url = kds.url();
  options.min_interval = absl::Milliseconds(20);
  KdsCollateral fetcher(options, nullptr);
  VcekRequest request{Product::kMilan,
                      std::string(reinterpret_cast<const char*>(parsed_.chip_id.data()), 64),
                      TcbVersion::Decode(parsed_.reported_tcb, false)};
  auto der = fetcher.GetVcek(request, absl::Seconds(5));
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(*der, vcek_);
  EXPECT_EQ(kds.requests(), 3);
  EXPECT_EQ(fetcher.requests_sent(), 3);
}

TEST_F(KdsTest, RateLimitNeverExceedsTheDeadline) {
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  KdsCollateral::Options options;
  options.base_url = kds.url();
  options.min_interval = absl::Seconds(10);  // KDS's real pace
  KdsCollateral fetcher(options, nullptr);
  VcekRequest request{Product::kMilan,
                      std::string(reinterpret_cast<const char*>(parsed_.chip_id.data()), 64),
                      TcbVersion::Decode(parsed_.reported_tcb, false)};
  ASSERT_TRUE(fetcher.GetVcek(request, absl::Seconds(5)).ok());
  absl::Time start = absl::Now();
  auto second = fetcher.GetVcek(request, absl::Milliseconds(200));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("rate limit"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  // Unknown chips are NotFound (404), not errors.
  request.hwid = std::string(64, '\x01');
  EXPECT_EQ(KdsCollateral(KdsCollateral::Options{kds.url(), absl::ZeroDuration(), {}}, nullptr)
                .GetVcek(request, absl::Seconds(2))
                .status()
                .code(),
            absl::StatusCode::kNotFound);
}

TEST_F(KdsTest, UnreachableKdsIsUnavailable) {
  KdsCollateral::Options options;
  options.base_url = "http://127.0.0.1:1";  // nothing listens there
  options.min_interval = absl::Milliseconds(10);
  options.http.timeout = absl::Milliseconds(200);
  KdsCollateral fetcher(options, nullptr);
  VcekRequest request{Product::kMilan, std::string(64, '\x01'), TcbVersion{}};
  absl::Time start = absl::Now();
  auto result = fetcher.GetVcek(request, absl::Milliseconds(500));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

}  // namespace
}  // namespace kbs::verifier::snp
