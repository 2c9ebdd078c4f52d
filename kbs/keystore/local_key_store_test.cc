#include "kbs/keystore/local_key_store.h"

#include <sys/stat.h>

#include <filesystem>

#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::keystore {
namespace {

class LocalKeyStoreTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ("keystore_" + std::to_string(reinterpret_cast<uintptr_t>(this)));
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    db_ = *storage::SqliteDatabase::Open((dir_ / "kbs.db").string(), 2, "");
    master_ = *common::RandomString(32);
    store_ =
        *LocalKeyStore::Create(db_.get(), common::SecretBytes(common::AsSpan(master_)), &clock_);
  }
  std::string RawRow(const std::string& column, const std::string& path) {
    std::string out;
    EXPECT_TRUE(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
                     auto stmt = *c.Prepare("SELECT " + column + " FROM resources WHERE path=?1");
                     stmt->BindText(1, path);
                     if (*stmt->Step()) out = stmt->ColumnBlob(0);
                     stmt->Reset();
                     return absl::OkStatus();
                   })
                    .ok());
    return out;
  }

  common::FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  std::filesystem::path dir_;
  std::unique_ptr<storage::SqliteDatabase> db_;
  std::string master_;
  std::unique_ptr<LocalKeyStore> store_;
};

TEST_F(LocalKeyStoreTest, PutGetListDelete) {
  auto md = store_->Put("a/b/c", common::AsSpan("secret value"));
  ASSERT_TRUE(md.ok()) << md.status();
  EXPECT_EQ(md->size, 12);
  EXPECT_EQ(md->sha256_hex, common::HexEncode(common::Sha256("secret value")));
  EXPECT_EQ(md->created, clock_.Now());
  auto got = store_->Get("a/b/c");
  ASSERT_TRUE(got.ok());
  EXPECT_EQ(common::AsStringView(got->span()), "secret value");

  clock_.Advance(absl::Seconds(10));
  auto updated = store_->Put("a/b/c", common::AsSpan("v2"));
  EXPECT_EQ(updated->created, absl::FromUnixSeconds(1800000000));
  EXPECT_EQ(updated->updated, clock_.Now());
  ASSERT_TRUE(store_->Put("a/b/a", common::AsSpan("x")).ok());
  auto list = store_->List();
  ASSERT_EQ(list->size(), 2u);
  EXPECT_EQ((*list)[0].path, "a/b/a");

  EXPECT_TRUE(store_->Delete("a/b/c").ok());
  EXPECT_EQ(store_->Get("a/b/c").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(store_->Delete("a/b/c").code(), absl::StatusCode::kNotFound);
}

TEST_F(LocalKeyStoreTest, EncryptedAtRestWithFreshNonces) {
  ASSERT_TRUE(store_->Put("a/b/c", common::AsSpan("plaintext-marker")).ok());
  std::string ct1 = RawRow("ciphertext", "a/b/c");
  std::string nonce1 = RawRow("nonce", "a/b/c");
  EXPECT_EQ(ct1.find("plaintext-marker"), std::string::npos);
  ASSERT_TRUE(store_->Put("a/b/c", common::AsSpan("plaintext-marker")).ok());
  EXPECT_NE(RawRow("nonce", "a/b/c"), nonce1);
  EXPECT_NE(RawRow("ciphertext", "a/b/c"), ct1);
}

TEST_F(LocalKeyStoreTest, TamperingAndWrongKeyAreDataLoss) {
  ASSERT_TRUE(store_->Put("a/b/c", common::AsSpan("v")).ok());
  ASSERT_TRUE(store_->Put("a/b/d", common::AsSpan("w")).ok());
  // Move d's sealed value onto c: the path is the associated data.
  ASSERT_TRUE(db_->Run([](storage::SqliteConnection& c) {
                   return c.Exec(
                       "UPDATE resources SET nonce=(SELECT nonce FROM resources WHERE "
                       "path='a/b/d'), ciphertext=(SELECT ciphertext FROM resources WHERE "
                       "path='a/b/d') WHERE path='a/b/c'");
                 })
                  .ok());
  EXPECT_EQ(store_->Get("a/b/c").status().code(), absl::StatusCode::kDataLoss);
  auto other = *LocalKeyStore::Create(db_.get(), *common::RandomBytes(32), &clock_);
  EXPECT_EQ(other->Get("a/b/d").status().code(), absl::StatusCode::kDataLoss);
}

TEST_F(LocalKeyStoreTest, SizeLimit) {
  std::string max(kMaxResourceBytes, 'x');
  EXPECT_TRUE(store_->Put("a/b/c", common::AsSpan(max)).ok());
  std::string over(kMaxResourceBytes + 1, 'x');
  EXPECT_EQ(store_->Put("a/b/c", common::AsSpan(over)).status().code(),
            absl::StatusCode::kResourceExhausted);
}

TEST_F(LocalKeyStoreTest, MasterKeyFile) {
  std::string path = (dir_ / "master.key").string();
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
