#include "common/files.h"

#include <sys/stat.h>
#include <unistd.h>

#include <filesystem>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::common {
namespace {

std::string TempPath(const std::string& name) {
  return (std::filesystem::path(::testing::TempDir()) / (name + std::to_string(::getpid())))
      .string();
}

TEST(FilesTest, AtomicWriteWithModeAndPrivateRead) {
  std::string path = TempPath("files_test_secret");
  ASSERT_TRUE(WriteFileAtomic(path, "secret", 0600).ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  EXPECT_EQ(*ReadPrivateFile(path), "secret");
  ::chmod(path.c_str(), 0640);
  EXPECT_EQ(ReadPrivateFile(path).status().code(), absl::StatusCode::kFailedPrecondition);
  std::filesystem::remove(path);
  EXPECT_EQ(ReadFile(path).status().code(), absl::StatusCode::kNotFound);
}

TEST(FilesTest, ReadFileSizeLimit) {
  std::string path = TempPath("files_test_big");
  ASSERT_TRUE(WriteFileAtomic(path, std::string(100, 'x')).ok());
  EXPECT_TRUE(ReadFile(path, 100).ok());
  EXPECT_FALSE(ReadFile(path, 99).ok());
  std::filesystem::remove(path);
}

TEST(FilesTest, ExclusiveLock) {
  std::string path = TempPath("files_test_lock");
  auto first = LockFileExclusive(path);
  ASSERT_TRUE(first.ok()) << first.status();
  auto second = LockFileExclusive(path);
  EXPECT_EQ(second.status().code(), absl::StatusCode::kFailedPrecondition);
  ::close(*first);
  auto third = LockFileExclusive(path);
  EXPECT_TRUE(third.ok());
  ::close(*third);
  std::filesystem::remove(path);
}

}  // namespace
}  // namespace kbs::common
