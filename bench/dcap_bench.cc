// DCAP quote verification with the PCK chain and collateral cached (the
// steady state of a KBS): what remains per quote is parsing, the QE report
// signature and the quote signature (two ECDSA P-256 verifies), the binding
// hash and the TCB match. Target: 6,000 quotes/s per core.
//
//   build/bench/kbs_dcapbench --benchmark_min_time=2
#include <benchmark/benchmark.h>

#include "common/bytes.h"
#include "common/json.h"
#include "tests/testing/dcap_generator.h"
#include "verifier/dcap/collateral.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/dcap/signature.h"
#include "verifier/tdx/tdx_verifier.h"

namespace {

namespace dcap = kbs::verifier::dcap;
using kbs::testing::DcapTestPki;

struct Fixture {
  std::unique_ptr<DcapTestPki> pki;
  std::unique_ptr<dcap::FixedCollateral> collateral;
  dcap::QuoteVerifierOptions options;
  std::string quote;
  absl::Time at = absl::Now();
};

Fixture Make(kbs::testing::QuoteKind kind) {
  Fixture f;
  f.pki = *DcapTestPki::Create();
  (void)f.pki->IssuePck(kbs::testing::PckOptions{});
  const absl::Time issued = f.at - absl::Hours(1), next = f.at + absl::Hours(24);
  auto bundle = f.pki->CollateralBundle(DcapTestPki::DefaultTdxTcbInfo(issued, next),
                                        DcapTestPki::DefaultQeIdentity(true, issued, next), true,
                                        *f.pki->MakePckCrl(true, {}, issued, next),
                                        *f.pki->MakeRootCrl({}, issued, next));
  f.collateral = std::make_unique<dcap::FixedCollateral>(
      *dcap::ParseCollateralBundle(kbs::common::DumpJson(*bundle)));
  (void)f.options.anchors.Add(f.pki->RootFingerprintHex());
  f.options.collateral = f.collateral.get();
  f.quote = *f.pki->MakeQuote(kind, {}, {}, kbs::testing::QeFields());
  return f;
}

void BM_VerifyTdxQuote(benchmark::State& state) {
  Fixture f = Make(kbs::testing::QuoteKind::kTdxV4);
  dcap::QuoteVerifier verifier(f.options);
  for (auto _ : state) {
    auto q = verifier.Verify(kbs::common::AsSpan(f.quote), dcap::DcapTee::kTdx, f.at);
    if (!q.ok()) state.SkipWithError(std::string(q.status().message()).c_str());
    benchmark::DoNotOptimize(q);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyTdxQuote)->UseRealTime();

// The whole TDX verifier: evidence JSON (base64), quote, bindings, claims.
void BM_VerifyTdxEvidence(benchmark::State& state) {
  Fixture f = Make(kbs::testing::QuoteKind::kTdxV4);
  kbs::common::SystemClock clock;
  kbs::verifier::tdx::TdxVerifier verifier(f.options, &clock);
  kbs::verifier::EvidenceBinding binding;
  binding.report_data = std::string(64, '\0');
  kbs::common::Json evidence = DcapTestPki::TdxEvidenceJson(f.quote);
  for (auto _ : state) {
    auto claims = verifier.Verify(evidence, binding);
    if (!claims.ok()) state.SkipWithError(std::string(claims.status().message()).c_str());
    benchmark::DoNotOptimize(claims);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_VerifyTdxEvidence)->UseRealTime();

// Two P-256 verifies alone: the floor under BM_VerifyTdxQuote.
void BM_TwoP256Verifies(benchmark::State& state) {
  Fixture f = Make(kbs::testing::QuoteKind::kTdxV4);
  auto parsed = dcap::ParseQuote(kbs::common::AsSpan(f.quote));
  auto key = dcap::P256PublicKey(parsed->attestation_key);
  for (auto _ : state) {
    bool a = dcap::VerifyP256Signature(key->get(), parsed->signed_bytes, parsed->signature);
    bool b = dcap::VerifyP256Signature(key->get(), parsed->signed_bytes, parsed->signature);
    benchmark::DoNotOptimize(a && b);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_TwoP256Verifies)->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
