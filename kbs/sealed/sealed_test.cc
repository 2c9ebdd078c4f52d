#include "kbs/sealed/sealed.h"

#include <openssl/evp.h>
#include <openssl/hmac.h>
#include <sys/file.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include <chrono>
#include <csignal>
#include <cstdio>
#include <cstring>
#include <ext/stdio_filebuf.h>
#include <filesystem>
#include <fstream>
#include <sstream>
#include <streambuf>
#include <thread>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::sealed {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kSmall = kMinChunkSize;  // 4 KiB chunks for the tamper cases

std::string Key(char fill) { return std::string(kKeySize, fill); }
absl::Span<const uint8_t> K(const std::string& key) { return common::AsSpan(key); }

std::string Pattern(size_t n, uint32_t seed = 1) {
  std::string s(n, '\0');
  uint32_t x = seed * 2654435761u + 1;
  for (size_t i = 0; i < n; ++i) {
    x = x * 1664525u + 1013904223u;
    s[i] = static_cast<char>(x >> 24);
  }
  return s;
}

SealOptions Options(uint32_t chunk_size = kSmall, std::string path = "models/llama/weights",
                    uint64_t key_version = 3) {
  return SealOptions{std::move(path), key_version, chunk_size};
}

std::string SealString(absl::string_view plaintext, const std::string& key,
                       const SealOptions& options) {
  std::istringstream in{std::string(plaintext)};
  std::ostringstream out;
  absl::Status s = Seal(in, out, K(key), options);
  EXPECT_TRUE(s.ok()) << s;
  return out.str();
}

// Returns the status, and in `out` what Unseal wrote (verified chunks only).
absl::Status UnsealString(absl::string_view sealed, const std::string& key,
                          std::string* out = nullptr) {
  std::istringstream in{std::string(sealed)};
  std::ostringstream os;
  absl::Status s = Unseal(in, os, K(key));
  if (out != nullptr) *out = os.str();
  return s;
}

void ExpectStatus(const absl::Status& s, absl::StatusCode code, absl::string_view text) {
  EXPECT_EQ(s.code(), code) << s;
  EXPECT_THAT(std::string(s.message()), HasSubstr(std::string(text))) << s;
}

// Where chunk i starts in a sealed file with header length `h`.
size_t ChunkOffset(size_t h, uint32_t chunk_size, size_t i) {
  return h + i * (size_t{chunk_size} + kTagSize);
}

size_t HeaderLength(absl::string_view sealed) {
  size_t consumed = 0;
  auto header = ParseSealHeader(sealed, &consumed);
  EXPECT_TRUE(header.ok()) << header.status();
  return consumed;
}

void PutBe(std::string& s, uint64_t v, int n) {
  for (int i = n - 1; i >= 0; --i) s.push_back(static_cast<char>(v >> (8 * i)));
}

// An independent encoder of the documented header layout (docs/sealing.md).
std::string EncodeHeader(absl::string_view path, uint64_t key_version, uint32_t chunk_size,
                         absl::string_view prefix, absl::string_view key_check,
                         uint16_t version = 1, int64_t header_length = -1) {
  std::string h = "KBSSEAL1";
  PutBe(h, version, 2);
  PutBe(h, header_length >= 0 ? header_length : 68 + path.size(), 4);
  PutBe(h, path.size(), 2);
  h.append(path.data(), path.size());
  PutBe(h, key_version, 8);
  PutBe(h, chunk_size, 4);
  h.append(prefix.data(), prefix.size());
  h.append(key_check.data(), key_check.size());
  return h;
}

// --- Round trips ----------------------------------------------------------------

class RoundTripTest : public ::testing::TestWithParam<uint32_t> {};

TEST_P(RoundTripTest, SizesAroundChunkBoundaries) {
  const uint32_t c = GetParam();
  const std::string key = Key('k');
  for (size_t n : {size_t{0}, size_t{1}, size_t{c} - 1, size_t{c}, size_t{c} + 1, 3 * size_t{c} + 5,
                   4 * size_t{c}}) {
    SCOPED_TRACE(absl::StrCat("chunk ", c, " size ", n));
    std::string plain = Pattern(n, static_cast<uint32_t>(n));
    std::string sealed = SealString(plain, key, Options(c));
    size_t chunks = n == 0 ? 1 : (n + c - 1) / c;
    EXPECT_EQ(sealed.size(), 68 + 20 + chunks * kTagSize + n);
    std::string out;
    ASSERT_TRUE(UnsealString(sealed, key, &out).ok());
    EXPECT_EQ(out, plain);
  }
}

INSTANTIATE_TEST_SUITE_P(ChunkSizes, RoundTripTest,
                         ::testing::Values(kSmall, uint32_t{64 << 10}, kDefaultChunkSize));

TEST(SealedTest, HeaderMatchesTheDocumentedLayout) {
  const std::string key = Key('k');
  std::string sealed = SealString("hello", key, Options(kSmall, "repo/type/tag", 7));
  size_t consumed = 0;
  auto h = ParseSealHeader(sealed, &consumed);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(consumed, 68u + 13);
  EXPECT_EQ(h->version, 1);
  EXPECT_EQ(h->resource_path, "repo/type/tag");
  EXPECT_EQ(h->key_version, 7u);
  EXPECT_EQ(h->chunk_size, kSmall);
  EXPECT_EQ(h->nonce_prefix.size(), 8u);
  EXPECT_EQ(h->raw, sealed.substr(0, consumed));
  EXPECT_EQ(EncodeHeader("repo/type/tag", 7, kSmall, h->nonce_prefix, h->key_check), h->raw);

  // key check = HMAC-SHA256(key, "kbs-sealed key check" || header[0, H-32)).
  std::string mac_input = "kbs-sealed key check" + h->raw.substr(0, consumed - 32);
  uint8_t mac[32];
  unsigned int mac_len = 0;
  HMAC(EVP_sha256(), key.data(), static_cast<int>(key.size()),
       reinterpret_cast<const uint8_t*>(mac_input.data()), mac_input.size(), mac, &mac_len);
  EXPECT_EQ(h->key_check, std::string(reinterpret_cast<char*>(mac), mac_len));

  // Chunk 0 (final): nonce = prefix || u32 0, aad = SHA-256(header) || u64 0 || 1.
  std::string nonce = h->nonce_prefix;
  PutBe(nonce, 0, 4);
  std::string aad = common::Sha256(h->raw);
  PutBe(aad, 0, 8);
  aad.push_back('\x01');
  std::string chunk = sealed.substr(consumed);
  ASSERT_EQ(chunk.size(), 5 + kTagSize);
  auto opened =
      common::AesGcmOpen(K(key), common::AsSpan(nonce), common::AsSpan(aad),
                         common::AsSpan(chunk.substr(0, 5)), common::AsSpan(chunk.substr(5)));
  ASSERT_TRUE(opened.ok()) << opened.status();
  EXPECT_EQ(common::AsStringView(opened->span()), "hello");
}

// docs/sealing.md's test vector (also fuzz/corpus/fuzz_sealed_header/one_byte):
// pins the format, so a change to it cannot go unnoticed.
TEST(SealedTest, KnownAnswerVector) {
  const std::string sealed = *common::HexDecode(
      "4b42535345414c31000100000051"
      "000d7265706f2f747970652f746167"
      "000000000000000100001000"
      "5dbb6e7a8795ff5f"
      "386e47d014c0de3134b436a7b6ece646fd5c10c8328df3a45ffc2cbd84941911"
      "b3573912a233ca17a60a9b749e439ab9c8");
  size_t consumed = 0;
  auto h = ParseSealHeader(sealed, &consumed);
  ASSERT_TRUE(h.ok()) << h.status();
  EXPECT_EQ(h->resource_path, "repo/type/tag");
  EXPECT_EQ(h->key_version, 1u);
  EXPECT_EQ(h->chunk_size, 4096u);
  std::string out;
  ASSERT_TRUE(UnsealString(sealed, std::string(32, '\x5a'), &out).ok());
  EXPECT_EQ(out, "x");
}

TEST(SealedTest, EachSealUsesAFreshNoncePrefix) {
  const std::string key = Key('k');
  std::string a = SealString("same", key, Options());
  std::string b = SealString("same", key, Options());
  size_t consumed = 0;
  EXPECT_NE(ParseSealHeader(a, &consumed)->nonce_prefix,
            ParseSealHeader(b, &consumed)->nonce_prefix);
  EXPECT_NE(a.substr(consumed), b.substr(consumed));
}

TEST(SealedTest, ReadSealHeaderLeavesTheStreamAtChunkZero) {
  const std::string key = Key('k');
  std::string plain = Pattern(3 * kSmall + 9);
  std::istringstream in(SealString(plain, key, Options()));
  auto header = ReadSealHeader(in);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->key_version, 3u);
  auto reader = SealedReader::FromStream(in, *header, K(key));
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string out;
  while (true) {
    auto chunk = (*reader)->NextChunk();
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    EXPECT_LE(chunk->size(), kSmall);
    out.append(reinterpret_cast<const char*>(chunk->data()), chunk->size());
  }
  EXPECT_EQ(out, plain);
  EXPECT_TRUE((*reader)->done());
  EXPECT_EQ((*reader)->bytes_read(), plain.size());
}

TEST(SealedTest, ReaderReadsInSmallPiecesAcrossChunks) {
  const std::string key = Key('k');
  std::string plain = Pattern(5 * kSmall + 1234);
  std::istringstream in(SealString(plain, key, Options()));
  auto reader = SealedReader::FromStream(in, K(key));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ((*reader)->header().resource_path, "models/llama/weights");
  std::string out;
  uint8_t buf[1000];
  while (true) {
    auto n = (*reader)->Read(absl::MakeSpan(buf));
    ASSERT_TRUE(n.ok()) << n.status();
    if (*n == 0) break;
    out.append(reinterpret_cast<char*>(buf), *n);
  }
  EXPECT_EQ(out, plain);
  EXPECT_TRUE((*reader)->done());
}

TEST(SealedTest, EmptyPlaintextIsOneEmptyFinalChunk) {
  const std::string key = Key('k');
  std::string sealed = SealString("", key, Options());
  EXPECT_EQ(sealed.size(), HeaderLength(sealed) + kTagSize);
  std::istringstream in(sealed);
  auto reader = SealedReader::FromStream(in, K(key));
  ASSERT_TRUE(reader.ok());
  auto chunk = (*reader)->NextChunk();
  ASSERT_TRUE(chunk.ok()) << chunk.status();
  EXPECT_TRUE(chunk->empty());
  EXPECT_TRUE((*reader)->done());
}

TEST(SealedTest, RejectsBadSealInputs) {
  std::istringstream in("x");
  std::ostringstream out;
  ExpectStatus(Seal(in, out, K(std::string(16, 'k')), Options()),
               absl::StatusCode::kInvalidArgument, "32 bytes");
  for (const char* path : {"", "a/b", "a/b/c/d", "../b/c", "a/b/c d", "a//c"}) {
    ExpectStatus(Seal(in, out, K(Key('k')), Options(kSmall, path)),
                 absl::StatusCode::kInvalidArgument, "resource path");
  }
  for (uint32_t size : {kMinChunkSize - 1, kMaxChunkSize + 1, 0u}) {
    ExpectStatus(Seal(in, out, K(Key('k')), Options(size)), absl::StatusCode::kInvalidArgument,
                 "chunk size");
  }
  EXPECT_TRUE(out.str().empty());
  std::istringstream sealed(SealString("x", Key('k'), Options()));
  ExpectStatus(Unseal(sealed, out, K(std::string(31, 'k'))), absl::StatusCode::kInvalidArgument,
               "32 bytes");
}

TEST(SealedTest, FailedStreamsAreRefusedNotReadAsEmpty) {
  std::ifstream missing("/nonexistent/weights.bin", std::ios::binary);
  std::ostringstream out;
  ExpectStatus(Seal(missing, out, K(Key('k')), Options()), absl::StatusCode::kInvalidArgument,
               "input stream");
  EXPECT_TRUE(out.str().empty());
  std::istringstream in("data");
  std::ofstream unopened;
  unopened.setstate(std::ios::failbit);
  ExpectStatus(Seal(in, unopened, K(Key('k')), Options()), absl::StatusCode::kInvalidArgument,
               "output stream");
  ExpectStatus(Unseal(missing, out, K(Key('k'))), absl::StatusCode::kInvalidArgument,
               "input stream");
}

// --- Tampering --------------------------------------------------------------------

class TamperTest : public ::testing::Test {
 protected:
  // 3 full chunks and a short final one.
  void SetUp() override {
    plain_ = Pattern(3 * kSmall + 100);
    sealed_ = SealString(plain_, key_, Options());
    h_ = HeaderLength(sealed_);
  }
  size_t Chunk(size_t i) const { return ChunkOffset(h_, kSmall, i); }

  const std::string key_ = Key('k');
  std::string plain_, sealed_;
  size_t h_ = 0;
  static constexpr size_t kChunks = 4;
};

TEST_F(TamperTest, WrongKeyFailsBeforeAnyOutput) {
  std::string out = "unset";
  ExpectStatus(UnsealString(sealed_, Key('K'), &out), absl::StatusCode::kUnauthenticated,
               "wrong key for this sealed file (key check failed)");
  EXPECT_TRUE(out.empty());
  std::istringstream in(sealed_);
  EXPECT_EQ(SealedReader::FromStream(in, K(Key('K'))).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(TamperTest, FlippedByteInEachChunkAndTag) {
  for (size_t i = 0; i < kChunks; ++i) {
    size_t body = i + 1 < kChunks ? kSmall : 100;
    for (size_t offset : {size_t{0}, body / 2, body - 1, body, body + kTagSize - 1}) {
      SCOPED_TRACE(absl::StrCat("chunk ", i, " offset ", offset));
      std::string bad = sealed_;
      bad[Chunk(i) + offset] ^= 0x01;
      std::string out;
      ExpectStatus(UnsealString(bad, key_, &out), absl::StatusCode::kDataLoss,
                   absl::StrCat("chunk ", i, " failed authentication"));
      // Only the chunks before the bad one were released.
      EXPECT_EQ(out, plain_.substr(0, i * kSmall));
    }
  }
}

TEST_F(TamperTest, TruncatedAtEveryChunkBoundary) {
  for (size_t i = 0; i < kChunks; ++i) {  // i == 3 drops the final chunk
    SCOPED_TRACE(i);
    ExpectStatus(UnsealString(sealed_.substr(0, Chunk(i)), key_), absl::StatusCode::kDataLoss,
                 "truncated: no final chunk");
  }
}

TEST_F(TamperTest, TruncatedMidChunk) {
  for (size_t i = 0; i < kChunks; ++i) {
    for (size_t cut : {size_t{1}, kTagSize - 1, kTagSize, kTagSize + 1, size_t{99}, size_t{115},
                       size_t{kSmall / 2}, size_t{kSmall + kTagSize - 1}}) {
      size_t end = Chunk(i) + cut;
      if (end >= sealed_.size()) continue;
      SCOPED_TRACE(absl::StrCat("chunk ", i, " cut ", cut));
      absl::Status s = UnsealString(sealed_.substr(0, end), key_);
      EXPECT_EQ(s.code(), absl::StatusCode::kDataLoss) << s;
      EXPECT_THAT(std::string(s.message()),
                  ::testing::AnyOf(HasSubstr("truncated"),
                                   HasSubstr(absl::StrCat("chunk ", i, " failed"))));
    }
  }
  // Inside the header.
  for (size_t end = 0; end < h_; end += 7) {
    EXPECT_EQ(UnsealString(sealed_.substr(0, end), key_).code(),
              absl::StatusCode::kInvalidArgument);
  }
}

TEST_F(TamperTest, ReorderedChunks) {
  std::string bad = sealed_;
  std::string c0 = sealed_.substr(Chunk(0), kSmall + kTagSize);
  std::string c1 = sealed_.substr(Chunk(1), kSmall + kTagSize);
  bad.replace(Chunk(0), c1.size(), c1);
  bad.replace(Chunk(1), c0.size(), c0);
  ExpectStatus(UnsealString(bad, key_), absl::StatusCode::kDataLoss,
               "chunk 0 failed authentication");
  bad = sealed_;
  bad.replace(Chunk(2), c1.size(), c1);  // a duplicated chunk
  ExpectStatus(UnsealString(bad, key_), absl::StatusCode::kDataLoss,
               "chunk 2 failed authentication");
}

TEST_F(TamperTest, ChunkSplicedFromAnotherFileWithTheSameKey) {
  std::string other = SealString(Pattern(3 * kSmall + 100, 2), key_, Options());
  std::string bad = sealed_;
  bad.replace(Chunk(1), kSmall + kTagSize, other.substr(Chunk(1), kSmall + kTagSize));
  ExpectStatus(UnsealString(bad, key_), absl::StatusCode::kDataLoss,
               "chunk 1 failed authentication");
  // Its final chunk, too.
  bad = sealed_.substr(0, Chunk(3)) + other.substr(Chunk(3));
  ExpectStatus(UnsealString(bad, key_), absl::StatusCode::kDataLoss,
               "chunk 3 failed authentication");
}

TEST_F(TamperTest, HeaderOfAnotherFile) {
  std::string other = SealString(plain_, key_, Options());
  std::string bad = other.substr(0, h_) + sealed_.substr(h_);
  ExpectStatus(UnsealString(bad, key_), absl::StatusCode::kDataLoss,
               "chunk 0 failed authentication");
}

TEST_F(TamperTest, EditedHeaderFieldsFailTheKeyCheck) {
  size_t consumed = 0;
  SealHeader h = *ParseSealHeader(sealed_, &consumed);
  std::string body = sealed_.substr(consumed);
  struct Case {
    const char* name;
    std::string header;
  } cases[] = {
      {"path", EncodeHeader("models/llama/weightz", 3, kSmall, h.nonce_prefix, h.key_check)},
      {"path length",
       EncodeHeader("models/llama/weights2", 3, kSmall, h.nonce_prefix, h.key_check)},
      {"key version", EncodeHeader(h.resource_path, 4, kSmall, h.nonce_prefix, h.key_check)},
      {"chunk size", EncodeHeader(h.resource_path, 3, 2 * kSmall, h.nonce_prefix, h.key_check)},
      {"nonce prefix", EncodeHeader(h.resource_path, 3, kSmall, "12345678", h.key_check)},
      {"key check",
       EncodeHeader(h.resource_path, 3, kSmall, h.nonce_prefix, std::string(32, '\0'))},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    ASSERT_NE(c.header, h.raw);
    std::string out;
    ExpectStatus(UnsealString(c.header + body, key_, &out), absl::StatusCode::kUnauthenticated,
                 "key check failed");
    EXPECT_TRUE(out.empty());
  }
}

TEST_F(TamperTest, TrailingData) {
  ExpectStatus(UnsealString(sealed_ + "x", key_), absl::StatusCode::kDataLoss, "chunk 3");
  // A whole extra chunk after the final one.
  std::string extra = sealed_ + sealed_.substr(Chunk(0), kSmall + kTagSize);
  EXPECT_EQ(UnsealString(extra, key_).code(), absl::StatusCode::kDataLoss);

  // When the final chunk is full-size, trailing bytes are named as such.
  std::string exact = SealString(Pattern(2 * kSmall), key_, Options());
  ASSERT_EQ(exact.size(), ChunkOffset(h_, kSmall, 2));
  for (std::string tail : {std::string("x"), std::string(kSmall + kTagSize, 'x')}) {
    std::string out;
    ExpectStatus(UnsealString(exact + tail, key_, &out), absl::StatusCode::kDataLoss,
                 "data after the final chunk");
    EXPECT_EQ(out.size(), kSmall);  // chunk 0 only; chunk 1's plaintext is withheld
  }
}

TEST_F(TamperTest, ReaderErrorsAreSticky) {
  std::string bad = sealed_;
  bad[Chunk(1) + 5] ^= 0x80;
  std::istringstream in(bad);
  auto reader = SealedReader::FromStream(in, K(key_));
  ASSERT_TRUE(reader.ok());
  ASSERT_TRUE((*reader)->NextChunk().ok());
  for (int i = 0; i < 3; ++i) {
    ExpectStatus((*reader)->NextChunk().status(), absl::StatusCode::kDataLoss,
                 "chunk 1 failed authentication");
    uint8_t buf[16];
    EXPECT_EQ((*reader)->Read(absl::MakeSpan(buf)).status().code(), absl::StatusCode::kDataLoss);
  }
  EXPECT_FALSE((*reader)->done());
}

// --- Header parser ------------------------------------------------------------------

TEST(ParseSealHeaderTest, NamesTheFieldAtFault) {
  const std::string prefix(8, 'p'), check(32, 'c');
  std::string good = EncodeHeader("a/b/c", 1, kSmall, prefix, check);
  size_t consumed = 0;
  ASSERT_TRUE(ParseSealHeader(good + "chunks", &consumed).ok());
  EXPECT_EQ(consumed, good.size());

  struct Case {
    std::string bytes;
    const char* field;
  } cases[] = {
      {"", "magic"},
      {"KBSSEAL2" + good.substr(8), "magic"},
      {EncodeHeader("a/b/c", 1, kSmall, prefix, check, 2), "format version"},
      {EncodeHeader("a/b/c", 1, kSmall, prefix, check, 1, 72), "header length"},
      {EncodeHeader("a/b/c", 1, kSmall, prefix, check, 1, 4097), "header length"},
      {EncodeHeader("a/b/c", 1, kSmall, prefix, check, 1, 74), "header length"},
      {EncodeHeader("a/b/c", 1, kSmall, prefix, check, 1, 0xffffffff), "header length"},
      {EncodeHeader("a/b/", 1, kSmall, prefix, check + "c", 1, 73), "resource path length"},
      {EncodeHeader("a/b/c/", 1, kSmall, prefix, check, 1, 73), "header length"},
      {EncodeHeader("a/b\n/c", 1, kSmall, prefix, check), "resource path"},
      {EncodeHeader("a/.b/c", 1, kSmall, prefix, check), "resource path"},
      {EncodeHeader("a/b/c", 1, kMinChunkSize - 1, prefix, check), "chunk size"},
      {EncodeHeader("a/b/c", 1, kMaxChunkSize + 1, prefix, check), "chunk size"},
      {good.substr(0, good.size() - 1), "header length"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.field);
    ExpectStatus(ParseSealHeader(c.bytes, &consumed).status(), absl::StatusCode::kInvalidArgument,
                 c.field);
  }
  // Every truncation of the header is refused, by the parser and by the
  // stream reader.
  for (size_t n = 0; n < good.size(); ++n) {
    EXPECT_FALSE(ParseSealHeader(good.substr(0, n), &consumed).ok()) << n;
    std::istringstream in(good.substr(0, n));
    EXPECT_EQ(ReadSealHeader(in).status().code(), absl::StatusCode::kInvalidArgument) << n;
  }
}

// --- Files ----------------------------------------------------------------------------

class SealedFileTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("sealed_test_", ::getpid(),
                        ::testing::UnitTest::GetInstance()->current_test_info()->name());
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    plain_path_ = (dir_ / "weights.bin").string();
    sealed_path_ = (dir_ / "weights.sealed").string();
    out_path_ = (dir_ / "weights.out").string();
    plain_ = Pattern(3 * kSmall + 100);
    Write(plain_path_, plain_);
    ASSERT_TRUE(SealFile(plain_path_, sealed_path_, K(key_), Options()).ok());
    sealed_ = Read(sealed_path_);
  }
  void TearDown() override { std::filesystem::remove_all(dir_); }

  static void Write(const std::string& path, absl::string_view data) {
    std::ofstream(path, std::ios::binary | std::ios::trunc).write(data.data(), data.size());
  }
  static std::string Read(const std::string& path) {
    std::ifstream in(path, std::ios::binary);
    return std::string(std::istreambuf_iterator<char>(in), {});
  }
  void ExpectNoOutput() {
    EXPECT_FALSE(std::filesystem::exists(out_path_));
    EXPECT_FALSE(std::filesystem::exists(out_path_ + ".partial"));
  }

  const std::string key_ = Key('k');
  std::filesystem::path dir_;
  std::string plain_path_, sealed_path_, out_path_, plain_, sealed_;
};

TEST_F(SealedFileTest, RoundTripWithPrivateModes) {
  auto header = PeekSealHeader(sealed_path_);
  ASSERT_TRUE(header.ok()) << header.status();
  EXPECT_EQ(header->resource_path, "models/llama/weights");
  ASSERT_TRUE(UnsealFile(sealed_path_, out_path_, K(key_)).ok());
  EXPECT_EQ(Read(out_path_), plain_);
  for (const std::string& p : {sealed_path_, out_path_}) {
    struct stat st;
    ASSERT_EQ(::stat(p.c_str(), &st), 0);
    EXPECT_EQ(st.st_mode & 0777, 0600u) << p;
  }
  EXPECT_FALSE(std::filesystem::exists(out_path_ + ".partial"));
  EXPECT_FALSE(std::filesystem::exists(sealed_path_ + ".partial"));

  auto reader = SealedReader::Open(sealed_path_, K(key_));
  ASSERT_TRUE(reader.ok()) << reader.status();
  std::string out;
  while (true) {
    auto chunk = (*reader)->NextChunk();
    ASSERT_TRUE(chunk.ok()) << chunk.status();
    if (chunk->empty()) break;
    out.append(reinterpret_cast<const char*>(chunk->data()), chunk->size());
  }
  EXPECT_EQ(out, plain_);
}

TEST_F(SealedFileTest, FailuresLeaveNoOutput) {
  size_t h = HeaderLength(sealed_);
  struct Case {
    const char* name;
    std::string bytes;
    std::string key;
    absl::StatusCode code;
  };
  std::vector<Case> cases = {
      {"wrong key", sealed_, Key('K'), absl::StatusCode::kUnauthenticated},
      {"not sealed", "plain text, not sealed", key_, absl::StatusCode::kInvalidArgument},
      {"trailing data", sealed_ + "x", key_, absl::StatusCode::kDataLoss},
      {"dropped final chunk", sealed_.substr(0, ChunkOffset(h, kSmall, 3)), key_,
       absl::StatusCode::kDataLoss},
  };
  for (size_t i = 0; i < 4; ++i) {
    std::string bad = sealed_;
    bad[ChunkOffset(h, kSmall, i) + 7] ^= 1;
    cases.push_back({"flipped byte", bad, key_, absl::StatusCode::kDataLoss});
    cases.push_back({"truncated", sealed_.substr(0, ChunkOffset(h, kSmall, i) + 50), key_,
                     absl::StatusCode::kDataLoss});
  }
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    Write(sealed_path_, c.bytes);
    EXPECT_EQ(UnsealFile(sealed_path_, out_path_, K(c.key)).code(), c.code);
    ExpectNoOutput();
  }
  EXPECT_EQ(UnsealFile((dir_ / "absent").string(), out_path_, K(key_)).code(),
            absl::StatusCode::kNotFound);
  ExpectNoOutput();
  EXPECT_EQ(SealFile((dir_ / "absent").string(), out_path_, K(key_), Options()).code(),
            absl::StatusCode::kNotFound);
  ExpectNoOutput();
}

TEST_F(SealedFileTest, FailureKeepsAnExistingDestination) {
  Write(out_path_, "previous weights");
  std::string bad = sealed_;
  bad.back() ^= 1;
  Write(sealed_path_, bad);
  EXPECT_EQ(UnsealFile(sealed_path_, out_path_, K(key_)).code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(Read(out_path_), "previous weights");
  EXPECT_FALSE(std::filesystem::exists(out_path_ + ".partial"));
}

TEST_F(SealedFileTest, StalePartialIsReplacedButALockedOneIsRefused) {
  std::string partial = out_path_ + ".partial";
  Write(partial, "left by a crash");
  ASSERT_TRUE(UnsealFile(sealed_path_, out_path_, K(key_)).ok());
  EXPECT_EQ(Read(out_path_), plain_);
  EXPECT_FALSE(std::filesystem::exists(partial));

  std::filesystem::remove(out_path_);
  Write(partial, "being written");
  int fd = ::open(partial.c_str(), O_RDONLY);
  ASSERT_GE(fd, 0);
  ASSERT_EQ(::flock(fd, LOCK_EX), 0);
  EXPECT_EQ(UnsealFile(sealed_path_, out_path_, K(key_)).code(),
            absl::StatusCode::kFailedPrecondition);
  EXPECT_EQ(Read(partial), "being written");
  EXPECT_FALSE(std::filesystem::exists(out_path_));
  ::close(fd);
}

// --- Streaming at scale -------------------------------------------------------------------

// Pseudo-random bytes as a function of their offset, so a sink can check
// what it receives without storing it.
void FillPattern(uint64_t offset, uint8_t* p, size_t n) {
  auto word = [](uint64_t i) {
    uint64_t z = i + 0x9e3779b97f4a7c15ull;
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    return z ^ (z >> 31);
  };
  while (n > 0 && (offset & 7) != 0) {
    *p++ = static_cast<uint8_t>(word(offset >> 3) >> (8 * (offset & 7)));
    ++offset;
    --n;
  }
  for (; n >= 8; n -= 8, p += 8, offset += 8) {
    uint64_t w = word(offset >> 3);
    std::memcpy(p, &w, 8);  // little-endian host: byte k is bits 8k..8k+7
  }
  for (; n > 0; --n, ++offset) {
    *p++ = static_cast<uint8_t>(word(offset >> 3) >> (8 * (offset & 7)));
  }
}

class PatternSource final : public std::streambuf {
 public:
  explicit PatternSource(uint64_t size) : size_(size) {}

 protected:
  std::streamsize xsgetn(char* s, std::streamsize n) override {
    size_t k = static_cast<size_t>(std::min<uint64_t>(n, size_ - offset_));
    FillPattern(offset_, reinterpret_cast<uint8_t*>(s), k);
    offset_ += k;
    return static_cast<std::streamsize>(k);
  }
  int_type underflow() override {
    if (offset_ == size_) return traits_type::eof();
    FillPattern(offset_, reinterpret_cast<uint8_t*>(&one_), 1);
    ++offset_;
    setg(&one_, &one_, &one_ + 1);
    return traits_type::to_int_type(one_);
  }

 private:
  uint64_t size_, offset_ = 0;
  char one_ = 0;
};

class PatternCheckSink final : public std::streambuf {
 public:
  uint64_t size() const { return offset_; }
  bool matches() const { return matches_; }

 protected:
  std::streamsize xsputn(const char* s, std::streamsize n) override {
    for (std::streamsize done = 0; done < n;) {
      size_t k = std::min<size_t>(expected_.size(), n - done);
      FillPattern(offset_, expected_.data(), k);
      matches_ = matches_ && std::memcmp(expected_.data(), s + done, k) == 0;
      offset_ += k;
      done += k;
    }
    return n;
  }
  int_type overflow(int_type c) override {
    if (traits_type::eq_int_type(c, traits_type::eof())) return traits_type::not_eof(c);
    char ch = traits_type::to_char_type(c);
    xsputn(&ch, 1);
    return c;
  }

 private:
  std::vector<uint8_t> expected_ = std::vector<uint8_t>(1 << 20);
  uint64_t offset_ = 0;
  bool matches_ = true;
};

long MaxRssKiB() {
  struct rusage ru;
  ::getrusage(RUSAGE_SELF, &ru);
  return ru.ru_maxrss;
}

// 4 GiB + 7 bytes (past every 32-bit byte count) sealed in one thread and
// unsealed in another through a pipe: no disk, and memory must stay flat.
TEST(SealedStreamingTest, MultiGibRoundTripInBoundedMemory) {
  constexpr uint64_t kSize = (uint64_t{4} << 30) + 7;
  const std::string key = Key('s');
  int fds[2];
  ASSERT_EQ(::pipe(fds), 0);
  // If the reader stops early, the sealer's writes fail instead of blocking
  // or killing the test.
  std::signal(SIGPIPE, SIG_IGN);
  long rss_before = MaxRssKiB();
  auto start = std::chrono::steady_clock::now();

  absl::Status seal_status;
  std::thread sealer([&] {
    PatternSource source(kSize);
    std::istream in(&source);
    __gnu_cxx::stdio_filebuf<char> pipe_out(fds[1], std::ios::out, 1 << 16);
    std::ostream out(&pipe_out);
    SealOptions options{"models/llama/weights", 1, kDefaultChunkSize};
    seal_status = Seal(in, out, K(key), options);
    out.flush();
    pipe_out.close();  // closes fds[1]: the reader sees the end
  });

  __gnu_cxx::stdio_filebuf<char> pipe_in(fds[0], std::ios::in, 1 << 16);
  std::istream in(&pipe_in);
  PatternCheckSink sink;
  std::ostream out(&sink);
  absl::Status unseal_status = Unseal(in, out, K(key));
  pipe_in.close();
  sealer.join();
  double seconds = std::chrono::duration<double>(std::chrono::steady_clock::now() - start).count();
  long rss_growth_kib = MaxRssKiB() - rss_before;

  EXPECT_TRUE(seal_status.ok()) << seal_status;
  EXPECT_TRUE(unseal_status.ok()) << unseal_status;
  EXPECT_EQ(sink.size(), kSize);
  EXPECT_TRUE(sink.matches());
  EXPECT_LT(rss_growth_kib, 64 << 10);
  std::printf("[ info ] 4 GiB sealed+unsealed through a pipe in %.2f s, peak RSS growth %ld KiB\n",
              seconds, rss_growth_kib);
}

}  // namespace
}  // namespace kbs::sealed
