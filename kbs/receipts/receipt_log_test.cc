#include "kbs/receipts/receipt_log.h"

#include <chrono>
#include <filesystem>
#include <random>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/jcs.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::receipts {
namespace {

using ::testing::HasSubstr;

class ReceiptLogTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("receipts_", ::getpid(), "_",
                        ::testing::UnitTest::GetInstance()->random_seed());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    key_pem_ = *common::PrivateKeyToPem(common::GenerateEd25519Key()->get());
    Open();
  }
  void TearDown() override {
    log_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
  }
  void Open(int pool = 3) {
    log_.reset();
    db_.reset();
    db_ = *storage::SqliteDatabase::Open((dir_ / "kbs.db").string(), pool, "");
    auto signer = NoteSigner::Create("kbs.test/receipts", *common::PrivateKeyFromPem(key_pem_));
    ASSERT_TRUE(signer.ok()) << signer.status();
    ReceiptLog::Options options;
    options.origin = "kbs.test/receipts";
    options.checkpoint_file = (dir_ / "log-checkpoint.note").string();
    options.index_batch = index_batch_;
    options.evidence_retention = evidence_retention_;
    auto log = ReceiptLog::Open(db_.get(), *std::move(signer), &clock_, options);
    ASSERT_TRUE(log.ok()) << log.status();
    log_ = *std::move(log);
  }
  Receipt Make(int i) {
    Receipt r;
    r.decision = i % 3 == 0 ? "denied" : "granted";
    r.reason = "test";
    r.resource = absl::StrCat("models/m", i % 5, "/key");
    r.tee = "snp";
    r.measurements = {{"snp.measurement", absl::StrCat("meas", i % 2)}};
    r.images = {absl::StrCat("ghcr.io/a/b@sha256:", std::string(64, '0' + i % 3))};
    r.policy_version = "sha256:p";
    r.rule = "rule";
    return r;
  }
  void Exec(absl::string_view sql) {
    ASSERT_TRUE(db_->Run([&](storage::SqliteConnection& c) { return c.Exec(sql); }).ok());
  }
  void QueriesFilterAndPage();
  // Keeps `evidence` under `token_id` as the broker does; returns its digest.
  absl::StatusOr<std::string> Keep(absl::string_view token_id, absl::string_view evidence) {
    std::string digest = common::HexEncode(common::Sha256(evidence));
    KBS_RETURN_IF_ERROR(log_->StoreEvidence(token_id, evidence, digest));
    return digest;
  }
  NoteVerifier Verifier() { return *NoteVerifier::FromVerifierKey(log_->verifier_key()); }
  // How many schema objects carry one of `names` (an SQL list of strings);
  // -1 when the query fails.
  int64_t SchemaObjects(absl::string_view names) {
    return Count(absl::StrCat("SELECT count(*) FROM sqlite_master WHERE name IN (", names, ")"));
  }

  // A fresh, empty log whose query keys are written every `index_batch`
  // receipts.
  void Reset(size_t index_batch) {
    log_.reset();
    db_.reset();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    index_batch_ = index_batch;
    Open();
  }
  // The integer the first row of `sql` starts with; -1 when the query fails.
  int64_t Count(absl::string_view sql) {
    int64_t n = -1;
    absl::Status s = db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q, c.Prepare(sql));
      auto row = q->Step();
      if (row.ok() && *row) n = q->ColumnInt64(0);
      q->Reset();
      return row.status();
    });
    return s.ok() ? n : -1;
  }

  // Waits (up to 10 s) until the posting lists cover `n` receipts: the
  // writer writes them after waking the appenders. Returns what they cover.
  int64_t WaitIndexed(int64_t n) {
    int64_t indexed = -1;
    for (int i = 0; i < 1000; ++i) {
      indexed = Count("SELECT indexed FROM receipt_index");
      if (indexed >= n) break;
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    return indexed;
  }
  // The receipt indexes a query returns, paging `page` at a time.
  std::vector<uint64_t> Walk(ReceiptQuery q, size_t page) {
    std::vector<uint64_t> out;
    q.limit = page;
    while (true) {
      auto rows = log_->Query(q);
      EXPECT_TRUE(rows.ok()) << rows.status();
      if (!rows.ok() || rows->empty()) return out;
      for (const StoredReceipt& r : *rows) out.push_back(r.index);
      q.after_index = rows->back().index + 1;
    }
  }

  std::filesystem::path dir_;
  size_t index_batch_ = 4096;
  absl::Duration evidence_retention_ = absl::ZeroDuration();
  std::string key_pem_;
  common::FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  std::unique_ptr<storage::SqliteDatabase> db_;
  std::unique_ptr<ReceiptLog> log_;
};

TEST_F(ReceiptLogTest, ConcurrentAppendsAreDurableProvableAndCheckpointed) {
  constexpr int kThreads = 8, kEach = 50;
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kEach; ++i) {
        auto r = log_->Append(Make(t * kEach + i));
        EXPECT_TRUE(r.ok()) << r.status();
      }
    });
  }
  for (auto& t : threads) t.join();
  ASSERT_EQ(log_->size(), uint64_t{kThreads * kEach});
  auto note = log_->LatestCheckpoint(true);
  ASSERT_TRUE(note.ok()) << note.status();
  auto body = Verifier().Open(*note);
  ASSERT_TRUE(body.ok()) << body.status();
  Checkpoint cp = *ParseCheckpointBody(*body);
  EXPECT_EQ(cp.size, uint64_t{kThreads * kEach});
  // The stored leaves rebuild the signed root, and every index is provable.
  auto all = log_->Range(0, cp.size);
  ASSERT_TRUE(all.ok());
  MemoryTree tree;
  for (size_t i = 0; i < all->size(); ++i) {
    EXPECT_EQ((*all)[i].index, i);
    auto parsed = ParseReceiptLeaf((*all)[i].leaf);
    ASSERT_TRUE(parsed.ok()) << parsed.status();
    EXPECT_EQ(parsed->index, i);
    tree.Append((*all)[i].leaf);
  }
  EXPECT_EQ(tree.Root(), cp.root);
  for (uint64_t i : {0, 1, 7, 199, 399}) {
    auto proof = log_->Prove(i);
    ASSERT_TRUE(proof.ok()) << proof.status();
    auto verified = VerifyTlogProof(*proof, (*all)[i].leaf, Verifier(), "kbs.test/receipts");
    EXPECT_TRUE(verified.ok()) << i << ": " << verified.status();
  }
  // Consistency between two signed sizes.
  ASSERT_TRUE(log_->Append(Make(1000)).ok());
  auto later = *ParseCheckpointBody(*Verifier().Open(*log_->LatestCheckpoint(true)));
  auto proof = log_->ConsistencyProof(cp.size, later.size);
  ASSERT_TRUE(proof.ok());
  EXPECT_TRUE(VerifyConsistency(cp.size, later.size, *proof, cp.root, later.root).ok());
}

TEST_F(ReceiptLogTest, QueriesFilterAndPage) {
  // Through the query keys, through scanning receipts not yet indexed, and
  // across the boundary.
  for (size_t index_batch : {1, 7, 4096}) {
    SCOPED_TRACE(absl::StrCat("index_batch ", index_batch));
    Reset(index_batch);
    QueriesFilterAndPage();
    if (HasFatalFailure()) return;
  }
}

void ReceiptLogTest::QueriesFilterAndPage() {
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  ReceiptQuery q;
  q.resource = "models/m1/key";
  auto rows = log_->Query(q);
  ASSERT_TRUE(rows.ok()) << rows.status();
  EXPECT_EQ(rows->size(), 6u);
  q = {};
  q.image = absl::StrCat("sha256:", std::string(64, '1'));
  q.decision = "granted";
  rows = log_->Query(q);
  ASSERT_TRUE(rows.ok());
  for (const StoredReceipt& r : *rows) {
    EXPECT_THAT(r.leaf, HasSubstr(std::string(64, '1')));
    EXPECT_THAT(r.leaf, HasSubstr("\"granted\""));
  }
  EXPECT_EQ(rows->size(), 10u);
  q = {};
  q.measurement = "meas1";
  q.limit = 4;
  q.after_index = 10;
  rows = log_->Query(q);
  ASSERT_EQ(rows->size(), 4u);
  EXPECT_EQ(rows->front().index, 11u);
  q = {};
  q.from = clock_.Now() + absl::Hours(1);
  EXPECT_TRUE(log_->Query(q)->empty());
  // Time ranges: [from, to), alone or with other filters.
  const absl::Time t0 = clock_.Now();
  clock_.Advance(absl::Hours(1));
  for (int i = 30; i < 40; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  q = {};
  q.from = t0 + absl::Minutes(30);
  EXPECT_EQ(log_->Query(q)->size(), 10u);
  EXPECT_EQ(log_->Query(q)->front().index, 30u);
  q = {};
  q.to = t0 + absl::Minutes(30);
  EXPECT_EQ(log_->Query(q)->size(), 30u);
  q.to = t0;
  EXPECT_TRUE(log_->Query(q)->empty());
  q = {};
  q.from = t0 + absl::Hours(1);
  q.to = t0 + absl::Hours(2);
  q.resource = "models/m1/key";
  q.measurement = "meas1";
  rows = log_->Query(q);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 1u);  // 31 (m1, meas1); 36 is m1 with meas0
  EXPECT_EQ(rows->front().index, 31u);
  // Paged walks, across the indexed boundary when there is one.
  q = {};
  q.measurement = "meas1";
  std::vector<uint64_t> odd;
  for (uint64_t i = 1; i < 40; i += 2) odd.push_back(i);
  EXPECT_EQ(Walk(q, 3), odd);
  q = {};
  q.image = absl::StrCat("sha256:", std::string(64, '2'));
  q.decision = "granted";
  EXPECT_EQ(Walk(q, 2), (std::vector<uint64_t>{2, 5, 8, 11, 14, 17, 20, 23, 26, 29, 32, 35, 38}));
  q = {};
  q.resource = "models/m4/key";
  q.after_index = 5;
  EXPECT_EQ(Walk(q, 1), (std::vector<uint64_t>{9, 14, 19, 24, 29, 34, 39}));
}

TEST_F(ReceiptLogTest, TheFirstReleasesQueryIndexIsRebuilt) {
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  log_.reset();
  // The first release's layout: text terms and a resource index.
  Exec(
      "DROP TABLE receipt_index; DELETE FROM receipt_postings; CREATE TABLE receipt_terms (term "
      "TEXT NOT NULL, idx INTEGER NOT "
      "NULL, PRIMARY KEY (term, idx)) STRICT, WITHOUT ROWID; CREATE INDEX receipts_resource ON "
      "receipts(resource, idx)");
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  ReceiptQuery q;
  q.resource = "models/m1/key";
  EXPECT_EQ(log_->Query(q)->size(), 6u);
  q = {};
  q.measurement = "meas1";
  EXPECT_EQ(log_->Query(q)->size(), 15u);
  EXPECT_EQ(SchemaObjects("'receipt_terms', 'receipts_resource'"), 0);
}

TEST_F(ReceiptLogTest, PostingListsAreWrittenInBulkAndCaughtUpAfterACrash) {
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  // Fewer than index_batch receipts within index_interval (the fake clock
  // stands still): no posting lists yet, and queries find everything.
  EXPECT_EQ(Count("SELECT count(*) FROM receipt_postings"), 0);
  EXPECT_EQ(Count("SELECT indexed FROM receipt_index"), 0);
  ReceiptQuery q;
  q.resource = "models/m1/key";
  q.measurement = "meas1";
  EXPECT_EQ(Walk(q, 2), (std::vector<uint64_t>{1, 11, 21}));
  // Once index_interval passes, the writer writes one row per key (5
  // resources, 3 images, their 3 digests, 2 measurements) for everything
  // committed by then.
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(log_->Append(Make(30)).ok());
  const int64_t indexed = WaitIndexed(30);
  EXPECT_GE(indexed, 30);
  EXPECT_EQ(Count("SELECT count(*) FROM receipt_postings"), 13);
  EXPECT_EQ(Count("SELECT sum(length(idxs)) / 8 FROM receipt_postings"), indexed * 4);
  EXPECT_EQ(Walk(q, 2), (std::vector<uint64_t>{1, 11, 21}));
  // A clean stop indexes everything.
  for (int i = 31; i < 45; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  log_.reset();
  EXPECT_EQ(Count("SELECT indexed FROM receipt_index"), 45);
  EXPECT_EQ(Count("SELECT sum(length(idxs)) / 8 FROM receipt_postings"), 45 * 4);
  // A crash loses nothing: the keys of receipts not yet indexed are read
  // back from the receipts at start and written later.
  Exec("UPDATE receipt_index SET indexed = 0; DELETE FROM receipt_postings");
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  EXPECT_EQ(Walk(q, 2), (std::vector<uint64_t>{1, 11, 21, 31, 41}));
  clock_.Advance(absl::Seconds(1));
  ASSERT_TRUE(log_->Append(Make(45)).ok());
  const int64_t caught_up = WaitIndexed(45);  // 46 unless the idle writer came first
  EXPECT_GE(caught_up, 45);
  EXPECT_EQ(Count("SELECT sum(length(idxs)) / 8 FROM receipt_postings"), caught_up * 4);
  EXPECT_EQ(Walk(q, 2), (std::vector<uint64_t>{1, 11, 21, 31, 41}));
  // Posting lists reaching past receipt_index (an edit) are rebuilt at
  // start, never duplicated.
  log_.reset();
  Exec("UPDATE receipt_index SET indexed = 10");
  Open();
  EXPECT_EQ(Count("SELECT indexed FROM receipt_index"), 46);
  EXPECT_EQ(Count("SELECT sum(length(idxs)) / 8 FROM receipt_postings"), 46 * 4);
  EXPECT_EQ(Walk(q, 1), (std::vector<uint64_t>{1, 11, 21, 31, 41}));
  // A malformed posting list is an error, not a wrong answer.
  log_.reset();
  Exec("UPDATE receipt_postings SET idxs = x'0102'");
  Open();
  EXPECT_EQ(log_->Query(q).status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(ReceiptLogTest, AnOlderReleaseRunningInBetweenIsCaughtUp) {
  for (int i = 0; i < 40; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  log_.reset();
  ASSERT_EQ(Count("SELECT indexed FROM receipt_index"), 40);
  for (int i = 40; i < 45; ++i) {
    Open();
    ASSERT_TRUE(log_->Append(Make(i)).ok());
    log_.reset();
  }
  // As if the release before posting lists had appended 40..44: it knows
  // neither receipt_index nor receipt_postings, and indexed those receipts in
  // receipt_keys only.
  Exec(
      "UPDATE receipt_index SET indexed = 40; DELETE FROM receipt_postings WHERE last >= 40; "
      "CREATE TABLE receipt_keys (key INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, "
      "idx)) STRICT, WITHOUT ROWID; INSERT INTO receipt_keys VALUES (1, 40)");
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  EXPECT_EQ(SchemaObjects("'receipt_keys'"), 0);
  EXPECT_EQ(Count("SELECT indexed FROM receipt_index"), 45);
  EXPECT_EQ(Count("SELECT sum(length(idxs)) / 8 FROM receipt_postings"), 45 * 4);
  ReceiptQuery q;
  q.resource = "models/m1/key";
  EXPECT_EQ(Walk(q, 4), (std::vector<uint64_t>{1, 6, 11, 16, 21, 26, 31, 36, 41}));
}

TEST_F(ReceiptLogTest, TheSecondReleasesQueryIndexIsMigrated) {
  for (int i = 0; i < 30; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  log_.reset();
  // That release kept a row per key and receipt, all written with the
  // receipt.
  Exec(
      "DROP TABLE receipt_index; DELETE FROM receipt_postings; CREATE TABLE receipt_keys (key "
      "INTEGER NOT NULL, idx INTEGER NOT NULL, PRIMARY KEY (key, idx)) STRICT, WITHOUT ROWID");
  auto key = [](absl::string_view term) {
    std::string d = common::Sha256(term);
    uint64_t k = 0;
    for (int i = 0; i < 8; ++i) k = (k << 8) | static_cast<unsigned char>(d[i]);
    return static_cast<int64_t>(k);
  };
  for (int i = 0; i < 30; ++i) {
    Receipt r = Make(i);
    for (const std::string& term :
         {absl::StrCat("resource:", r.resource), absl::StrCat("image:", r.images[0]),
          absl::StrCat("image:", r.images[0].substr(r.images[0].find('@') + 1)),
          absl::StrCat("measurement:", r.measurements[0].second)}) {
      Exec(absl::StrCat("INSERT INTO receipt_keys VALUES(", key(term), ", ", i, ")"));
    }
  }
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  EXPECT_EQ(SchemaObjects("'receipt_keys'"), 0);
  EXPECT_EQ(Count("SELECT indexed FROM receipt_index"), 30);
  EXPECT_EQ(Count("SELECT count(*) FROM receipt_postings"), 13);
  ReceiptQuery q;
  q.resource = "models/m1/key";
  q.measurement = "meas1";
  EXPECT_EQ(log_->Query(q)->size(), 3u);
  q = {};
  q.image = absl::StrCat("sha256:", std::string(64, '2'));
  EXPECT_EQ(log_->Query(q)->size(), 10u);
}

TEST_F(ReceiptLogTest, TheEarlierTreeLayoutIsMigrated) {
  for (int i = 0; i < 37; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  auto before = log_->InclusionProof(5, 37);
  ASSERT_TRUE(before.ok()) << before.status();
  log_.reset();
  // The earlier layout: the tree keyed by (level, idx) and a time index.
  Exec(
      "CREATE TABLE merkle_nodes (level INTEGER NOT NULL, idx INTEGER NOT NULL, hash BLOB NOT "
      "NULL, PRIMARY KEY (level, idx)) STRICT, WITHOUT ROWID; "
      "INSERT INTO merkle_nodes SELECT level, ((last + 1) >> level) - 1, hash FROM tree_nodes; "
      "DROP TABLE tree_nodes; CREATE INDEX receipts_time ON receipts(time);");
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  auto after = log_->InclusionProof(5, 37);
  ASSERT_TRUE(after.ok()) << after.status();
  EXPECT_EQ(*after, *before);
  EXPECT_TRUE(log_->ConsistencyProof(10, 37).ok());
  ASSERT_TRUE(log_->Append(Make(37)).ok());
  EXPECT_TRUE(log_->InclusionProof(37, 38).ok());
  EXPECT_EQ(SchemaObjects("'merkle_nodes', 'receipts_time'"), 0);
}

// A database that turns read-only or full fails appends closed (Unavailable,
// saying why); nothing is half-written, and appends resume once it is
// writable again. (One pooled connection, so the pragma reaches the writer.)
TEST_F(ReceiptLogTest, ReadOnlyOrFullDatabaseFailsClosedAndRecovers) {
  Open(/*pool=*/1);
  for (int i = 0; i < 3; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  struct Fault {
    std::string name, on, off, why;
  };
  const std::vector<Fault> faults = {
      {"read-only", "PRAGMA query_only = 1", "PRAGMA query_only = 0", "readonly"},
      {"full", "PRAGMA max_page_count = 1", "PRAGMA max_page_count = 1073741823", "full"},
  };
  for (const Fault& f : faults) {
    SCOPED_TRACE(f.name);
    const uint64_t before = log_->size();
    if (f.name == "full") {
      // Only the pages the database already has.
      auto pages = db_->Run([](storage::SqliteConnection& c) -> absl::Status {
        KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q, c.Prepare("PRAGMA page_count"));
        auto row = q->Step();
        int64_t n = row.ok() && *row ? q->ColumnInt64(0) : 0;
        q->Reset();
        return c.Exec(absl::StrCat("PRAGMA max_page_count = ", n));
      });
      ASSERT_TRUE(pages.ok()) << pages;
    } else {
      Exec(f.on);
    }
    // Enough receipts to need a new page.
    for (int i = 0; i < 40; ++i) {
      auto r = log_->Append(Make(100 + i));
      if (!r.ok()) {
        EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
        EXPECT_THAT(r.status().message(), HasSubstr("the receipt log cannot be written"));
        EXPECT_THAT(r.status().message(), HasSubstr(f.why));
        break;
      }
      ASSERT_NE(f.name, "read-only") << "a read-only database took a receipt";
      ASSERT_LT(i, 39) << "the full database never filled";
    }
    const uint64_t stuck = log_->size();
    EXPECT_EQ(log_->Append(Make(999)).status().code(), absl::StatusCode::kUnavailable);
    EXPECT_EQ(log_->size(), stuck);
    EXPECT_EQ(log_->halted_reason(), "");
    Exec(f.off);
    auto resumed = log_->Append(Make(1000));
    ASSERT_TRUE(resumed.ok()) << resumed.status();
    EXPECT_EQ(resumed->index, stuck);
    EXPECT_GE(stuck, before);
  }
  // Everything stored is provable under a fresh checkpoint.
  auto note = log_->LatestCheckpoint(true);
  ASSERT_TRUE(note.ok()) << note.status();
  auto proof = log_->Prove(log_->size() - 1);
  ASSERT_TRUE(proof.ok()) << proof.status();
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
}

TEST_F(ReceiptLogTest, EvidenceRetentionDeletesOnlyWhatExpired) {
  evidence_retention_ = absl::Hours(24);
  Reset(4096);
  auto a = Keep("token-a", "{\"a\":1}");
  auto b = Keep("token-b", "{\"b\":2}");
  ASSERT_TRUE(a.ok()) << a.status();
  ASSERT_TRUE(b.ok()) << b.status();
  ASSERT_TRUE(log_->Append(Make(0)).ok());  // evidence goes with the next batch
  // A record an earlier release kept (by digest) expires the same way.
  Exec(
      "INSERT INTO evidence(sha256, size, data, stored_at) SELECT 'legacy', size, data, stored_at "
      "FROM token_evidence WHERE token_id = 'token-a'");
  clock_.Advance(absl::Hours(23));
  auto c = Keep("token-c", "{\"c\":3}");
  ASSERT_TRUE(c.ok());
  ASSERT_TRUE(log_->Append(Make(1)).ok());  // a retention pass: nothing expired yet
  EXPECT_TRUE(log_->Evidence("token-a", *a).ok());
  clock_.Advance(absl::Hours(2));
  // The writer's next pass (after this append's wakeup) deletes a and b.
  ASSERT_TRUE(log_->Append(Make(2)).ok());
  for (int i = 0; i < 1000 && (log_->Evidence("token-b", *b).ok() ||
                               Count("SELECT count(*) FROM evidence") != 0);
       ++i) {
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
  EXPECT_EQ(Count("SELECT count(*) FROM evidence"), 0);
  EXPECT_EQ(log_->Evidence("token-a", *a).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(log_->Evidence("token-b", *b).status().code(), absl::StatusCode::kNotFound);
  auto kept = log_->Evidence("token-c", *c);
  ASSERT_TRUE(kept.ok()) << kept.status();
  EXPECT_EQ(*kept, "{\"c\":3}");
}

TEST_F(ReceiptLogTest, EvidenceIsKeptCompressed) {
  // Sizes around the stored-block threshold (1 KiB) and the window sizes.
  std::vector<std::string> evidence;
  // Tiny inputs too, where zlib's deflateBound for a small window is short.
  for (size_t n = 1; n < 48; ++n)
    evidence.push_back(std::string(n, static_cast<char>('A' + n % 26)));
  for (size_t n : {0, 1, 300, 511, 512, 513, 1023, 1024, 5000, 40000, 200000}) {
    std::string e = absl::StrCat("{\"report\":\"", std::string(n, 'a'), "\"}");
    for (size_t i = 0; i < n; i += 7) e[10 + i] = static_cast<char>('a' + i % 26);
    evidence.push_back(std::move(e));
  }
  std::vector<std::string> digests;
  for (size_t i = 0; i < evidence.size(); ++i) {
    auto digest = Keep(absl::StrCat("token-", i), evidence[i]);
    ASSERT_TRUE(digest.ok()) << digest.status();
    digests.push_back(*digest);
  }
  EXPECT_EQ(Keep("", "{}").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(log_->StoreEvidence("token-x", "{}", "abc").code(), absl::StatusCode::kInvalidArgument);
  // A digest that is not the document's is caught when read.
  ASSERT_TRUE(log_->StoreEvidence("token-y", "{\"y\":1}", std::string(64, 'e')).ok());
  ASSERT_TRUE(log_->Append(Make(0)).ok());  // evidence goes with the next batch
  for (size_t i = 0; i < evidence.size(); ++i) {
    auto back = log_->Evidence(absl::StrCat("token-", i), digests[i]);
    ASSERT_TRUE(back.ok()) << back.status();
    EXPECT_EQ(*back, evidence[i]);
  }
  // Large evidence is compressed.
  int64_t stored = -1;
  ASSERT_TRUE(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
                   auto q = c.Prepare("SELECT length(data) FROM token_evidence WHERE sha256 = ?1");
                   if (!q.ok()) return q.status();
                   (*q)->BindText(1, digests.back());
                   auto row = (*q)->Step();
                   if (row.ok() && *row) stored = (*q)->ColumnInt64(0);
                   (*q)->Reset();
                   return row.status();
                 })
                  .ok());
  EXPECT_GT(stored, 0);
  EXPECT_LT(stored, static_cast<int64_t>(evidence.back().size() / 2));
  EXPECT_EQ(log_->Evidence("token-y", std::string(64, 'e')).status().code(),
            absl::StatusCode::kDataLoss);
  // Found by token id and digest together.
  EXPECT_EQ(log_->Evidence("token-0", std::string(64, 'f')).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(log_->Evidence("token-1", digests[0]).status().code(), absl::StatusCode::kNotFound);
  // What earlier releases kept (by digest alone) is still found.
  Exec(absl::StrCat(
      "INSERT INTO evidence(sha256, size, data, stored_at) SELECT sha256, size, data, stored_at "
      "FROM token_evidence WHERE token_id = 'token-3'; DELETE FROM token_evidence WHERE token_id = "
      "'token-3'"));
  auto legacy = log_->Evidence("a-token-of-an-earlier-release", digests[3]);
  ASSERT_TRUE(legacy.ok()) << legacy.status();
  EXPECT_EQ(*legacy, evidence[3]);
}

struct Tamper {
  std::string name;
  std::string sql;
  std::string why;
};

TEST_F(ReceiptLogTest, TamperingHaltsTheLogAfterRestart) {
  const std::vector<Tamper> cases = {
      {"edit",
       "UPDATE receipts SET leaf = CAST(replace(CAST(leaf AS TEXT), 'denied', 'granted') AS BLOB) "
       "WHERE idx = 3",
       "receipt 3 does not match its leaf hash"},
      {"delete", "DELETE FROM receipts WHERE idx = 5", "receipt 5 is missing"},
      // Whole rows (every column but idx) and their leaf hashes swapped.
      {"swap",
       "CREATE TEMP TABLE sw AS SELECT * FROM receipts WHERE idx IN (1, 2); "
       "UPDATE receipts SET (time, decision, resource, key_version, tee, policy_version, rule, "
       "chip_id, evidence_sha256, leaf) = (SELECT time, decision, resource, key_version, tee, "
       "policy_version, rule, chip_id, evidence_sha256, leaf FROM sw WHERE sw.idx = 3 - "
       "receipts.idx) WHERE idx IN (1, 2); "
       "CREATE TEMP TABLE swn AS SELECT * FROM tree_nodes WHERE level = 0 AND last IN (1, 2); "
       "UPDATE tree_nodes SET hash = (SELECT hash FROM swn WHERE swn.last = 3 - tree_nodes.last) "
       "WHERE level = 0 AND last IN (1, 2)",
       "do not reproduce the checkpoint"},
      {"truncate", "DELETE FROM receipts WHERE idx >= 8", "receipts were lost"},
      // Time ranges are found by binary search over idx.
      {"backdate", "UPDATE receipts SET time = time - 1000000 WHERE idx = 4",
       "receipt 4's time column does not match its leaf"},
      // New receipts are dated no earlier than the last one: a future date
      // there would date them all falsely.
      {"forward-date", "UPDATE receipts SET time = time + 94608000000000 WHERE idx = 9",
       "receipt 9's time column does not match its leaf"},
      // Queries filter on columns: an edited one would hide a receipt.
      {"decision column", "UPDATE receipts SET decision = 'denied' WHERE idx = 5",
       "receipt 5's decision column does not match its leaf"},
      {"resource column", "UPDATE receipts SET resource = 'x/y/z' WHERE idx = 6",
       "receipt 6's resource column does not match its leaf"},
      {"rule column", "UPDATE receipts SET rule = '' WHERE idx = 2",
       "receipt 2's rule column does not match its leaf"},
      {"chip column", "UPDATE receipts SET chip_id = 'ab' WHERE idx = 7",
       "receipt 7's chip_id column does not match its leaf"},
      // The copy of the checkpoint outside the database still holds the log to it.
      {"forget checkpoints", "DELETE FROM checkpoints; DELETE FROM receipts WHERE idx >= 8",
       "receipts were lost"},
  };
  for (const Tamper& t : cases) {
    SCOPED_TRACE(t.name);
    TearDown();
    SetUp();
    for (int i = 0; i < 10; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
    ASSERT_TRUE(log_->LatestCheckpoint(true).ok());
    Exec(t.sql);
    Open();
    EXPECT_THAT(log_->halted_reason(), HasSubstr(t.why));
    auto appended = log_->Append(Make(99));
    EXPECT_EQ(appended.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(appended.status().message(), HasSubstr("receipt log halted"));
  }
}

// The column check at start-up reads strings as the leaf stores them: JSON
// escapes, non-ASCII text and invalid UTF-8 (replaced in the leaf) are no
// false alarm.
TEST_F(ReceiptLogTest, ColumnsWithEscapesAndNonAsciiVerifyAfterRestart) {
  Receipt a = Make(0);
  a.rule = "r\u00e8gle \"quoted\" \\ tab\t";
  Receipt b = Make(1);
  b.rule = std::string("bad \xff utf-8");
  b.chip_id = "\x01";
  ASSERT_TRUE(log_->Append(a).ok());
  ASSERT_TRUE(log_->Append(b).ok());
  ASSERT_TRUE(log_->Append(Make(2)).ok());
  Open();
  EXPECT_EQ(log_->halted_reason(), "");
  ASSERT_TRUE(log_->Append(Make(3)).ok());
}

TEST_F(ReceiptLogTest, ACleanRestartVerifiesAndContinues) {
  for (int i = 0; i < 17; ++i) ASSERT_TRUE(log_->Append(Make(i)).ok());
  Open();  // the destructor signed a final checkpoint
  EXPECT_EQ(log_->halted_reason(), "");
  EXPECT_EQ(log_->size(), 17u);
  auto r = log_->Append(Make(17));
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->index, 17u);
  // A checkpoint signed with another key is refused.
  log_.reset();
  key_pem_ = *common::PrivateKeyToPem(common::GenerateEd25519Key()->get());
  Open();
  EXPECT_THAT(log_->halted_reason(), HasSubstr("does not verify under the log's key"));
}

TEST(ReceiptTest, LeafIsCanonicalJsonAndRoundTrips) {
  Receipt r;
  r.index = 7;
  r.time = absl::FromUnixMicros(1800000000123456);
  r.decision = "granted";
  r.resource = "a/b/c";
  r.labels = {{"route", "chat"}};
  r.shadow = {{"canary", true}};
  auto leaf = ReceiptLeaf(r);
  ASSERT_TRUE(leaf.ok());
  EXPECT_THAT(*leaf, HasSubstr("\"time\":\"2027-01-15T08:00:00.123456Z\""));
  auto back = ParseReceiptLeaf(*leaf);
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*ReceiptLeaf(*back), *leaf);
  // Non-canonical spacing or an unknown member is refused.
  EXPECT_FALSE(ParseReceiptLeaf(absl::StrCat(" ", *leaf)).ok());
  std::string extra = *leaf;
  extra.insert(1, "\"zz\":1,");
  EXPECT_FALSE(ParseReceiptLeaf(extra).ok());
  EXPECT_FALSE(ParseReceiptLeaf("{\"index\":-1}").ok());
}

// The direct serializer that appenders use against the generic path:
// RFC 8785 applied to ReceiptToJson by common/jcs.
TEST(ReceiptTest, LeafTemplateMatchesGenericCanonicalization) {
  std::mt19937 rng(7);
  const std::vector<std::string> pieces = {"a",  "Z",      "\"",     "\\",         "\n",
                                           "\t", "\x01",   "\x1f",   "\x7f",       "/",
                                           " ",  "\u00e9", "\u20ac", "\U0001F600", "\uFFFD"};
  auto text = [&](int max, bool ascii) {
    std::string out;
    int n = static_cast<int>(rng() % (max + 1));
    for (int i = 0; i < n; ++i) {
      const std::string& p = pieces[rng() % pieces.size()];
      if (ascii && static_cast<unsigned char>(p[0]) >= 0x80) continue;
      out += p;
    }
    return out;
  };
  for (int round = 0; round < 2000; ++round) {
    const bool ascii = round % 2 == 0;
    Receipt r;
    r.index = rng() % 1000000;
    r.time = absl::FromUnixMicros(1800000000000000 + rng());
    r.decision = std::vector<std::string>{"granted", "denied", "failed"}[rng() % 3];
    r.reason = text(12, ascii);
    r.resource = text(6, ascii);
    r.key_version = text(2, ascii);
    r.tee = text(2, ascii);
    r.evidence_sha256 = text(4, ascii);
    for (int i = static_cast<int>(rng() % 4); i > 0; --i) {
      r.measurements.emplace_back(text(3, ascii), text(4, ascii));
      r.labels.emplace_back(text(3, ascii), text(4, ascii));
      r.images.push_back(text(5, ascii));
      r.shadow.push_back({text(3, ascii), rng() % 2 == 0});
    }
    if (!r.labels.empty()) r.labels.push_back({r.labels.front().first, "repeated key"});
    r.tcb_status = text(2, ascii);
    r.chip_id = text(4, ascii);
    r.policy_version = text(4, ascii);
    r.rule = text(4, ascii);
    r.client_address = text(4, ascii);
    r.session_digest = text(4, ascii);
    r.token_id = text(4, ascii);
    auto want = common::CanonicalizeJson(ReceiptToJson(r));
    ASSERT_TRUE(want.ok());
    auto got = LeafTemplate(r).Fill(r.index, r.time);
    ASSERT_TRUE(got.ok()) << got.status();
    ASSERT_EQ(*got, *want) << "round " << round;
    auto back = ParseReceiptLeaf(*got);
    ASSERT_TRUE(back.ok()) << back.status();
    ASSERT_EQ(*LeafIndex(*got), r.index);
  }
}

TEST(ReceiptTest, LeafIndexReadsOnlyTheTopLevelMember) {
  EXPECT_EQ(*LeafIndex(R"({"a":{"index":5},"b":["\"index\":6"],"index":7,"z":1})"), 7u);
  EXPECT_EQ(*LeafIndex(R"({"labels":{"index":"8"},"index":0})"), 0u);
  for (const char* bad : {"", "[]", R"({"index":"1"})", R"({"index":01})", R"({"index":-1})",
                          R"({"index":1.5})", R"({"index":9007199254740992})", R"({"a":"index"})",
                          R"({"x":{"index":1}})", R"({"index)", R"({"index":1)"}) {
    EXPECT_FALSE(LeafIndex(bad).ok()) << bad;
  }
}

TEST(ReceiptTest, InvalidUtf8IsReplacedNotCopied) {
  Receipt r;
  r.decision = "failed";
  r.reason = "bad \xff\xfe evidence \xc3";
  auto leaf = ReceiptLeaf(r);
  ASSERT_TRUE(leaf.ok()) << leaf.status();
  EXPECT_THAT(*leaf, HasSubstr("bad \xEF\xBF\xBD"));
  EXPECT_TRUE(ParseReceiptLeaf(*leaf).ok());
  r.reason = std::string(kMaxLeafBytes, 'x');
  EXPECT_EQ(ReceiptLeaf(r).status().code(), absl::StatusCode::kInvalidArgument);
}

}  // namespace
}  // namespace kbs::receipts
