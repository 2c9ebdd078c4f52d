// Sealed files: model weights (or any large blob) encrypted with a KBS
// resource key in fixed-size AES-256-GCM chunks, streamed in constant memory
// (two chunk buffers), so files larger than RAM seal and unseal. A workload
// reads the header (PeekSealHeader), fetches the key it names from the KBS,
// then unseals; it only ever sees plaintext whose chunk has authenticated.
//
// Format v1 (docs/sealing.md is the reference; integers are big-endian):
//
//   offset  size  field
//   0       8     magic "KBSSEAL1"
//   8       2     format version = 1
//   10      4     header length H = 68 + P (the whole header, magic included)
//   14      2     resource path length P (5..512)
//   16      P     resource path "repo/type/tag" (kbs/core/protocol.h grammar)
//   16+P    8     key version
//   24+P    4     chunk size C (4 KiB .. 64 MiB, default 4 MiB)
//   28+P    8     nonce prefix (random per file)
//   36+P    32    key check = HMAC-SHA256(key, "kbs-sealed key check" ||
//                 header bytes [0, 36+P))
//   H       ...   chunks 0..n-1, each AES-256-GCM(key, nonce, aad, plaintext)
//                 = ciphertext || 16-byte tag, with
//                 nonce = nonce prefix || u32 chunk index
//                 aad   = SHA-256(header bytes [0, H)) || u64 chunk index ||
//                         u8 final (1 on the last chunk, else 0)
//
// Every chunk but the last holds exactly C plaintext bytes; the last holds
// 0..C (empty only for an empty plaintext). There is no plaintext length:
// the last chunk is the one that ends the file, and its final flag proves
// it. At most 2^32 chunks. The key check makes a wrong key (or an edited
// header) fail before any output, distinct from a corrupted chunk.
#ifndef KBS_KBS_SEALED_SEALED_H_
#define KBS_KBS_SEALED_SEALED_H_

#include <cstdint>
#include <istream>
#include <memory>
#include <ostream>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/bytes.h"
#include "common/openssl_util.h"

namespace kbs::sealed {

inline constexpr absl::string_view kMagic = "KBSSEAL1";
inline constexpr uint16_t kFormatVersion = 1;
inline constexpr size_t kKeySize = 32;
inline constexpr size_t kTagSize = 16;
inline constexpr size_t kNoncePrefixSize = 8;
inline constexpr size_t kKeyCheckSize = 32;
inline constexpr uint32_t kMinChunkSize = 4 << 10;
inline constexpr uint32_t kMaxChunkSize = 64 << 20;
inline constexpr uint32_t kDefaultChunkSize = 4 << 20;
inline constexpr uint64_t kMaxChunks = uint64_t{1} << 32;
// Readers refuse a declared header length above this before reading it.
inline constexpr uint32_t kMaxHeaderSize = 4096;

struct SealHeader {
  uint16_t version = kFormatVersion;
  std::string resource_path;  // "repo/type/tag"
  uint64_t key_version = 0;
  uint32_t chunk_size = 0;
  std::string nonce_prefix;  // kNoncePrefixSize bytes
  std::string key_check;     // kKeyCheckSize bytes
  std::string raw;           // the header's exact bytes, as hashed into each chunk's AAD
};

// Parses the header at the start of `bytes` (which may continue with
// chunks) and sets `*consumed` to its length. Bounds-checked; does not check
// the key. InvalidArgument naming the field (and offset) at fault.
absl::StatusOr<SealHeader> ParseSealHeader(absl::string_view bytes, size_t* consumed);

// Reads exactly the header from `in`, leaving it at chunk 0. InvalidArgument
// for a malformed or short header, Unavailable when the stream fails.
absl::StatusOr<SealHeader> ReadSealHeader(std::istream& in);
// Reads only the header of the file at `path` (to learn which resource and
// key version to fetch). Also NotFound / PermissionDenied for the file.
absl::StatusOr<SealHeader> PeekSealHeader(const std::string& path);

struct SealOptions {
  std::string resource_path;  // "repo/type/tag" of the key
  uint64_t key_version = 0;
  uint32_t chunk_size = kDefaultChunkSize;
};

// Seals `in` (read to its end) into `out`. `key` is 32 bytes. InvalidArgument
// for a bad key, options, or an input of more than 2^32 chunks; Unavailable
// when a stream fails (then `out` holds an incomplete, unusable file).
absl::Status Seal(std::istream& in, std::ostream& out, absl::Span<const uint8_t> key,
                  const SealOptions& options);

// Unseals `in` into `out`, writing each chunk once it authenticates. On an
// error `out` may already hold a verified prefix of the plaintext that the
// caller must discard (UnsealFile does). Errors:
//   InvalidArgument  malformed header, or a key that is not 32 bytes;
//   Unauthenticated  "wrong key for this sealed file (key check failed)":
//                    the key (or an edited header) fails the key check;
//   DataLoss         "chunk i failed authentication" (corrupted, reordered or
//                    spliced chunk), "truncated: no final chunk", or
//                    "data after the final chunk";
//   Unavailable      a stream failed.
absl::Status Unseal(std::istream& in, std::ostream& out, absl::Span<const uint8_t> key);

// File forms: the output is written to "<out_path>.partial" (created fresh,
// mode 0600), fsynced and renamed to `out_path` only after the final chunk;
// on any error the partial file is removed and `out_path` is untouched. An
// existing `out_path` is replaced on success. A "<out_path>.partial" left by
// a crash is replaced; one another process is writing (flock) is refused
// with FailedPrecondition. UnsealFile checks the key before creating any
// file. Same errors as above, plus NotFound / PermissionDenied / Unavailable
// for the files.
absl::Status SealFile(const std::string& in_path, const std::string& out_path,
                      absl::Span<const uint8_t> key, const SealOptions& options);
absl::Status UnsealFile(const std::string& in_path, const std::string& out_path,
                        absl::Span<const uint8_t> key);

namespace internal {
class ByteSource;
}  // namespace internal

// Incremental reader for workloads that consume weights in-process: hands
// out verified plaintext chunk by chunk and never an unverified byte. The
// key is checked when the reader is created. An error is sticky: every later
// call returns it. Not thread-safe; use one reader per thread.
class SealedReader final {
 public:
  // Opens the sealed file at `path`.
  static absl::StatusOr<std::unique_ptr<SealedReader>> Open(const std::string& path,
                                                            absl::Span<const uint8_t> key);
  // Reads from `in` positioned at the header; `in` must outlive the reader.
  static absl::StatusOr<std::unique_ptr<SealedReader>> FromStream(std::istream& in,
                                                                  absl::Span<const uint8_t> key);
  // As above when the header was already consumed by ReadSealHeader(in).
  static absl::StatusOr<std::unique_ptr<SealedReader>> FromStream(std::istream& in,
                                                                  const SealHeader& header,
                                                                  absl::Span<const uint8_t> key);
  ~SealedReader();
  SealedReader(const SealedReader&) = delete;
  SealedReader& operator=(const SealedReader&) = delete;

  const SealHeader& header() const { return header_; }

  // Copies up to `buffer.size()` verified bytes (never past the current
  // chunk) and returns how many; 0 only at the end, after the final chunk
  // authenticated (or for an empty buffer). Errors as Unseal.
  absl::StatusOr<size_t> Read(absl::Span<uint8_t> buffer);
  // The rest of the current chunk, or the next one once it authenticates,
  // without copying; valid until the next call. Empty only at the end.
  absl::StatusOr<absl::Span<const uint8_t>> NextChunk();
  // True once the final chunk has authenticated and been consumed.
  bool done() const { return state_ == State::kDone && pos_ == len_; }
  // Verified plaintext bytes handed out so far.
  uint64_t bytes_read() const { return bytes_read_; }

 private:
  enum class State { kReading, kDone, kFailed };
  SealedReader(std::unique_ptr<internal::ByteSource> source, SealHeader header);
  static absl::StatusOr<std::unique_ptr<SealedReader>> Create(
      std::unique_ptr<internal::ByteSource> source, const SealHeader& header,
      absl::Span<const uint8_t> key);
  absl::Status LoadNextChunk();
  // Decrypts the loaded chunk with `final`; false when it fails to authenticate.
  absl::StatusOr<bool> OpenChunk(size_t ciphertext_len, bool final);

  std::unique_ptr<internal::ByteSource> source_;
  SealHeader header_;
  std::string header_hash_;
  common::EvpCipherCtxPtr ctx_;
  common::Bytes ciphertext_;   // chunk_size + tag
  common::SecretBytes plain_;  // chunk_size
  uint64_t index_ = 0;         // next chunk to load
  size_t pos_ = 0, len_ = 0;   // unconsumed verified bytes in plain_
  uint64_t bytes_read_ = 0;
  State state_ = State::kReading;
  absl::Status error_;
};

}  // namespace kbs::sealed

#endif  // KBS_KBS_SEALED_SEALED_H_
