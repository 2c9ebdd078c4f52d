// Release-policy benchmarks (issue targets: with 10,000 rules over 10,000
// resources, >= 1,000,000 decisions/s/core without conditions, >= 200,000
// with three conditions per rule; compiling a 10,000-rule policy < 1 s).
//
//   build/bench/kbs_policybench
//
// Half the rules name their resource exactly, half by a glob
// ("models/gNNNN/*"); each pins one SNP measurement and two image digests,
// from 100 runtime builds (many model keys, few pod builds). Claims are
// built once per pod, as the broker builds them once per request (so they
// are warm in cache); the benchmark times Evaluate() alone, over all
// 10,000 resources in turn.
#include <benchmark/benchmark.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/time.h"
#include "policy/policy_engine.h"

namespace kbs::policy {
namespace {

constexpr int kRules = 10000;
constexpr int kBuilds = 100;

std::string Measurement(int i) { return absl::StrFormat("%08x%088d", i, 0); }
std::string Digest(int i) { return absl::StrFormat("sha256:%064x", i); }
std::string Resource(int i) {
  return i % 2 == 0 ? absl::StrCat("models/m", i, "/key") : absl::StrCat("models/g", i, "/key");
}

std::string PolicyText(int rules, bool conditions) {
  std::string out = "version: 1\nrules:\n";
  for (int i = 0; i < rules; ++i) {
    std::string resource =
        i % 2 == 0 ? absl::StrCat("models/m", i, "/key") : absl::StrCat("models/g", i, "/*");
    absl::StrAppend(&out, "  - name: model-", i, "\n    resources: [\"", resource,
                    "\"]\n    tee: [snp]\n    measurements:\n      snp.measurement: [\"",
                    Measurement(i % kBuilds), "\"]\n    images: [\"", Digest(2 * (i % kBuilds)),
                    "\", \"", Digest(2 * (i % kBuilds) + 1), "\"]\n    labels: {route: r", i % 7,
                    "}\n");
    if (conditions) {
      absl::StrAppend(&out,
                      "    conditions: [\"!debug\", \"tcb_status in ['UpToDate', "
                      "'SWHardeningNeeded']\", \"snp.vmpl == 0\"]\n");
    }
  }
  return out;
}

common::Json PodJson(int i) {
  return {{"tee", "snp"},
          {"tcb_status", "UpToDate"},
          {"snp",
           {{"measurement", Measurement(i)},
            {"debug", false},
            {"vmpl", 0},
            {"policy", {{"debug", false}, {"smt", true}}},
            {"reported_tcb", {{"bootloader", 4}, {"tee", 0}, {"snp", 22}, {"microcode", 213}}},
            {"chip_id", std::string(128, 'c')}}},
          {"images",
           {absl::StrCat("ghcr.io/acme/llm@", Digest(2 * i)),
            absl::StrCat("ghcr.io/acme/sidecar@", Digest(2 * i + 1))}}};
}

ClaimSet Pod(int i) { return *ClaimsFromJson(PodJson(i)); }

// What the broker adds per request: the policy's claims from the token's.
void BM_BuildClaims(benchmark::State& state) {
  const common::Json json = PodJson(7);
  for (auto _ : state) {
    auto claims = ClaimsFromJson(json);
    benchmark::DoNotOptimize(claims);
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_BuildClaims);

struct Fixture {
  std::unique_ptr<PolicyEngine> engine;
  std::vector<ClaimSet> pods;
  std::vector<std::string> resources;
};

const Fixture& Get(bool conditions) {
  static Fixture* fixtures[2] = {nullptr, nullptr};
  Fixture*& f = fixtures[conditions ? 1 : 0];
  if (f == nullptr) {
    f = new Fixture;
    f->engine = *CompilePolicy(PolicyText(kRules, conditions), PolicyOptions{});
    for (int i = 0; i < kBuilds; ++i) f->pods.push_back(Pod(i));
    for (int i = 0; i < kRules; ++i) f->resources.push_back(Resource(i));
  }
  return *f;
}

void Decide(benchmark::State& state, bool conditions, bool allow) {
  const Fixture& f = Get(conditions);
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  size_t i = 0, allowed = 0;
  for (auto _ : state) {
    // A different resource each time, with the pod of its build; a deny
    // sends the next build's pod (wrong measurement).
    size_t pod = (allow ? i : i + 1) % kBuilds;
    PolicyInput in;
    in.resource_path = f.resources[i];
    in.claims = &f.pods[pod];
    in.now = now;
    absl::StatusOr<Decision> d = f.engine->Evaluate(in);
    allowed += d->allow ? 1 : 0;
    benchmark::DoNotOptimize(d);
    if (++i == f.resources.size()) i = 0;
  }
  if (allowed != static_cast<size_t>(allow ? state.iterations() : 0))
    state.SkipWithError("unexpected decision");
  state.SetItemsProcessed(state.iterations());
}

void BM_Decide_NoConditions_Allow(benchmark::State& s) { Decide(s, false, true); }
void BM_Decide_ThreeConditions_Allow(benchmark::State& s) { Decide(s, true, true); }
void BM_Decide_NoConditions_Deny(benchmark::State& s) { Decide(s, false, false); }
BENCHMARK(BM_Decide_NoConditions_Allow);
BENCHMARK(BM_Decide_ThreeConditions_Allow);
BENCHMARK(BM_Decide_NoConditions_Deny);

// 10,000 rules that all govern the same resources ("models/**"), one
// measurement each: the bucket's measurement index finds the one rule to
// check instead of scanning 10,000.
void BM_Decide_SharedResource_MeasurementIndex(benchmark::State& state) {
  static const Fixture* f = [] {
    auto* out = new Fixture;
    std::string text = "version: 1\nrules:\n";
    for (int i = 0; i < kRules; ++i) {
      absl::StrAppend(&text, "  - name: build-", i,
                      "\n    resources: [\"models/**\"]\n    tee: [snp]\n    measurements:\n"
                      "      snp.measurement: [\"",
                      Measurement(i), "\"]\n");
    }
    out->engine = *CompilePolicy(text, PolicyOptions{});
    for (int i = 0; i < kRules; ++i) out->pods.push_back(Pod(i));
    return out;
  }();
  const absl::Time now = absl::FromUnixSeconds(1800000000);
  size_t i = 0, allowed = 0;
  for (auto _ : state) {
    PolicyInput in;
    in.resource_path = "models/llama/key";
    in.claims = &f->pods[i];
    in.now = now;
    absl::StatusOr<Decision> d = f->engine->Evaluate(in);
    allowed += d->allow ? 1 : 0;
    benchmark::DoNotOptimize(d);
    if (++i == f->pods.size()) i = 0;
  }
  if (allowed != static_cast<size_t>(state.iterations())) state.SkipWithError("unexpected deny");
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_Decide_SharedResource_MeasurementIndex);

void BM_Compile(benchmark::State& state) {
  const bool conditions = state.range(0) != 0;
  std::string text = PolicyText(kRules, conditions);
  for (auto _ : state) {
    auto engine = CompilePolicy(text, PolicyOptions{});
    if (!engine.ok()) state.SkipWithError("compile failed");
    benchmark::DoNotOptimize(engine);
  }
  state.SetLabel(absl::StrCat(kRules, " rules, ", text.size() / 1024, " KiB",
                              conditions ? ", 3 conditions each" : ""));
}
BENCHMARK(BM_Compile)->Arg(0)->Arg(1)->Unit(benchmark::kMillisecond)->Iterations(3);

}  // namespace
}  // namespace kbs::policy

BENCHMARK_MAIN();
