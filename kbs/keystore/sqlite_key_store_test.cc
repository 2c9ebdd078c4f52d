// The key store with the local KEK: versions and their states, encryption
// at rest under per-value data keys, KEK rotation and re-wrapping, and the
// migration of a first-release store.
#include "kbs/keystore/sqlite_key_store.h"

#include <sys/stat.h>

#include <filesystem>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/keystore/local_kek.h"

namespace kbs::keystore {
namespace {

using ::testing::HasSubstr;

class SqliteKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("keystore_" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = *storage::SqliteDatabase::Open((dir_ / "kbs.db").string(), 2, "");
    kek_ = *LocalKek::Open((dir_ / "master.key").string());
    store_ = *SqliteKeyStore::Create(db_.get(), kek_.get(), &clock_);
  }
  // Every byte the database holds for the store's table, as one string.
  std::string AllBytes() {
    std::string out;
    EXPECT_TRUE(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
                     auto stmt = *c.Prepare(
                         "SELECT path, kek_id, wrapped_key, nonce, ciphertext, sha256 FROM "
                         "resource_versions");
                     while (*stmt->Step()) {
                       for (int i = 0; i < 6; ++i) out += stmt->ColumnBlob(i);
                     }
                     stmt->Reset();
                     return absl::OkStatus();
                   })
                    .ok());
    return out;
  }
  absl::Status Exec(const std::string& sql) {
    return db_->Run([&](storage::SqliteConnection& c) { return c.Exec(sql); });
  }
  std::string Value(absl::string_view path, std::optional<int64_t> version = std::nullopt) {
    auto got = store_->Get(path, version);
    if (!got.ok()) return std::string(got.status().ToString());
    return std::string(common::AsStringView(got->value.span()));
  }

  common::FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  std::filesystem::path dir_;
  std::unique_ptr<storage::SqliteDatabase> db_;
  std::unique_ptr<LocalKek> kek_;
  std::unique_ptr<SqliteKeyStore> store_;
};

TEST_F(SqliteKeyStoreTest, PutMakesVersionsGetReleasesTheLatestEnabled) {
  auto md = store_->Put("a/b/c", common::AsSpan("secret value"));
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->version, 1);
  EXPECT_EQ(md->size, 12);
  EXPECT_EQ(md->sha256_hex, common::HexEncode(common::Sha256("secret value")));
  auto got = store_->Get("a/b/c");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(common::AsStringView(got->value.span()), "secret value");
  EXPECT_EQ(got->version, 1);

  clock_.Advance(absl::Seconds(10));
  auto v2 = store_->Put("a/b/c", common::AsSpan("v2"));
  ASSERT_TRUE(v2.ok());
  EXPECT_EQ(v2->version, 2);
  EXPECT_EQ(v2->created, absl::FromUnixSeconds(1800000000));
  EXPECT_EQ(Value("a/b/c"), "v2");
  EXPECT_EQ(Value("a/b/c", 1), "secret value");
  EXPECT_EQ(store_->Get("a/b/c", 3).status().code(), absl::StatusCode::kNotFound);

  ASSERT_TRUE(store_->Put("a/b/a", common::AsSpan("x")).ok());
  auto list = store_->List();
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].path, "a/b/a");
  EXPECT_EQ((*list)[1].version, 2);
  EXPECT_EQ((*list)[1].latest_version, 2);
  EXPECT_EQ((*list)[1].size, 2);

  EXPECT_TRUE(store_->Delete("a/b/c").ok());
  EXPECT_EQ(store_->Get("a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Versions("a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("a/b/c").code(), absl::StatusCode::kNotFound);
}

TEST_F(SqliteKeyStoreTest, DisableEnableDestroy) {
  ASSERT_TRUE(store_->Put("m/k/1", common::AsSpan("one")).ok());
  ASSERT_TRUE(store_->Put("m/k/1", common::AsSpan("two")).ok());
  // Disabling the latest: releases fall back to the latest enabled.
  auto disabled = store_->SetState("m/k/1", 2, VersionState::kDisabled);
  ASSERT_TRUE(disabled.ok()) << disabled.status();
  EXPECT_EQ(disabled->state, VersionState::kDisabled);
  EXPECT_EQ(Value("m/k/1"), "one");
  EXPECT_EQ(store_->Get("m/k/1", 2).status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->List()->front().version, 1);
  // Re-enabled, it is the latest again.
  ASSERT_TRUE(store_->SetState("m/k/1", 2, VersionState::kEnabled).ok());
  EXPECT_EQ(Value("m/k/1"), "two");
  // Destroyed: the value and its data key are gone, the metadata stays,
  // and it cannot come back.
  auto destroyed = store_->SetState("m/k/1", 1, VersionState::kDestroyed);
  ASSERT_TRUE(destroyed.ok());
  EXPECT_EQ(destroyed->state, VersionState::kDestroyed);
  EXPECT_EQ(destroyed->kek_id, "");
  EXPECT_EQ(store_->SetState("m/k/1", 1, VersionState::kEnabled).status().code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(store_->Get("m/k/1", 1).status().code(), absl::StatusCode::kFailedPrecondition);
  auto versions = store_->Versions("m/k/1");
  ASSERT_EQ(versions->size(), 2u);
  EXPECT_EQ((*versions)[0].sha256_hex, common::HexEncode(common::Sha256("one")));
  // Nothing enabled: FailedPrecondition, not NotFound.
  ASSERT_TRUE(store_->SetState("m/k/1", 2, VersionState::kDisabled).ok());
  auto none = store_->Get("m/k/1");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(none.status().message(), HasSubstr("no enabled version"));
  EXPECT_EQ(store_->SetState("m/k/1", 9, VersionState::kDisabled).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(SqliteKeyStoreTest, NoPlaintextAndNoUnwrappedKeyAtRest) {
  ASSERT_TRUE(store_->Put("a/b/c", common::AsSpan("plaintext-marker-0123456789")).ok());
  const std::string bytes = AllBytes();
  EXPECT_EQ(bytes.find("plaintext-marker"), std::string::npos);
  // The KEK file's bytes are nowhere in the database either.
  auto master = common::ReadFile((dir_ / "master.key").string());
  EXPECT_EQ(bytes.find(*master), std::string::npos);
}

TEST_F(SqliteKeyStoreTest, TamperingAndMovedRowsAreDataLoss) {
  ASSERT_TRUE(store_->Put("a/b/c", common::AsSpan("v")).ok());
  ASSERT_TRUE(store_->Put("a/b/d", common::AsSpan("w")).ok());
  // Move d's sealed value and wrapped key onto c.
  ASSERT_TRUE(Exec("UPDATE resource_versions SET (kek_id, wrapped_key, nonce, ciphertext) = "
                   "(SELECT kek_id, wrapped_key, nonce, ciphertext FROM resource_versions WHERE "
                   "path='a/b/d') WHERE path='a/b/c'")
                  .ok());
  // Reopen so no cached row hides the change.
  store_ = *SqliteKeyStore::Create(db_.get(), kek_.get(), &clock_);
  EXPECT_EQ(store_->Get("a/b/c").status().code(), absl::StatusCode::kDataLoss);
  ASSERT_TRUE(Exec("UPDATE resource_versions SET nonce = randomblob(12) WHERE path='a/b/d'").ok());
  store_ = *SqliteKeyStore::Create(db_.get(), kek_.get(), &clock_);
  EXPECT_EQ(store_->Get("a/b/d").status().code(), absl::StatusCode::kDataLoss);
  // Another KBS's KEK does not open these rows.
  std::filesystem::create_directories(dir_ / "other");
  auto other_kek = *LocalKek::Open((dir_ / "other" / "master.key").string());
  ASSERT_TRUE(store_->Put("a/b/e", common::AsSpan("x")).ok());
  auto other = *SqliteKeyStore::Create(db_.get(), other_kek.get(), &clock_);
  EXPECT_EQ(other->Get("a/b/e").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(SqliteKeyStoreTest, KekRotationRewrapsEveryDataKey) {
  for (int i = 0; i < 5; ++i) {
    ASSERT_TRUE(store_->Put(absl::StrCat("r/k/", i), common::AsSpan(absl::StrCat("v", i))).ok());
  }
  ASSERT_TRUE(store_->SetState("r/k/4", 1, VersionState::kDestroyed).ok());
  EXPECT_EQ(kek_->current_id(), "local:1");
  auto rotated = kek_->Rotate();
  ASSERT_TRUE(rotated.ok());
  EXPECT_EQ(*rotated, "local:2");
  // New values use the new version; old ones still open before re-wrapping.
  ASSERT_TRUE(store_->Put("r/k/9", common::AsSpan("new")).ok());
  EXPECT_EQ(store_->Versions("r/k/9")->front().kek_id, "local:2");
  EXPECT_EQ(Value("r/k/0"), "v0");
  auto n = store_->RewrapAll();
  ASSERT_TRUE(n.ok()) << n.status();
  EXPECT_EQ(*n, 4);  // the destroyed version has no key left
  for (int i = 0; i < 4; ++i) {
    EXPECT_EQ(store_->Versions(absl::StrCat("r/k/", i))->front().kek_id, "local:2");
    EXPECT_EQ(Value(absl::StrCat("r/k/", i)), absl::StrCat("v", i));
  }
  EXPECT_EQ(*store_->RewrapAll(), 0);
  // A restarted KBS finds both KEK versions.
  auto reopened = *LocalKek::Open((dir_ / "master.key").string());
  EXPECT_EQ(reopened->current_id(), "local:2");
  struct stat st;
  ASSERT_EQ(::stat((dir_ / "master.key.2").c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
}

TEST_F(SqliteKeyStoreTest, MigratesAFirstReleaseStore) {
  // The first release kept values directly under the master key.
  std::filesystem::create_directories(dir_ / "old");
  auto db = *storage::SqliteDatabase::Open((dir_ / "old" / "kbs.db").string(), 2, "");
  auto kek = *LocalKek::Open((dir_ / "old" / "master.key").string());
  const std::string nonce(12, '\x07');
  auto sealed = *common::AesGcmSeal(kek->master_key(), common::AsSpan(nonce),
                                    common::AsSpan("m/w/llama"), common::AsSpan("old-secret"));
  ASSERT_TRUE(db->Run([&](storage::SqliteConnection& c) -> absl::Status {
                  KBS_RETURN_IF_ERROR(c.Exec(
                      "CREATE TABLE resources (path TEXT PRIMARY KEY, nonce BLOB NOT NULL, "
                      "ciphertext BLOB NOT NULL, size INTEGER NOT NULL, sha256 BLOB NOT NULL, "
                      "created_at INTEGER NOT NULL, updated_at INTEGER NOT NULL) STRICT"));
                  auto stmt = *c.Prepare(
                      "INSERT INTO resources VALUES('m/w/llama', ?1, ?2, 10, X'00', 5, 6)");
                  stmt->BindBlob(1, nonce);
                  stmt->BindBlob(2, absl::StrCat(sealed.ciphertext, sealed.tag));
                  absl::Status s = stmt->Run();
                  stmt->Reset();
                  return s;
                }).ok());
  auto store = SqliteKeyStore::Create(db.get(), kek.get(), &clock_, kek->master_key());
  ASSERT_TRUE(store.ok()) << store.status();
  auto got = (*store)->Get("m/w/llama");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ(common::AsStringView(got->value.span()), "old-secret");
  EXPECT_EQ(got->version, 1);
  EXPECT_EQ((*store)->List()->front().created, absl::FromUnixMicros(5));
  // The old table is gone; opening again is a no-op.
  EXPECT_TRUE(SqliteKeyStore::Create(db.get(), kek.get(), &clock_, kek->master_key()).ok());
}

TEST_F(SqliteKeyStoreTest, SizeLimit) {
  std::string max(kMaxResourceBytes, 'x');
  EXPECT_TRUE(store_->Put("a/b/c", common::AsSpan(max)).ok());
  std::string over(kMaxResourceBytes + 1, 'x');
  EXPECT_EQ(store_->Put("a/b/c", common::AsSpan(over)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(SqliteKeyStoreTest, MasterKeyFile) {
  std::string path = (dir_ / "mk").string();
  auto created = LoadOrCreateMasterKey(path);
  ASSERT_TRUE(created.ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadOrCreateMasterKey(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(common::AsStringView(loaded->span()), common::AsStringView(created->span()));
  ::chmod(path.c_str(), 0644);
  EXPECT_EQ(LoadOrCreateMasterKey(path).status().code(), absl::StatusCode::kFailedPrecondition);
  ::chmod(path.c_str(), 0600);
  ASSERT_TRUE(common::WriteFileAtomic(path, "short", 0600).ok());
  EXPECT_EQ(LoadOrCreateMasterKey(path).status().code(), absl::StatusCode::kFailedPrecondition);
}

}  // namespace
}  // namespace kbs::keystore
