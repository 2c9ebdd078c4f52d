// Micro-benchmarks of the request path's building blocks and of the broker
// in-process (no sockets): what one RCAR flow costs the server.
#include <benchmark/benchmark.h>

#include <filesystem>

#include "common/crypto.h"
#include "common/jcs.h"
#include "common/jose/jwe.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "kbs/client/sample_attester.h"
#include "tests/testing/in_process_kbs.h"
#include "tests/testing/snp_generator.h"
#include "verifier/snp/snp_verifier.h"

namespace {

using kbs::common::Json;

void BM_JcsRuntimeData(benchmark::State& state) {
  auto key = *kbs::client::TeeKeyPair::Generate(kbs::client::TeeKeyType::kEcP256);
  Json runtime = {{"additional-evidence", ""},
                  {"nonce", "CAIggTd4WnGmHopOetxt80Bgz7YXeSygqyAhvC0W3WY="},
                  {"tee-pubkey", key.public_key().ToJson()}};
  for (auto _ : state) {
    auto canonical = kbs::common::CanonicalizeJson(runtime);
    benchmark::DoNotOptimize(kbs::common::Digest(kbs::common::HashAlgorithm::kSha384, *canonical));
  }
}
BENCHMARK(BM_JcsRuntimeData);

void BM_JweEncrypt(benchmark::State& state) {
  auto type = static_cast<kbs::client::TeeKeyType>(state.range(0));
  auto key = *kbs::client::TeeKeyPair::Generate(type);
  std::string value(32, 'k');
  for (auto _ : state) {
    benchmark::DoNotOptimize(kbs::jose::JweEncrypt(key.public_key(), kbs::common::AsSpan(value)));
  }
}
BENCHMARK(BM_JweEncrypt)->Arg(0)->Arg(1)->Arg(2)->ArgNames({"key(0=p256,1=p521,2=rsa)"});

void BM_TokenSignVerify(benchmark::State& state) {
  auto key = *kbs::common::GenerateEcKey(kbs::common::EcCurve::kP256);
  kbs::jose::JwtVerifier verifier;
  (void)verifier.AddKey(*kbs::common::PublicKeyFromPem(*kbs::common::PublicKeyToPem(key.get())));
  auto signer = *kbs::jose::JwtSigner::Create(std::move(key));
  Json claims = {{"exp", 4000000000}, {"submods", {{"cpu0", {{"x", std::string(600, 'a')}}}}}};
  for (auto _ : state) {
    auto token = signer->Sign(claims);
    benchmark::DoNotOptimize(verifier.Verify(*token, absl::FromUnixSeconds(1800000000), {}));
  }
}
BENCHMARK(BM_TokenSignVerify);

// The whole server side of one RCAR flow (auth, attest, resource) through
// the broker, plus the client's evidence and key generation.
void BM_BrokerFullFlow(benchmark::State& state) {
  auto kbs = kbs::testing::InProcessKbs::Create({.allow_sample = true, .max_sessions = 10000000});
  (void)kbs->broker()->SetPolicy(kbs->AdminToken(), "allow-all");
  (void)kbs->broker()->PutResource(kbs->AdminToken(), "repo/key/tag", std::string(32, 'k'));
  for (auto _ : state) {
    auto auth = kbs->broker()->Auth({"0.4.0", "sample", Json("")});
    auto key = *kbs::client::TeeKeyPair::Generate(kbs::client::TeeKeyType::kEcP256);
    auto request = kbs::client::BuildSampleAttestation(auth->nonce, key, {});
    auto attest = kbs->broker()->Attest(auth->session_id, *request);
    auto jwe = kbs->broker()->GetResource({auth->session_id, ""}, "repo/key/tag");
    if (!attest.ok() || !jwe.ok()) state.SkipWithError("flow failed");
  }
}
BENCHMARK(BM_BrokerFullFlow)->UseRealTime();

// SEV-SNP report verification with the chain cached: the per-report cost
// (parse, cache lookup, ECDSA P-384 signature, TCB/chip/binding checks).
struct SnpFixture {
  SnpFixture() {
    chain = *kbs::testing::SnpTestChain::Create(kbs::verifier::snp::Product::kGenoa);
    dir = std::filesystem::temp_directory_path() / "kbs_microbench_snp";
    std::filesystem::remove_all(dir);
    collateral = std::make_unique<kbs::verifier::snp::DirectoryCollateral>(dir);
    (void)collateral->StoreChain(kbs::verifier::snp::Product::kGenoa,
                                 kbs::verifier::snp::SignerType::kVcek, chain->ChainPem());
    kbs::verifier::snp::SnpVerifierOptions options;
    (void)options.anchors.Add(kbs::verifier::snp::Product::kGenoa, chain->ArkFingerprintHex());
    options.collateral = collateral.get();
    verifier = kbs::verifier::snp::SnpVerifier::Create(std::move(options), &clock);
    tcb = kbs::testing::PlausibleTcb();
    vcek = *chain->IssueVcek({tcb, std::string(64, '\x42')});
    kbs::testing::SnpReportFields f;
    f.reported_tcb = tcb;
    f.chip_id = std::string(64, '\x42');
    f.report_data = report_data;
    report = *chain->SignReport(f);
    evidence_json = *kbs::testing::SnpTestChain::EvidenceJson(report, vcek);
  }
  kbs::common::FakeClock clock{absl::FromUnixSeconds(1780000000)};
  std::unique_ptr<kbs::testing::SnpTestChain> chain;
  std::filesystem::path dir;
  std::unique_ptr<kbs::verifier::snp::DirectoryCollateral> collateral;
  std::unique_ptr<kbs::verifier::snp::SnpVerifier> verifier;
  kbs::verifier::snp::TcbVersion tcb;
  std::string vcek, report;
  std::string report_data = std::string(48, '\x11');
  Json evidence_json;
};

void BM_SnpVerifyReportCached(benchmark::State& state) {
  static SnpFixture* fixture = new SnpFixture();
  kbs::verifier::snp::SnpEvidence evidence{fixture->report, {{"VCEK", fixture->vcek}}};
  kbs::verifier::snp::SnpExpectations expect{fixture->report_data, std::nullopt,
                                             fixture->clock.Now()};
  for (auto _ : state) {
    if (!fixture->verifier->VerifyEvidence(evidence, expect).ok()) state.SkipWithError("failed");
  }
  state.counters["reports/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SnpVerifyReportCached);

// The same from the agent's JSON evidence text, as /attest receives it.
void BM_SnpVerifyEvidenceJson(benchmark::State& state) {
  static SnpFixture* fixture = new SnpFixture();
  std::string text = fixture->evidence_json.dump();
  kbs::verifier::EvidenceBinding binding;
  binding.report_data = fixture->report_data;
  for (auto _ : state) {
    auto json = kbs::common::ParseJson(text);
    if (!fixture->verifier->Verify(*json, binding).ok()) state.SkipWithError("failed");
  }
  state.counters["reports/s"] =
      benchmark::Counter(static_cast<double>(state.iterations()), benchmark::Counter::kIsRate);
}
BENCHMARK(BM_SnpVerifyEvidenceJson);

}  // namespace

BENCHMARK_MAIN();
