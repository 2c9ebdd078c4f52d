// Micro-benchmarks of the request path's building blocks and of the broker
// in-process (no sockets): what one RCAR flow costs the server.
#include <benchmark/benchmark.h>

#include "common/crypto.h"
#include "common/jcs.h"
#include "common/jose/jwe.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "kbs/client/sample_attester.h"
#include "tests/testing/in_process_kbs.h"

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

}  // namespace

BENCHMARK_MAIN();
