// Fills a KBS data directory's receipt log with N synthetic receipts, through
// the real ReceiptLog (group commit, the log's own key and checkpoint copy),
// so `kbsctl audit verify` and proofs can be measured on a large log:
//
//   kbs-receipt-seed --data-dir DIR --count 1000000
//
// Run it while no KBS uses DIR; the KBS then starts on DIR and verifies it.
#include <CLI/CLI.hpp>
#include <atomic>
#include <chrono>
#include <cstdio>
#include <filesystem>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/clock.h"
#include "common/files.h"
#include "kbs/receipts/receipt_log.h"

int main(int argc, char** argv) {
  CLI::App app{"kbs-receipt-seed: append synthetic receipts to a KBS data directory"};
  std::string data_dir, origin = "kbs/receipts";
  uint64_t count = 1000000;
  int writers = 256;
  app.add_option("--data-dir", data_dir, "The KBS data directory")->required();
  app.add_option("--count", count, "Receipts to append");
  app.add_option("--origin", origin, "Checkpoint origin (the KBS's [audit] origin)");
  app.add_option("--writers", writers, "Concurrent appenders");
  CLI11_PARSE(app, argc, argv);

  namespace receipts = kbs::receipts;
  if (auto s = kbs::common::EnsureDirectory(data_dir, 0700); !s.ok()) {
    std::fprintf(stderr, "%s\n", std::string(s.message()).c_str());
    return 1;
  }
  const std::filesystem::path dir(data_dir);
  auto key = receipts::LoadOrCreateLogKey((dir / "log-signing-key.pem").string());
  if (!key.ok()) {
    std::fprintf(stderr, "log key: %s\n", std::string(key.status().message()).c_str());
    return 1;
  }
  auto db = kbs::storage::SqliteDatabase::Open((dir / "kbs.db").string(), 4, "");
  if (!db.ok()) {
    std::fprintf(stderr, "database: %s\n", std::string(db.status().message()).c_str());
    return 1;
  }
  kbs::common::SystemClock clock;
  receipts::ReceiptLog::Options options;
  options.origin = origin;
  options.checkpoint_file = (dir / "log-checkpoint.note").string();
  auto log = receipts::ReceiptLog::Open(
      db->get(), *receipts::NoteSigner::Create(origin, *std::move(key)), &clock, options);
  if (!log.ok() || !(*log)->halted_reason().empty()) {
    std::fprintf(
        stderr, "receipt log: %s\n",
        log.ok() ? (*log)->halted_reason().c_str() : std::string(log.status().message()).c_str());
    return 1;
  }
  std::atomic<uint64_t> next{0};
  std::atomic<bool> failed{false};
  auto start = std::chrono::steady_clock::now();
  std::vector<std::thread> threads;
  for (int w = 0; w < writers; ++w) {
    threads.emplace_back([&] {
      for (uint64_t i = next++; i < count && !failed; i = next++) {
        receipts::Receipt r;
        r.decision = i % 10 == 0 ? "denied" : "granted";
        r.reason =
            i % 10 == 0 ? "rule llama-prod: snp.measurement not allowed" : "rule llama-prod allows";
        r.resource = absl::StrCat("models/m", i % 50, "/key");
        r.tee = "snp";
        r.evidence_sha256 = std::string(64, "0123456789abcdef"[i % 16]);
        r.measurements = {{"snp.measurement", std::string(96, "abcdef"[i % 6])}};
        r.images = {absl::StrCat("ghcr.io/acme/llm@sha256:", std::string(64, "12345"[i % 5]))};
        r.tcb_status = "UpToDate";
        r.chip_id = std::string(128, 'c');
        r.policy_version = absl::StrCat("sha256:", std::string(64, 'p'));
        r.rule = "llama-prod";
        r.labels = {{"route", "chat"}};
        r.client_address = absl::StrCat("10.0.", i % 250, ".7:41234");
        r.session_digest = std::string(64, 's');
        r.token_id = absl::StrCat("t", i);
        if (auto a = (*log)->Append(std::move(r)); !a.ok()) {
          std::fprintf(stderr, "append: %s\n", std::string(a.status().message()).c_str());
          failed = true;
        }
      }
    });
  }
  for (auto& t : threads) t.join();
  if (failed) return 1;
  double secs = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  std::printf("appended %llu receipts in %.1f s (%.0f/s); log size %llu\n",
              static_cast<unsigned long long>(count), secs, count / secs,
              static_cast<unsigned long long>((*log)->size()));
  return 0;
}
