#include "verifier/snp/kds.h"

#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>
#include <map>
#include <mutex>
#include <thread>

#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/x509.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_http_server.h"
#include "tests/testing/snp_generator.h"
#include "tests/testing/testdata.h"
#include "verifier/snp/snp_verifier.h"

namespace kbs::verifier::snp {
namespace {

using ::testing::ElementsAre;
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
  VcekRequest Request() const {
    return {Product::kMilan, std::string(reinterpret_cast<const char*>(parsed_.chip_id.data()), 64),
            TcbVersion::Decode(parsed_.reported_tcb, false)};
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
  // This KDS has no CRL (AMD's is signed by AMD's ARK, not in the test data).
  EXPECT_EQ(claims->claims()["ark_crl"], "none");
  EXPECT_TRUE(std::filesystem::exists(dir + "/Milan/cert_chain.pem"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/Milan/vcek/" + hwid_hex_ + "/7308000000000003.der"));
  EXPECT_THAT(kds.targets(), ElementsAre(HasSubstr("/vcek/v1/Milan/" + hwid_hex_),
                                         "/vcek/v1/Milan/cert_chain", "/vcek/v1/Milan/crl"));
  // A fresh verifier over the same cache directory needs no certificate
  // from KDS (it asks once for the CRL the directory lacks).
  SnpVerifierOptions again;
  again.collateral = &collateral;
  auto verifier2 = SnpVerifier::Create(std::move(again), &clock);
  ASSERT_TRUE(verifier2->VerifyEvidence(evidence, expect).ok());
  std::vector<std::string> targets = kds.targets();
  EXPECT_EQ(targets.size(), 4u);
  EXPECT_EQ(targets.back(), "/vcek/v1/Milan/crl");
}

TEST_F(KdsTest, RetriesThrottledRequestsWithBackoff) {
  throttle_ = 2;
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  KdsCollateral::Options options;
  options.base_url = kds.url();
  options.min_interval = absl::Milliseconds(20);
  options.retry_backoff = absl::Milliseconds(20);
  KdsCollateral fetcher(options, nullptr);
  auto der = fetcher.GetVcek(Request(), absl::Now() + absl::Seconds(5));
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
  ASSERT_TRUE(fetcher.GetVcek(Request(), absl::Now() + absl::Seconds(5)).ok());
  // The same VCEK again is known; another chip's must wait for its turn.
  ASSERT_TRUE(fetcher.GetVcek(Request(), absl::Now() + absl::Milliseconds(200)).ok());
  VcekRequest other = Request();
  other.hwid = std::string(64, '\x02');
  absl::Time start = absl::Now();
  auto second = fetcher.GetVcek(other, absl::Now() + absl::Milliseconds(200));
  EXPECT_EQ(second.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(second.status().message(), HasSubstr("rate limit"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(kds.requests(), 1);
  // Unknown chips are NotFound (404), not errors.
  other.hwid = std::string(64, '\x01');
  KdsCollateral::Options eager;
  eager.base_url = kds.url();
  eager.min_interval = absl::ZeroDuration();
  EXPECT_EQ(
      KdsCollateral(eager, nullptr).GetVcek(other, absl::Now() + absl::Seconds(2)).status().code(),
      absl::StatusCode::kNotFound);
}

TEST_F(KdsTest, UnreachableKdsIsUnavailable) {
  KdsCollateral::Options options;
  options.base_url = "http://127.0.0.1:1";  // nothing listens there
  options.min_interval = absl::Milliseconds(10);
  KdsCollateral fetcher(options, nullptr);
  VcekRequest request{Product::kMilan, std::string(64, '\x01'), TcbVersion{}};
  absl::Time start = absl::Now();
  auto result = fetcher.GetVcek(request, absl::Now() + absl::Milliseconds(500));
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(3));
}

// A KDS stand-in serving a generated Genoa hierarchy: what it answers for
// each target is set by the test, `delay` before every answer.
class GeneratedKdsTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    chain_ = testing::SnpTestChain::Create(Product::kGenoa)->release();
    other_chain_ = testing::SnpTestChain::Create(Product::kGenoa)->release();
  }
  void SetUp() override {
    dir_ = TempDir("kds_generated");
    tcb_ = testing::PlausibleTcb();
    chip_ = std::string(64, '\x42');
    vcek_ = *chain_->IssueVcek({tcb_, chip_});
    testing::SnpReportFields f;
    f.reported_tcb = tcb_;
    f.chip_id = chip_;
    report_ = *chain_->SignReport(f);
    // The chain as KDS serves it: ASK and ARK (VCEK) or ASVK and ARK (VLEK).
    auto all = *common::ParsePemCertificates(chain_->ChainPem());
    std::vector<std::string> ask_ark, asvk_ark;
    for (const common::X509Ptr& c : all) {
      std::string der = *common::CertificateDer(c.get());
      AmdCaRole role = CaRoleOf(c.get());
      if (role != AmdCaRole::kAsvk) ask_ark.push_back(der);
      if (role != AmdCaRole::kAsk) asvk_ark.push_back(der);
    }
    vcek_chain_pem_ = kbs::testing::PemOfDers(ask_ark);
    vlek_chain_pem_ = kbs::testing::PemOfDers(asvk_ark);
  }

  testing::FakeResponse Serve(const std::string& target) {
    absl::Duration delay;
    {
      std::lock_guard<std::mutex> lock(mu_);
      delay = delay_;
    }
    absl::SleepFor(delay);
    std::lock_guard<std::mutex> lock(mu_);
    auto it = answers_.find(target);
    if (it != answers_.end()) return it->second;
    return {404, "not found", {}};
  }
  void Delay(absl::Duration delay) {
    std::lock_guard<std::mutex> lock(mu_);
    delay_ = delay;
  }
  void Answer(const std::string& target, testing::FakeResponse response) {
    std::lock_guard<std::mutex> lock(mu_);
    answers_[target] = std::move(response);
  }
  std::string VcekTarget() const {
    return "/vcek/v1/Genoa/" + common::HexEncode(chip_) +
           "?blSPL=10&teeSPL=0&snpSPL=23&ucodeSPL=25";
  }
  VcekRequest Request() const { return {Product::kGenoa, chip_, tcb_}; }

  KdsCollateral::Options Options(const testing::FakeHttpServer& kds, absl::Duration min_interval) {
    KdsCollateral::Options options;
    options.base_url = kds.url();
    options.min_interval = min_interval;
    options.retry_backoff = min_interval;
    options.anchors = TrustAnchors();
    EXPECT_TRUE(options.anchors.Add(Product::kGenoa, chain_->ArkFingerprintHex()).ok());
    options.clock = &clock_;
    return options;
  }
  std::unique_ptr<SnpVerifier> Verifier(CollateralSource* collateral, absl::Duration timeout) {
    SnpVerifierOptions options;
    options.anchors = TrustAnchors();
    EXPECT_TRUE(options.anchors.Add(Product::kGenoa, chain_->ArkFingerprintHex()).ok());
    options.collateral = collateral;
    options.collateral_timeout = timeout;
    return SnpVerifier::Create(std::move(options), &clock_);
  }
  // The report with its VCEK in the evidence (as the agent sends it), or
  // without.
  absl::StatusOr<VerifiedClaims> Verify(const SnpVerifier& verifier, bool with_vcek = true) {
    SnpEvidence evidence{report_, {}};
    if (with_vcek) evidence.cert_chain.push_back({"VCEK", vcek_});
    return verifier.VerifyEvidence(evidence, {std::nullopt, std::nullopt, clock_.Now()});
  }
  bool Stored(const std::string& relative) const {
    return std::filesystem::exists(dir_ + "/" + relative);
  }

  static constexpr char kChainTarget[] = "/vcek/v1/Genoa/cert_chain";
  static constexpr char kVlekChainTarget[] = "/vlek/v1/Genoa/cert_chain";
  static constexpr char kCrlTarget[] = "/vcek/v1/Genoa/crl";
  static testing::SnpTestChain* chain_;
  static testing::SnpTestChain* other_chain_;
  common::FakeClock clock_{absl::FromUnixSeconds(1780000000)};  // 2026-05-28
  std::string dir_;
  TcbVersion tcb_;
  std::string chip_, vcek_, report_, vcek_chain_pem_, vlek_chain_pem_;
  absl::Duration delay_ = absl::ZeroDuration();
  std::mutex mu_;
  std::map<std::string, testing::FakeResponse> answers_;
};
testing::SnpTestChain* GeneratedKdsTest::chain_ = nullptr;
testing::SnpTestChain* GeneratedKdsTest::other_chain_ = nullptr;

// With KDS's pace equal to the attestation deadline (AMD's defaults: 10 s
// and 10 s), the CRL's turn comes after the attestation that fetched the
// chain: that one goes on without a CRL, a later one fetches it, and the
// CRL then revokes the chain verified and cached before it.
TEST_F(GeneratedKdsTest, MissingCrlIsFetchedLaterAndRevokesCachedChains) {
  Answer(kChainTarget, {200, vcek_chain_pem_, {}});
  Answer(kCrlTarget, {200, *chain_->MakeCrl({2}), {}});  // revokes the ASK
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  KdsCollateral fetcher(Options(kds, absl::Seconds(1)), &cache);
  ChainedCollateral collateral({&cache, &fetcher});
  auto verifier = Verifier(&collateral, absl::Seconds(1));

  absl::Time start = absl::Now();
  auto first = Verify(*verifier);
  ASSERT_TRUE(first.ok()) << first.status();
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));  // no wait for the CRL's turn
  EXPECT_EQ(first->claims()["ark_crl"], "none");
  EXPECT_THAT(kds.targets(), ElementsAre(kChainTarget));
  EXPECT_TRUE(Stored("Genoa/cert_chain.pem"));
  EXPECT_FALSE(Stored("Genoa/crl.der"));
  // Within crl_retry_interval the CRL is not looked for again.
  ASSERT_TRUE(Verify(*verifier).ok());
  EXPECT_EQ(kds.requests(), 1);

  // Later, once KDS's turn has come, an attestation fetches the CRL, keeps
  // it, and it revokes the cached chain.
  absl::SleepFor(absl::Milliseconds(1100));
  clock_.Advance(absl::Minutes(2));
  start = absl::Now();
  auto later = Verify(*verifier);
  EXPECT_EQ(later.status().code(), absl::StatusCode::kUnauthenticated) << later.status();
  EXPECT_THAT(later.status().message(), HasSubstr("revoked by the ARK CRL"));
  EXPECT_LT(absl::Now() - start, absl::Milliseconds(900));
  EXPECT_THAT(kds.targets(), ElementsAre(kChainTarget, kCrlTarget));
  EXPECT_TRUE(Stored("Genoa/crl.der"));
  EXPECT_FALSE(Verify(*verifier).ok());
  // A new verifier (a restart) finds the CRL in the directory.
  auto restarted = Verifier(&collateral, absl::Seconds(1));
  EXPECT_THAT(Verify(*restarted).status().message(), HasSubstr("revoked by the ARK CRL"));
  EXPECT_EQ(kds.requests(), 2);
}

// A CRL past its nextUpdate is stale: it is fetched again, and until a
// fresh one comes the stale one's entries still revoke (the attestation
// otherwise goes on, and says `ark_crl: stale`).
TEST_F(GeneratedKdsTest, StaleCrlIsFetchedAgainAndStillRevokesMeanwhile) {
  const absl::Time now = clock_.Now();
  DirectoryCollateral cache(dir_);
  ASSERT_TRUE(cache.StoreChain(Product::kGenoa, SignerType::kVcek, vcek_chain_pem_).ok());
  ASSERT_TRUE(cache
                  .StoreCrl(Product::kGenoa, *chain_->MakeCrl({77}, now - absl::Hours(24 * 30),
                                                              now - absl::Hours(24)))
                  .ok());
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  KdsCollateral fetcher(Options(kds, absl::Milliseconds(50)), &cache);
  ChainedCollateral collateral({&cache, &fetcher});
  auto verifier = Verifier(&collateral, absl::Seconds(2));

  // KDS has nothing newer: the stale CRL is used and said to be stale.
  auto stale = Verify(*verifier);
  ASSERT_TRUE(stale.ok()) << stale.status();
  EXPECT_EQ(stale->claims()["ark_crl"], "stale");
  EXPECT_THAT(kds.targets(), ElementsAre(kCrlTarget));

  // A fresh CRL (revoking the ASK) is fetched at the next try, kept, and
  // applies to the cached chain.
  const std::string fresh = *chain_->MakeCrl({2}, now - absl::Hours(1), now + absl::Hours(24 * 30));
  Answer(kCrlTarget, {200, fresh, {}});
  clock_.Advance(absl::Minutes(2));
  auto revoked = Verify(*verifier);
  EXPECT_THAT(revoked.status().message(), HasSubstr("revoked by the ARK CRL"));
  EXPECT_EQ(kds.requests(), 2);
  EXPECT_EQ(common::ReadFile(dir_ + "/Genoa/crl.der").value_or(""), fresh);

  // A stale CRL that revokes the ASK fails closed even when KDS cannot
  // offer a newer one.
  std::string dir2 = TempDir("kds_generated_stale_revoking");
  DirectoryCollateral cache2(dir2);
  ASSERT_TRUE(cache2.StoreChain(Product::kGenoa, SignerType::kVcek, vcek_chain_pem_).ok());
  ASSERT_TRUE(cache2
                  .StoreCrl(Product::kGenoa, *chain_->MakeCrl({2}, now - absl::Hours(24 * 30),
                                                              now - absl::Hours(24)))
                  .ok());
  KdsCollateral::Options nowhere = Options(kds, absl::Milliseconds(10));
  nowhere.base_url = "http://127.0.0.1:1";  // nothing listens there
  KdsCollateral unreachable(nowhere, &cache2);
  ChainedCollateral collateral2({&cache2, &unreachable});
  auto verifier2 = Verifier(&collateral2, absl::Milliseconds(300));
  EXPECT_THAT(Verify(*verifier2).status().message(), HasSubstr("revoked by the ARK CRL"));
}

// One deadline per attestation covers all its fetches, each request ends by
// it, and KDS's pace counts against it.
TEST_F(GeneratedKdsTest, OneDeadlineCoversAllOfAnAttestationsFetches) {
  Answer(VcekTarget(), {200, vcek_, {}});
  Answer(kChainTarget, {200, vcek_chain_pem_, {}});
  Delay(absl::Milliseconds(600));  // each answer
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  KdsCollateral fetcher(Options(kds, absl::Milliseconds(600)), &cache);
  ChainedCollateral collateral({&cache, &fetcher});
  auto verifier = Verifier(&collateral, absl::Seconds(1));

  // The VCEK (0.6 s) and the chain (sent at 0.6 s, answered at 1.2 s) do
  // not fit in one second.
  absl::Time start = absl::Now();
  auto result = Verify(*verifier, /*with_vcek=*/false);
  absl::Duration took = absl::Now() - start;
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnavailable) << result.status();
  EXPECT_LT(took, absl::Milliseconds(1300));
  EXPECT_GE(took, absl::Milliseconds(900));
  EXPECT_THAT(kds.targets(), ElementsAre(VcekTarget(), kChainTarget));
  // The VCEK came before its chain: handed out, not kept for good yet.
  EXPECT_FALSE(Stored(DirectoryCollateral::VcekRelativePath(Request())));

  // The next attestation finds the VCEK in memory and the chain's turn come.
  Delay(absl::ZeroDuration());
  auto next = Verify(*verifier, /*with_vcek=*/false);
  ASSERT_TRUE(next.ok()) << next.status();
  EXPECT_TRUE(Stored(DirectoryCollateral::VcekRelativePath(Request())));
  EXPECT_TRUE(Stored("Genoa/cert_chain.pem"));
}

// Callers that wait for the same certificate look again once their turn
// comes: one request, and no wait for KDS's pace.
TEST_F(GeneratedKdsTest, ConcurrentCallersFetchOnce) {
  Answer(VcekTarget(), {200, vcek_, {}});
  Answer(kChainTarget, {200, vcek_chain_pem_, {}});
  Delay(absl::Milliseconds(300));
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  KdsCollateral fetcher(Options(kds, absl::Seconds(2)), &cache);
  ChainedCollateral collateral({&cache, &fetcher});

  for (bool chain : {true, false}) {
    absl::Time start = absl::Now();
    std::vector<absl::Status> results(3);
    std::vector<std::thread> threads;
    for (int i = 0; i < 3; ++i) {
      threads.emplace_back([&, i] {
        absl::Time deadline = absl::Now() + absl::Seconds(5);
        results[i] =
            chain ? collateral.GetChain(Product::kGenoa, SignerType::kVcek, deadline).status()
                  : collateral.GetVcek(Request(), deadline).status();
      });
    }
    for (std::thread& t : threads) t.join();
    for (const absl::Status& s : results) EXPECT_TRUE(s.ok()) << s;
    EXPECT_LT(absl::Now() - start, absl::Seconds(1));
    if (chain) {
      EXPECT_EQ(kds.requests(), 1);
      // The next request's turn is 2 s after the first.
      absl::SleepFor(absl::Seconds(2));
    }
  }
  EXPECT_THAT(kds.targets(), ElementsAre(kChainTarget, VcekTarget()));
}

// A VCEK chain does not answer for a VLEK: KDS is asked for the VLEK chain,
// which is kept apart.
TEST_F(GeneratedKdsTest, VcekAndVlekChainsAreFetchedSeparately) {
  Answer(kVlekChainTarget, {200, vlek_chain_pem_, {}});
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  ASSERT_TRUE(cache.StoreChain(Product::kGenoa, SignerType::kVcek, vcek_chain_pem_).ok());
  KdsCollateral fetcher(Options(kds, absl::Milliseconds(20)), &cache);
  ChainedCollateral collateral({&cache, &fetcher});
  auto verifier = Verifier(&collateral, absl::Seconds(5));

  auto vlek = *chain_->IssueVlek({tcb_, chip_}, "cloud.example");
  testing::SnpReportFields f;
  f.reported_tcb = tcb_;
  f.chip_id = chip_;
  f.signing_key = 1;
  SnpEvidence evidence{*chain_->SignReport(f), {{"VLEK", vlek}}};
  auto claims = verifier->VerifyEvidence(evidence, {std::nullopt, std::nullopt, clock_.Now()});
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["signer"], "vlek");
  EXPECT_EQ(kds.targets().at(0), kVlekChainTarget);
  EXPECT_EQ(common::ReadFile(dir_ + "/Genoa/vlek_cert_chain.pem").value_or(""), vlek_chain_pem_);
  EXPECT_EQ(common::ReadFile(dir_ + "/Genoa/cert_chain.pem").value_or(""), vcek_chain_pem_);
}

// What KDS sends is checked before anything keeps it.
TEST_F(GeneratedKdsTest, BadAnswersAreNotKept) {
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  KdsCollateral fetcher(Options(kds, absl::ZeroDuration()), &cache);
  auto deadline = [] { return absl::Now() + absl::Seconds(5); };
  auto expect_unavailable = [](const absl::Status& s, const char* what) {
    EXPECT_EQ(s.code(), absl::StatusCode::kUnavailable) << s;
    EXPECT_THAT(s.message(), HasSubstr(what));
  };

  // A chain under an ARK that is not pinned.
  Answer(kChainTarget, {200, other_chain_->ChainPem(), {}});
  expect_unavailable(fetcher.GetChain(Product::kGenoa, SignerType::kVcek, deadline()).status(),
                     "no pinned, self-signed ARK-Genoa");
  // A VCEK chain without an ASK.
  Answer(kChainTarget, {200, vlek_chain_pem_, {}});
  expect_unavailable(fetcher.GetChain(Product::kGenoa, SignerType::kVcek, deadline()).status(),
                     "no ASK signed by ARK-Genoa");
  EXPECT_FALSE(Stored("Genoa/cert_chain.pem"));

  // VCEKs for another chip or TCB.
  Answer(VcekTarget(), {200, *chain_->IssueVcek({tcb_, std::string(64, '\x43')}), {}});
  expect_unavailable(fetcher.GetVcek(Request(), deadline()).status(), "another chip");
  TcbVersion other_tcb = tcb_;
  other_tcb.microcode = 26;
  Answer(VcekTarget(), {200, *chain_->IssueVcek({other_tcb, chip_}), {}});
  expect_unavailable(fetcher.GetVcek(Request(), deadline()).status(), "another chip, TCB");
  Answer(VcekTarget(), {200, "not a certificate", {}});
  expect_unavailable(fetcher.GetVcek(Request(), deadline()).status(), "no VCEK");

  // With the chain known: a VCEK under another ASK; a CRL another ARK signed.
  Answer(kChainTarget, {200, vcek_chain_pem_, {}});
  ASSERT_TRUE(fetcher.GetChain(Product::kGenoa, SignerType::kVcek, deadline()).ok());
  Answer(VcekTarget(), {200, *other_chain_->IssueVcek({tcb_, chip_}), {}});
  expect_unavailable(fetcher.GetVcek(Request(), deadline()).status(),
                     "not signed by the Genoa ASK");
  Answer(kCrlTarget, {200, *other_chain_->MakeCrl({2}), {}});
  expect_unavailable(fetcher.GetCrl(Product::kGenoa, clock_.Now(), deadline()).status(),
                     "CRL the ARK did not sign");
  EXPECT_FALSE(Stored(DirectoryCollateral::VcekRelativePath(Request())));
  EXPECT_FALSE(Stored("Genoa/crl.der"));

  // The right answers are kept.
  Answer(VcekTarget(), {200, vcek_, {}});
  ASSERT_TRUE(fetcher.GetVcek(Request(), deadline()).ok());
  EXPECT_EQ(
      common::ReadFile(dir_ + "/" + DirectoryCollateral::VcekRelativePath(Request())).value_or(""),
      vcek_);
  Answer(kCrlTarget, {200, *chain_->MakeCrl({77}), {}});
  ASSERT_TRUE(fetcher.GetCrl(Product::kGenoa, clock_.Now(), deadline()).ok());
  EXPECT_TRUE(Stored("Genoa/crl.der"));
}

// A VCEK fetched before its chain is handed out but kept for good only once
// the chain confirms it; one the chain does not confirm is fetched again.
TEST_F(GeneratedKdsTest, VcekIsKeptOnlyOnceItsChainConfirmsIt) {
  Answer(VcekTarget(), {200, *other_chain_->IssueVcek({tcb_, chip_}), {}});
  Answer(kChainTarget, {200, vcek_chain_pem_, {}});
  testing::FakeHttpServer kds([this](const std::string& t) { return Serve(t); });
  DirectoryCollateral cache(dir_);
  KdsCollateral fetcher(Options(kds, absl::ZeroDuration()), &cache);
  auto deadline = [] { return absl::Now() + absl::Seconds(5); };
  const std::string path = DirectoryCollateral::VcekRelativePath(Request());

  ASSERT_TRUE(fetcher.GetVcek(Request(), deadline()).ok());  // not yet checkable
  EXPECT_FALSE(Stored(path));
  ASSERT_TRUE(fetcher.GetChain(Product::kGenoa, SignerType::kVcek, deadline()).ok());
  EXPECT_FALSE(Stored(path));  // it did not chain: forgotten
  Answer(VcekTarget(), {200, vcek_, {}});
  auto der = fetcher.GetVcek(Request(), deadline());
  ASSERT_TRUE(der.ok()) << der.status();
  EXPECT_EQ(*der, vcek_);
  EXPECT_TRUE(Stored(path));
  EXPECT_THAT(kds.targets(), ElementsAre(VcekTarget(), kChainTarget, VcekTarget()));
}

}  // namespace
}  // namespace kbs::verifier::snp
