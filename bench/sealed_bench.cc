// Throughput of sealed files (kbs/sealed) on one core: Seal and Unseal of a
// 256 MiB in-memory stream by chunk size, the same through the file helpers
// (page cache, fsync included), and raw AES-256-GCM over the same buffer as
// the ceiling. Reported as bytes/s of plaintext.
#include <benchmark/benchmark.h>
#include <openssl/evp.h>

#include <cstring>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <streambuf>
#include <string>

#include "common/crypto.h"
#include "common/openssl_util.h"
#include "kbs/sealed/sealed.h"

namespace {

namespace sealed = kbs::sealed;

constexpr size_t kSize = size_t{256} << 20;

const std::string& Key() {
  static const std::string* const kKey = new std::string(32, 'k');
  return *kKey;
}
absl::Span<const uint8_t> KeySpan() { return kbs::common::AsSpan(Key()); }

const std::string& Plaintext() {
  static const std::string* const kPlain = [] {
    auto* s = new std::string(kSize, '\0');
    uint64_t x = 0x9e3779b97f4a7c15ull;
    for (size_t i = 0; i + 8 <= s->size(); i += 8) {
      x ^= x << 13;
      x ^= x >> 7;
      x ^= x << 17;
      std::memcpy(s->data() + i, &x, 8);
    }
    return s;
  }();
  return *kPlain;
}

// Reads a buffer in place (no copy into the stream).
class MemoryIn final : public std::streambuf {
 public:
  explicit MemoryIn(const std::string& s) {
    char* p = const_cast<char*>(s.data());
    setg(p, p, p + s.size());
  }
};

// Accepts and drops everything.
class NullOut final : public std::streambuf {
 protected:
  std::streamsize xsputn(const char*, std::streamsize n) override { return n; }
  int_type overflow(int_type c) override { return traits_type::not_eof(c); }
};

sealed::SealOptions Options(int64_t chunk_size) {
  return {"models/bench/weights", 1, static_cast<uint32_t>(chunk_size)};
}

void BM_Seal(benchmark::State& state) {
  const std::string& plain = Plaintext();
  for (auto _ : state) {
    MemoryIn in_buf(plain);
    std::istream in(&in_buf);
    NullOut out_buf;
    std::ostream out(&out_buf);
    absl::Status s = sealed::Seal(in, out, KeySpan(), Options(state.range(0)));
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}

void BM_Unseal(benchmark::State& state) {
  std::string ciphertext;
  {
    MemoryIn in_buf(Plaintext());
    std::istream in(&in_buf);
    std::ostringstream out;
    if (!sealed::Seal(in, out, KeySpan(), Options(state.range(0))).ok()) {
      state.SkipWithError("seal failed");
      return;
    }
    ciphertext = std::move(out).str();
  }
  for (auto _ : state) {
    MemoryIn in_buf(ciphertext);
    std::istream in(&in_buf);
    NullOut out_buf;
    std::ostream out(&out_buf);
    absl::Status s = sealed::Unseal(in, out, KeySpan());
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}

// The ceiling: EVP AES-256-GCM in place over the same bytes, same chunking,
// no I/O.
void BM_RawAesGcm(benchmark::State& state) {
  std::string buf = Plaintext();
  const size_t chunk = static_cast<size_t>(state.range(0));
  kbs::common::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  EVP_EncryptInit_ex2(ctx.get(), EVP_aes_256_gcm(), KeySpan().data(), nullptr, nullptr);
  uint8_t iv[12] = {0}, tag[16];
  auto* p = reinterpret_cast<uint8_t*>(buf.data());
  for (auto _ : state) {
    for (size_t off = 0; off < kSize; off += chunk) {
      int len = 0;
      ++iv[11];
      EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, iv, nullptr);
      EVP_EncryptUpdate(ctx.get(), p + off, &len, p + off, static_cast<int>(chunk));
      EVP_EncryptFinal_ex(ctx.get(), tag, &len);
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, tag);
    }
    benchmark::DoNotOptimize(tag);
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}

// Through the file helpers, in the temp directory (page cache; each
// iteration fsyncs its output, so this measures the disk too).
struct TempFiles {
  TempFiles() {
    dir = std::filesystem::temp_directory_path() / "kbs_sealed_bench";
    std::filesystem::create_directories(dir);
    plain = (dir / "plain").string();
    sealed_path = (dir / "sealed").string();
    out = (dir / "out").string();
    std::ofstream(plain, std::ios::binary).write(Plaintext().data(), Plaintext().size());
  }
  ~TempFiles() { std::filesystem::remove_all(dir); }
  std::filesystem::path dir;
  std::string plain, sealed_path, out;
};

void BM_SealFile(benchmark::State& state) {
  TempFiles files;
  for (auto _ : state) {
    absl::Status s =
        sealed::SealFile(files.plain, files.sealed_path, KeySpan(), Options(state.range(0)));
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}

void BM_UnsealFile(benchmark::State& state) {
  TempFiles files;
  if (!sealed::SealFile(files.plain, files.sealed_path, KeySpan(), Options(state.range(0))).ok()) {
    state.SkipWithError("seal failed");
    return;
  }
  for (auto _ : state) {
    absl::Status s = sealed::UnsealFile(files.sealed_path, files.out, KeySpan());
    if (!s.ok()) state.SkipWithError(s.ToString().c_str());
  }
  state.SetBytesProcessed(static_cast<int64_t>(state.iterations()) * kSize);
}

void ChunkSizes(benchmark::internal::Benchmark* b) {
  b->ArgName("chunk")->Arg(64 << 10)->Arg(1 << 20)->Arg(4 << 20)->Arg(16 << 20);
  b->Unit(benchmark::kMillisecond);
}

BENCHMARK(BM_RawAesGcm)->Apply(ChunkSizes);
BENCHMARK(BM_Seal)->Apply(ChunkSizes);
BENCHMARK(BM_Unseal)->Apply(ChunkSizes);
BENCHMARK(BM_SealFile)
    ->Arg(4 << 20)
    ->ArgName("chunk")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();
BENCHMARK(BM_UnsealFile)
    ->Arg(4 << 20)
    ->ArgName("chunk")
    ->Unit(benchmark::kMillisecond)
    ->UseRealTime();

}  // namespace

BENCHMARK_MAIN();
