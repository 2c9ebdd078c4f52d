#include "kbs/storage/sqlite.h"

#include <gtest/gtest.h>
#include <unistd.h>

#include <filesystem>
#include <string>

#include "absl/strings/str_cat.h"

namespace kbs::storage {
namespace {

class SqliteDatabaseTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() /
           absl::StrCat("sqlite_test_", ::getpid(), "_",
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static absl::Status Insert(SqliteDatabase& db, int i) {
    return db.Run([i](SqliteConnection& c) {
      return c.Transaction([&]() -> absl::Status {
        auto st = c.Prepare("INSERT INTO t(i, v) VALUES(?1, ?2)");
        if (!st.ok()) return st.status();
        (*st)->BindInt64(1, i);
        (*st)->BindText(2, std::string(3000, static_cast<char>('a' + i % 26)));
        absl::Status s = (*st)->Run();
        (*st)->Reset();
        return s;
      });
    });
  }

  static int64_t Count(SqliteDatabase& db) {
    int64_t n = -1;
    EXPECT_TRUE(db.Run([&](SqliteConnection& c) -> absl::Status {
                    auto st = c.Prepare("SELECT count(*) FROM t");
                    if (!st.ok()) return st.status();
                    auto row = (*st)->Step();
                    if (!row.ok()) return row.status();
                    n = (*st)->ColumnInt64(0);
                    (*st)->Reset();
                    return absl::OkStatus();
                  }).ok());
    return n;
  }

  std::string dir_;
};

constexpr char kSchema[] = "CREATE TABLE IF NOT EXISTS t(i INTEGER PRIMARY KEY, v TEXT NOT NULL);";

// One commit after another, as the receipt writer does under load: the
// background checkpoints must let the WAL start over, or it grows with
// every commit (each of these is at least one 4 KiB page).
TEST_F(SqliteDatabaseTest, WalStaysBoundedUnderContinuousCommits) {
  SqliteDatabase::Options options;
  options.checkpoint_pages = 50;
  options.restart_pages = 200;
  auto db = SqliteDatabase::Open(dir_ + "/t.db", 2, kSchema, options);
  ASSERT_TRUE(db.ok()) << db.status();
  constexpr int kCommits = 3000;
  for (int i = 0; i < kCommits; ++i) {
    ASSERT_TRUE(Insert(**db, i).ok()) << i;
    (*db)->RestartWalIfDue();  // as the receipt writer does between commits
  }
  EXPECT_EQ(Count(**db), kCommits);
  EXPECT_GE((*db)->wal_restarts(), 1);
  // Unbounded, the WAL would hold every commit: more than 12 MB here.
  const auto wal_bytes = std::filesystem::file_size(dir_ + "/t.db-wal");
  EXPECT_LT(wal_bytes, 4u << 20) << "the WAL was never started over";
}

// A reader holding a snapshot keeps the WAL from starting over; commits go
// on regardless, the WAL starts over once the reader is done, and every row
// is there.
TEST_F(SqliteDatabaseTest, ALongReaderDoesNotStopCommits) {
  SqliteDatabase::Options options;
  options.checkpoint_pages = 20;
  options.restart_pages = 40;
  auto db = SqliteDatabase::Open(dir_ + "/t.db", 2, kSchema, options);
  ASSERT_TRUE(db.ok()) << db.status();
  ASSERT_TRUE(Insert(**db, 0).ok());
  auto reader = SqliteConnection::Open(dir_ + "/t.db");
  ASSERT_TRUE(reader.ok()) << reader.status();
  ASSERT_TRUE((*reader)->Exec("BEGIN; SELECT count(*) FROM t;").ok());
  for (int i = 1; i < 300; ++i) {
    ASSERT_TRUE(Insert(**db, i).ok()) << i;
    (*db)->RestartWalIfDue();
  }
  // The reader pinned the WAL: no pass copied all of it, so no restart.
  EXPECT_EQ((*db)->wal_restarts(), 0);
  ASSERT_TRUE((*reader)->Exec("COMMIT").ok());
  // Once it is done, the WAL starts over.
  int i = 300;
  for (; i < 5000 && (*db)->wal_restarts() == 0; ++i) {
    ASSERT_TRUE(Insert(**db, i).ok()) << i;
    (*db)->RestartWalIfDue();
  }
  EXPECT_GE((*db)->wal_restarts(), 1);
  EXPECT_EQ(Count(**db), i);
}

}  // namespace
}  // namespace kbs::storage
