// Receipt-log benchmarks (issue targets: >= 50,000 durable appends/s with
// many concurrent writers on this 2-core machine (SQLite WAL,
// synchronous=FULL, group commit); inclusion proof for a random index in a
// 10,000,000-entry log under 1 ms).
//
//   build/bench/kbs_receiptbench
#include <benchmark/benchmark.h>

#include <algorithm>
#include <atomic>
#include <chrono>
#include <filesystem>
#include <map>
#include <mutex>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/keys.h"
#include "kbs/receipts/receipt_log.h"

namespace kbs::receipts {
namespace {

struct Fixture {
  std::string dir;
  std::unique_ptr<storage::SqliteDatabase> db;
  common::SystemClock clock;
  std::unique_ptr<ReceiptLog> log;
};

std::mutex fixtures_mu;
std::map<std::pair<std::string, int64_t>, Fixture*>* fixtures =
    new std::map<std::pair<std::string, int64_t>, Fixture*>;

// One log per benchmark and group-commit delay (microseconds), shared by
// its runs (so a latency run does not inherit a throughput run's backlog).
Fixture* Make(const std::string& name, int64_t commit_delay_us) {
  std::lock_guard<std::mutex> lock(fixtures_mu);
  auto& f = (*fixtures)[{name, commit_delay_us}];
  if (f != nullptr) return f;
  f = new Fixture;
  f->dir = (std::filesystem::temp_directory_path() /
            absl::StrCat("receiptbench_", ::getpid(), "_", fixtures->size()))
               .string();
  std::filesystem::remove_all(f->dir);
  std::filesystem::create_directories(f->dir);
  f->db = *storage::SqliteDatabase::Open(f->dir + "/kbs.db", 4, "");
  auto signer = *NoteSigner::Create("bench/receipts", *common::GenerateEd25519Key());
  ReceiptLog::Options options;
  options.origin = "bench/receipts";
  options.commit_delay = absl::Microseconds(commit_delay_us);
  f->log = *ReceiptLog::Open(f->db.get(), std::move(signer), &f->clock, options);
  return f;
}

Receipt Sample(int i) {
  Receipt r;
  r.decision = "granted";
  r.reason = "rule llama-prod allows";
  r.resource = absl::StrCat("models/m", i % 100, "/key");
  r.tee = "snp";
  r.evidence_sha256 = std::string(64, 'e');
  r.measurements = {{"snp.measurement", std::string(96, 'a')}};
  r.images = {absl::StrCat("ghcr.io/acme/llm@sha256:", std::string(64, '1'))};
  r.chip_id = std::string(128, 'c');
  r.policy_version = absl::StrCat("sha256:", std::string(64, 'p'));
  r.rule = "llama-prod";
  r.labels = {{"route", "chat"}};
  r.client_address = "10.0.0.7:41234";
  r.session_digest = std::string(64, 's');
  r.token_id = std::string(32, 't');
  return r;
}

// Many concurrent writers (benchmark threads), each appending durably.
// Arg: the group-commit delay in microseconds (the KBS default is 1000).
void BM_DurableAppend(benchmark::State& state) {
  Fixture* f = Make("durable", state.range(0));
  int i = state.thread_index();
  for (auto _ : state) {
    auto r = f->log->Append(Sample(i++));
    if (!r.ok()) state.SkipWithError("append failed");
  }
  state.SetItemsProcessed(state.iterations());
}
BENCHMARK(BM_DurableAppend)
    ->Arg(1000)
    ->Arg(0)
    ->Threads(64)
    ->Threads(512)
    ->UseRealTime()
    ->MinTime(3);

// Append latency at a fixed offered rate (state.range(0) appends/s) for 5 s
// with the group-commit delay state.range(1) (microseconds),
// from 256 writers on an open-loop schedule: latency counts from when an
// append was due, so a stall is not hidden by the writers slowing down.
void BM_AppendLatencyAtRate(benchmark::State& state) {
  Fixture* f = Make("latency", state.range(1));
  const double rate = static_cast<double>(state.range(0));
  constexpr int kWriters = 256;
  constexpr auto kRun = std::chrono::seconds(5);
  for (auto _ : state) {
    std::vector<std::vector<double>> lat(kWriters);
    std::atomic<int> failures{0};
    auto start = std::chrono::steady_clock::now() + std::chrono::milliseconds(50);
    const auto gap = std::chrono::duration<double>(kWriters / rate);
    std::vector<std::thread> writers;
    for (int w = 0; w < kWriters; ++w) {
      writers.emplace_back([&, w] {
        for (int k = 0;; ++k) {
          auto due = start + std::chrono::duration_cast<std::chrono::steady_clock::duration>(
                                 gap * (k + static_cast<double>(w) / kWriters));
          if (due - start >= kRun) return;
          std::this_thread::sleep_until(due);
          if (!f->log->Append(Sample(w * 100000 + k)).ok()) ++failures;
          lat[w].push_back(
              std::chrono::duration<double, std::milli>(std::chrono::steady_clock::now() - due)
                  .count());
        }
      });
    }
    for (auto& t : writers) t.join();
    std::vector<double> all;
    for (auto& l : lat) all.insert(all.end(), l.begin(), l.end());
    std::sort(all.begin(), all.end());
    if (all.empty() || failures > 0) {
      state.SkipWithError("appends failed");
      return;
    }
    state.counters["appends_per_s"] = all.size() / std::chrono::duration<double>(kRun).count();
    state.counters["p50_ms"] = all[all.size() / 2];
    state.counters["p99_ms"] = all[all.size() * 99 / 100];
    state.counters["max_ms"] = all.back();
  }
}
BENCHMARK(BM_AppendLatencyAtRate)
    ->Args({12500, 1000})
    ->Args({25000, 1000})
    ->Args({12500, 0})
    ->Args({25000, 0})
    ->Iterations(1)
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

// Inclusion proofs from stored subtree hashes in a 10,000,000-leaf tree.
class CountingTree final : public NodeReader {
 public:
  MemoryTree tree;
  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) override {
    return tree.ReadNodes(ids);
  }
};

void BM_InclusionProof10M(benchmark::State& state) {
  static CountingTree* t = [] {
    auto* out = new CountingTree;
    for (uint64_t i = 0; i < 10000000; ++i) out->tree.Append(absl::StrCat("receipt ", i));
    return out;
  }();
  std::mt19937_64 rng(42);
  for (auto _ : state) {
    auto proof = InclusionProof(*t, rng() % 10000000, 10000000);
    benchmark::DoNotOptimize(proof);
  }
}
BENCHMARK(BM_InclusionProof10M)->Unit(benchmark::kMicrosecond);

}  // namespace
}  // namespace kbs::receipts

int main(int argc, char** argv) {
  benchmark::Initialize(&argc, argv);
  if (benchmark::ReportUnrecognizedArguments(argc, argv)) return 1;
  benchmark::RunSpecifiedBenchmarks();
  benchmark::Shutdown();
  // The logs are scratch: a run writes hundreds of MB.
  std::lock_guard<std::mutex> lock(kbs::receipts::fixtures_mu);
  for (auto& [key, f] : *kbs::receipts::fixtures) {
    f->log.reset();
    f->db.reset();
    std::filesystem::remove_all(f->dir);
  }
  return 0;
}
