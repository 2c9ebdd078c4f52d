#include "kbs/sealed/sealed.h"

#include <fcntl.h>
#include <openssl/core_names.h>
#include <openssl/crypto.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <sys/file.h>
#include <sys/stat.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstring>
#include <utility>
#include <vector>

#include "absl/memory/memory.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/resource_path.h"
#include "common/status_macros.h"

namespace kbs::sealed {
namespace internal {

// A byte source with a one-byte lookahead, so a reader can tell whether a
// full chunk is the last one without buffering a second chunk.
class ByteSource {
 public:
  virtual ~ByteSource() = default;

  // Reads until `n` bytes or the end of input; returns how many were read.
  absl::StatusOr<size_t> ReadFull(uint8_t* p, size_t n) {
    size_t got = 0;
    if (n > 0 && pending_ >= 0) {
      p[0] = static_cast<uint8_t>(pending_);
      pending_ = -1;
      got = 1;
    }
    while (got < n) {
      KBS_ASSIGN_OR_RETURN(size_t k, ReadSome(p + got, n - got));
      if (k == 0) break;
      got += k;
    }
    return got;
  }

  // True when no byte remains.
  absl::StatusOr<bool> AtEnd() {
    if (pending_ >= 0) return false;
    uint8_t b = 0;
    KBS_ASSIGN_OR_RETURN(size_t k, ReadSome(&b, 1));
    if (k == 0) return true;
    pending_ = b;
    return false;
  }

 protected:
  // Reads 1..n bytes, or 0 only at the end of input.
  virtual absl::StatusOr<size_t> ReadSome(uint8_t* p, size_t n) = 0;

 private:
  int pending_ = -1;
};

}  // namespace internal

namespace {

using internal::ByteSource;

constexpr absl::string_view kKeyCheckLabel = "kbs-sealed key check";
constexpr size_t kPreambleSize = 14;     // magic, version, header length
constexpr size_t kFixedHeaderSize = 68;  // everything but the resource path
constexpr size_t kMinPathSize = 5;       // "a/b/c"
constexpr size_t kMaxPathSize = common::kMaxResourcePathBytes;
constexpr size_t kNonceSize = 12;
constexpr size_t kAadSize = 32 + 8 + 1;

absl::Status ErrnoError(absl::string_view what, const std::string& path) {
  int err = errno;
  std::string message = absl::StrCat(what, " ", path, ": ", std::strerror(err));
  if (err == ENOENT) return absl::NotFoundError(message);
  if (err == EACCES || err == EPERM) return absl::PermissionDeniedError(message);
  return absl::UnavailableError(message);
}

// --- Sources and sinks ------------------------------------------------------

class IstreamSource final : public ByteSource {
 public:
  explicit IstreamSource(std::istream& in) : in_(in) {}

 protected:
  absl::StatusOr<size_t> ReadSome(uint8_t* p, size_t n) override {
    in_.read(reinterpret_cast<char*>(p), static_cast<std::streamsize>(n));
    size_t got = static_cast<size_t>(in_.gcount());
    // Short reads set failbit with eofbit; only badbit is an I/O error.
    if (in_.bad()) return absl::UnavailableError("reading the sealed input stream failed");
    return got;
  }

 private:
  std::istream& in_;
};

class FdSource final : public ByteSource {
 public:
  static absl::StatusOr<std::unique_ptr<FdSource>> Open(const std::string& path) {
    int fd = ::open(path.c_str(), O_RDONLY | O_CLOEXEC);
    if (fd < 0) return ErrnoError("cannot open", path);
    return absl::WrapUnique(new FdSource(fd, path));
  }
  ~FdSource() override { ::close(fd_); }

 protected:
  absl::StatusOr<size_t> ReadSome(uint8_t* p, size_t n) override {
    while (true) {
      ssize_t k = ::read(fd_, p, n);
      if (k >= 0) return static_cast<size_t>(k);
      if (errno != EINTR) return ErrnoError("cannot read", path_);
    }
  }

 private:
  FdSource(int fd, std::string path) : fd_(fd), path_(std::move(path)) {}
  int fd_;
  std::string path_;
};

class ByteSink {
 public:
  virtual ~ByteSink() = default;
  virtual absl::Status Write(const uint8_t* p, size_t n) = 0;
  virtual absl::Status Flush() = 0;
};

class OstreamSink final : public ByteSink {
 public:
  explicit OstreamSink(std::ostream& out) : out_(out) {}
  absl::Status Write(const uint8_t* p, size_t n) override {
    out_.write(reinterpret_cast<const char*>(p), static_cast<std::streamsize>(n));
    if (!out_) return absl::UnavailableError("writing the output stream failed");
    return absl::OkStatus();
  }
  absl::Status Flush() override {
    if (!out_.flush()) return absl::UnavailableError("flushing the output stream failed");
    return absl::OkStatus();
  }

 private:
  std::ostream& out_;
};

bool SameFile(int fd, const std::string& path) {
  struct stat a, b;
  return ::fstat(fd, &a) == 0 && ::lstat(path.c_str(), &b) == 0 && a.st_dev == b.st_dev &&
         a.st_ino == b.st_ino;
}

// "<final>.partial", created fresh with mode 0600 and flock'ed for its whole
// life. Only the lock holder renames or removes the inode at that path, so a
// partial file left by a crash (unlocked) is replaced, while one that another
// process is writing is refused rather than clobbered. Removed on
// destruction unless committed.
class PartialFile final : public ByteSink {
 public:
  static absl::StatusOr<std::unique_ptr<PartialFile>> Create(const std::string& final_path) {
    std::string partial = absl::StrCat(final_path, ".partial");
    for (int attempt = 0; attempt < 4; ++attempt) {
      int fd = ::open(partial.c_str(), O_WRONLY | O_CREAT | O_EXCL | O_NOFOLLOW | O_CLOEXEC, 0600);
      if (fd >= 0) {
        // Someone removing a stale file may have taken the lock (or removed
        // the path) between our create and our lock: start over.
        if (::flock(fd, LOCK_EX | LOCK_NB) == 0 && SameFile(fd, partial)) {
          return absl::WrapUnique(new PartialFile(fd, partial, final_path));
        }
        ::close(fd);
        continue;
      }
      if (errno != EEXIST) return ErrnoError("cannot create", partial);
      int stale = ::open(partial.c_str(), O_RDONLY | O_NOFOLLOW | O_CLOEXEC);
      if (stale < 0) {
        if (errno == ENOENT) continue;
        return ErrnoError("cannot open", partial);
      }
      if (::flock(stale, LOCK_EX | LOCK_NB) != 0) {
        ::close(stale);
        return absl::FailedPreconditionError(
            absl::StrCat(partial, " is being written by another process"));
      }
      if (SameFile(stale, partial)) ::unlink(partial.c_str());
      ::close(stale);
    }
    return absl::UnavailableError(absl::StrCat("cannot create ", partial, ": contended"));
  }

  ~PartialFile() override {
    if (fd_ < 0) return;
    if (SameFile(fd_, partial_)) ::unlink(partial_.c_str());
    ::close(fd_);
  }

  absl::Status Write(const uint8_t* p, size_t n) override {
    while (n > 0) {
      ssize_t k = ::write(fd_, p, n);
      if (k < 0) {
        if (errno == EINTR) continue;
        return ErrnoError("cannot write", partial_);
      }
      p += k;
      n -= static_cast<size_t>(k);
    }
    return absl::OkStatus();
  }
  absl::Status Flush() override { return absl::OkStatus(); }

  // fsync, then rename to the final path (still holding the lock), then
  // fsync the directory so the rename survives a crash.
  absl::Status Commit() {
    if (::fsync(fd_) != 0) return ErrnoError("cannot fsync", partial_);
    if (!SameFile(fd_, partial_)) {
      return absl::UnavailableError(absl::StrCat(partial_, " was replaced while being written"));
    }
    if (::rename(partial_.c_str(), final_.c_str()) != 0) {
      return ErrnoError("cannot rename to", final_);
    }
    ::close(fd_);
    fd_ = -1;
    std::string dir = final_.substr(0, final_.find_last_of('/') + 1);
    int dfd = ::open(dir.empty() ? "." : dir.c_str(), O_RDONLY | O_DIRECTORY | O_CLOEXEC);
    if (dfd >= 0) {
      ::fsync(dfd);  // best effort: the data itself is already durable
      ::close(dfd);
    }
    return absl::OkStatus();
  }

 private:
  PartialFile(int fd, std::string partial, std::string final_path)
      : fd_(fd), partial_(std::move(partial)), final_(std::move(final_path)) {}
  int fd_;
  std::string partial_, final_;
};

// --- Encoding helpers ---------------------------------------------------------

void StoreBe(uint8_t* p, uint64_t v, size_t n) {
  for (size_t i = 0; i < n; ++i) p[i] = static_cast<uint8_t>(v >> (8 * (n - 1 - i)));
}
void AppendBe(std::string& s, uint64_t v, size_t n) {
  uint8_t b[8];
  StoreBe(b, v, n);
  s.append(reinterpret_cast<const char*>(b), n);
}

// The bounds-checked cursor is common::ByteReader; the format's integers are
// big-endian, so they are read as byte strings and decoded here.
absl::StatusOr<uint64_t> ReadBe(common::ByteReader& r, size_t n, absl::string_view what) {
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> b, r.Bytes(n, what));
  uint64_t v = 0;
  for (uint8_t x : b) v = (v << 8) | x;
  return v;
}

absl::Status CheckKey(absl::Span<const uint8_t> key) {
  if (key.size() != kKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("sealing key must be ", kKeySize, " bytes (AES-256), got ", key.size()));
  }
  return absl::OkStatus();
}

// Magic, version and header length; returns the header length.
absl::StatusOr<uint32_t> ParsePreamble(common::ByteReader& r) {
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> magic, r.Bytes(kMagic.size(), "magic"));
  if (common::AsStringView(magic) != kMagic) {
    return absl::InvalidArgumentError("magic: not a sealed file (no \"KBSSEAL1\" at offset 0)");
  }
  KBS_ASSIGN_OR_RETURN(uint64_t version, ReadBe(r, 2, "format version"));
  if (version != kFormatVersion) {
    return absl::InvalidArgumentError(
        absl::StrCat("format version: ", version,
                     " at offset 8 is not supported (this build reads ", kFormatVersion, ")"));
  }
  KBS_ASSIGN_OR_RETURN(uint64_t length, ReadBe(r, 4, "header length"));
  if (length < kFixedHeaderSize + kMinPathSize || length > kMaxHeaderSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("header length: ", length, " at offset 10 is outside [",
                     kFixedHeaderSize + kMinPathSize, ", ", kMaxHeaderSize, "]"));
  }
  return static_cast<uint32_t>(length);
}

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const kCipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return kCipher;
}

EVP_MAC* Hmac() {
  static EVP_MAC* const kMac = EVP_MAC_fetch(nullptr, "HMAC", nullptr);
  return kMac;
}

using EvpMacCtxPtr =
    std::unique_ptr<EVP_MAC_CTX, common::OpenSslDeleter<EVP_MAC_CTX, EVP_MAC_CTX_free>>;

// HMAC-SHA256(key, label || header bytes before the key check).
absl::StatusOr<std::string> ComputeKeyCheck(absl::Span<const uint8_t> key,
                                            absl::string_view header_prefix) {
  EvpMacCtxPtr ctx(EVP_MAC_CTX_new(Hmac()));
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {OSSL_PARAM_construct_utf8_string(OSSL_MAC_PARAM_DIGEST, digest, 0),
                         OSSL_PARAM_construct_end()};
  std::string out(kKeyCheckSize, '\0');
  size_t len = 0;
  if (!ctx || EVP_MAC_init(ctx.get(), key.data(), key.size(), params) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const uint8_t*>(kKeyCheckLabel.data()),
                     kKeyCheckLabel.size()) != 1 ||
      EVP_MAC_update(ctx.get(), reinterpret_cast<const uint8_t*>(header_prefix.data()),
                     header_prefix.size()) != 1 ||
      EVP_MAC_final(ctx.get(), reinterpret_cast<uint8_t*>(out.data()), &len, out.size()) != 1 ||
      len != kKeyCheckSize) {
    return common::OpenSslError("HMAC-SHA256 key check failed");
  }
  return out;
}

absl::StatusOr<common::EvpCipherCtxPtr> NewGcmContext(absl::Span<const uint8_t> key, bool encrypt) {
  common::EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  // The key schedule is set once; each chunk only sets its nonce.
  if (!ctx || EVP_CipherInit_ex2(ctx.get(), Aes256Gcm(), key.data(), nullptr, encrypt ? 1 : 0,
                                 nullptr) != 1) {
    return common::OpenSslError("AES-256-GCM initialisation failed");
  }
  return ctx;
}

struct ChunkParams {
  uint8_t nonce[kNonceSize];
  uint8_t aad[kAadSize];
};

ChunkParams MakeChunkParams(absl::string_view nonce_prefix, absl::string_view header_hash,
                            uint64_t index, bool final) {
  ChunkParams p;
  std::memcpy(p.nonce, nonce_prefix.data(), kNoncePrefixSize);
  StoreBe(p.nonce + kNoncePrefixSize, index, 4);
  std::memcpy(p.aad, header_hash.data(), 32);
  StoreBe(p.aad + 32, index, 8);
  p.aad[40] = final ? 1 : 0;
  return p;
}

absl::Status ValidateSealInputs(absl::Span<const uint8_t> key, const SealOptions& options) {
  KBS_RETURN_IF_ERROR(CheckKey(key));
  if (!common::IsValidResourcePath(options.resource_path)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "resource path \"", absl::CHexEscape(options.resource_path),
        "\" is not repo/type/tag (segments of [A-Za-z0-9_.-], none starting with '.')"));
  }
  if (options.chunk_size < kMinChunkSize || options.chunk_size > kMaxChunkSize) {
    return absl::InvalidArgumentError(absl::StrCat("chunk size ", options.chunk_size,
                                                   " is outside [", kMinChunkSize, ", ",
                                                   kMaxChunkSize, "]"));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> BuildHeader(absl::Span<const uint8_t> key, const SealOptions& options,
                                        absl::string_view nonce_prefix) {
  std::string h;
  h.reserve(kFixedHeaderSize + options.resource_path.size());
  h.append(kMagic.data(), kMagic.size());
  AppendBe(h, kFormatVersion, 2);
  AppendBe(h, kFixedHeaderSize + options.resource_path.size(), 4);
  AppendBe(h, options.resource_path.size(), 2);
  h.append(options.resource_path);
  AppendBe(h, options.key_version, 8);
  AppendBe(h, options.chunk_size, 4);
  h.append(nonce_prefix.data(), nonce_prefix.size());
  KBS_ASSIGN_OR_RETURN(std::string check, ComputeKeyCheck(key, h));
  h.append(check);
  return h;
}

absl::Status SealImpl(ByteSource& in, ByteSink& out, absl::Span<const uint8_t> key,
                      const SealOptions& options) {
  KBS_RETURN_IF_ERROR(ValidateSealInputs(key, options));
  KBS_ASSIGN_OR_RETURN(std::string nonce_prefix, common::RandomString(kNoncePrefixSize));
  KBS_ASSIGN_OR_RETURN(std::string header, BuildHeader(key, options, nonce_prefix));
  std::string header_hash = common::Sha256(header);
  KBS_ASSIGN_OR_RETURN(common::EvpCipherCtxPtr ctx, NewGcmContext(key, /*encrypt=*/true));
  KBS_RETURN_IF_ERROR(out.Write(reinterpret_cast<const uint8_t*>(header.data()), header.size()));

  const size_t chunk_size = options.chunk_size;
  // One buffer: each chunk is read, encrypted in place and its tag appended.
  common::SecretBytes buf(chunk_size + kTagSize);
  for (uint64_t index = 0;; ++index) {
    KBS_ASSIGN_OR_RETURN(size_t n, in.ReadFull(buf.data(), chunk_size));
    bool final = n < chunk_size;
    if (!final) {
      KBS_ASSIGN_OR_RETURN(final, in.AtEnd());
    }
    if (!final && index + 1 >= kMaxChunks) {
      return absl::InvalidArgumentError(absl::StrCat("input exceeds 2^32 chunks of ", chunk_size,
                                                     " bytes; use a larger chunk size"));
    }
    ChunkParams p = MakeChunkParams(nonce_prefix, header_hash, index, final);
    int len = 0;
    if (EVP_EncryptInit_ex2(ctx.get(), nullptr, nullptr, p.nonce, nullptr) != 1 ||
        EVP_EncryptUpdate(ctx.get(), nullptr, &len, p.aad, kAadSize) != 1 ||
        (n > 0 &&
         EVP_EncryptUpdate(ctx.get(), buf.data(), &len, buf.data(), static_cast<int>(n)) != 1) ||
        EVP_EncryptFinal_ex(ctx.get(), buf.data() + n, &len) != 1 ||
        EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, kTagSize, buf.data() + n) != 1) {
      return common::OpenSslError(absl::StrCat("sealing chunk ", index, " failed"));
    }
    KBS_RETURN_IF_ERROR(out.Write(buf.data(), n + kTagSize));
    if (final) break;
  }
  return out.Flush();
}

// A stream that failed before we start (say, an ifstream that did not open)
// would otherwise read as empty input and seal into a valid empty file.
absl::Status CheckStreams(const std::istream& in, const std::ostream& out) {
  if (!in) return absl::InvalidArgumentError("input stream is in a failed state (not open?)");
  if (!out) return absl::InvalidArgumentError("output stream is in a failed state (not open?)");
  return absl::OkStatus();
}

absl::StatusOr<SealHeader> ReadHeaderImpl(ByteSource& in) {
  std::string buf(kPreambleSize, '\0');
  size_t consumed = 0;
  KBS_ASSIGN_OR_RETURN(size_t n,
                       in.ReadFull(reinterpret_cast<uint8_t*>(buf.data()), kPreambleSize));
  if (n < kPreambleSize) {
    buf.resize(n);
    absl::StatusOr<SealHeader> short_header = ParseSealHeader(buf, &consumed);
    if (!short_header.ok()) return short_header.status();
    return absl::InvalidArgumentError("header: truncated");
  }
  common::ByteReader r(common::AsSpan(buf));
  KBS_ASSIGN_OR_RETURN(uint32_t length, ParsePreamble(r));
  buf.resize(length);
  KBS_ASSIGN_OR_RETURN(
      size_t rest,
      in.ReadFull(reinterpret_cast<uint8_t*>(buf.data()) + kPreambleSize, length - kPreambleSize));
  // A short header is reported by the parser, naming the field it cuts.
  buf.resize(kPreambleSize + rest);
  return ParseSealHeader(buf, &consumed);
}

}  // namespace

absl::StatusOr<SealHeader> ParseSealHeader(absl::string_view bytes, size_t* consumed) {
  common::ByteReader pre(common::AsSpan(bytes));
  KBS_ASSIGN_OR_RETURN(uint32_t length, ParsePreamble(pre));
  if (length > bytes.size()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "header length: ", length, " at offset 10 exceeds the ", bytes.size(), " bytes available"));
  }
  common::ByteReader r(common::AsSpan(bytes.substr(0, length)));
  KBS_RETURN_IF_ERROR(r.Skip(kPreambleSize, "preamble"));
  SealHeader h;
  h.version = kFormatVersion;
  KBS_ASSIGN_OR_RETURN(uint64_t path_size, ReadBe(r, 2, "resource path length"));
  if (path_size < kMinPathSize || path_size > kMaxPathSize) {
    return absl::InvalidArgumentError(absl::StrCat("resource path length: ", path_size,
                                                   " at offset 14 is outside [", kMinPathSize, ", ",
                                                   kMaxPathSize, "]"));
  }
  if (length != kFixedHeaderSize + path_size) {
    return absl::InvalidArgumentError(
        absl::StrCat("header length: ", length, " at offset 10 does not match the fields (",
                     kFixedHeaderSize, " + resource path length ", path_size, ")"));
  }
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> path, r.Bytes(path_size, "resource path"));
  h.resource_path = common::ToString(path);
  if (!common::IsValidResourcePath(h.resource_path)) {
    return absl::InvalidArgumentError(absl::StrCat("resource path: \"",
                                                   absl::CHexEscape(h.resource_path),
                                                   "\" at offset 16 is not repo/type/tag"));
  }
  KBS_ASSIGN_OR_RETURN(h.key_version, ReadBe(r, 8, "key version"));
  size_t chunk_offset = r.offset();
  KBS_ASSIGN_OR_RETURN(uint64_t chunk_size, ReadBe(r, 4, "chunk size"));
  if (chunk_size < kMinChunkSize || chunk_size > kMaxChunkSize) {
    return absl::InvalidArgumentError(absl::StrCat("chunk size: ", chunk_size, " at offset ",
                                                   chunk_offset, " is outside [", kMinChunkSize,
                                                   ", ", kMaxChunkSize, "]"));
  }
  h.chunk_size = static_cast<uint32_t>(chunk_size);
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> prefix, r.Bytes(kNoncePrefixSize, "nonce prefix"));
  h.nonce_prefix = common::ToString(prefix);
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> check, r.Bytes(kKeyCheckSize, "key check"));
  h.key_check = common::ToString(check);
  h.raw = std::string(bytes.substr(0, length));
  *consumed = length;
  return h;
}

absl::StatusOr<SealHeader> ReadSealHeader(std::istream& in) {
  IstreamSource source(in);
  return ReadHeaderImpl(source);
}

absl::StatusOr<SealHeader> PeekSealHeader(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<FdSource> source, FdSource::Open(path));
  return ReadHeaderImpl(*source);
}

absl::Status Seal(std::istream& in, std::ostream& out, absl::Span<const uint8_t> key,
                  const SealOptions& options) {
  KBS_RETURN_IF_ERROR(CheckStreams(in, out));
  IstreamSource source(in);
  OstreamSink sink(out);
  return SealImpl(source, sink, key, options);
}

absl::Status Unseal(std::istream& in, std::ostream& out, absl::Span<const uint8_t> key) {
  KBS_RETURN_IF_ERROR(CheckStreams(in, out));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<SealedReader> reader, SealedReader::FromStream(in, key));
  OstreamSink sink(out);
  while (true) {
    KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> chunk, reader->NextChunk());
    if (chunk.empty()) break;
    KBS_RETURN_IF_ERROR(sink.Write(chunk.data(), chunk.size()));
  }
  return sink.Flush();
}

absl::Status SealFile(const std::string& in_path, const std::string& out_path,
                      absl::Span<const uint8_t> key, const SealOptions& options) {
  KBS_RETURN_IF_ERROR(ValidateSealInputs(key, options));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<FdSource> source, FdSource::Open(in_path));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<PartialFile> out, PartialFile::Create(out_path));
  KBS_RETURN_IF_ERROR(SealImpl(*source, *out, key, options));
  return out->Commit();
}

absl::Status UnsealFile(const std::string& in_path, const std::string& out_path,
                        absl::Span<const uint8_t> key) {
  // The key check runs before any output file exists.
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<SealedReader> reader, SealedReader::Open(in_path, key));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<PartialFile> out, PartialFile::Create(out_path));
  while (true) {
    KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> chunk, reader->NextChunk());
    if (chunk.empty()) break;
    KBS_RETURN_IF_ERROR(out->Write(chunk.data(), chunk.size()));
  }
  return out->Commit();
}

// --- SealedReader -------------------------------------------------------------

SealedReader::SealedReader(std::unique_ptr<internal::ByteSource> source, SealHeader header)
    : source_(std::move(source)), header_(std::move(header)) {}

SealedReader::~SealedReader() = default;

absl::StatusOr<std::unique_ptr<SealedReader>> SealedReader::Open(const std::string& path,
                                                                 absl::Span<const uint8_t> key) {
  KBS_RETURN_IF_ERROR(CheckKey(key));
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<FdSource> source, FdSource::Open(path));
  KBS_ASSIGN_OR_RETURN(SealHeader header, ReadHeaderImpl(*source));
  return Create(std::move(source), header, key);
}

absl::StatusOr<std::unique_ptr<SealedReader>> SealedReader::FromStream(
    std::istream& in, absl::Span<const uint8_t> key) {
  KBS_RETURN_IF_ERROR(CheckKey(key));
  auto source = std::make_unique<IstreamSource>(in);
  KBS_ASSIGN_OR_RETURN(SealHeader header, ReadHeaderImpl(*source));
  return Create(std::move(source), header, key);
}

absl::StatusOr<std::unique_ptr<SealedReader>> SealedReader::FromStream(
    std::istream& in, const SealHeader& header, absl::Span<const uint8_t> key) {
  return Create(std::make_unique<IstreamSource>(in), header, key);
}

absl::StatusOr<std::unique_ptr<SealedReader>> SealedReader::Create(
    std::unique_ptr<internal::ByteSource> source, const SealHeader& header,
    absl::Span<const uint8_t> key) {
  KBS_RETURN_IF_ERROR(CheckKey(key));
  // Work from the raw bytes only, so the fields cannot disagree with what the
  // key check and the chunks' AAD cover.
  size_t consumed = 0;
  KBS_ASSIGN_OR_RETURN(SealHeader parsed, ParseSealHeader(header.raw, &consumed));
  if (consumed != header.raw.size()) {
    return absl::InvalidArgumentError("header: raw bytes continue past the header length");
  }
  absl::string_view raw = parsed.raw;
  KBS_ASSIGN_OR_RETURN(std::string expected,
                       ComputeKeyCheck(key, raw.substr(0, raw.size() - kKeyCheckSize)));
  if (!common::ConstantTimeEquals(expected, parsed.key_check)) {
    return absl::UnauthenticatedError("wrong key for this sealed file (key check failed)");
  }
  auto reader = absl::WrapUnique(new SealedReader(std::move(source), std::move(parsed)));
  reader->header_hash_ = common::Sha256(reader->header_.raw);
  KBS_ASSIGN_OR_RETURN(reader->ctx_, NewGcmContext(key, /*encrypt=*/false));
  reader->ciphertext_.resize(size_t{reader->header_.chunk_size} + kTagSize);
  reader->plain_ = common::SecretBytes(reader->header_.chunk_size);
  return reader;
}

absl::StatusOr<bool> SealedReader::OpenChunk(size_t ciphertext_len, bool final) {
  size_t n = ciphertext_len - kTagSize;
  ChunkParams p = MakeChunkParams(header_.nonce_prefix, header_hash_, index_, final);
  int len = 0;
  if (EVP_DecryptInit_ex2(ctx_.get(), nullptr, nullptr, p.nonce, nullptr) != 1 ||
      EVP_DecryptUpdate(ctx_.get(), nullptr, &len, p.aad, kAadSize) != 1 ||
      (n > 0 && EVP_DecryptUpdate(ctx_.get(), plain_.data(), &len, ciphertext_.data(),
                                  static_cast<int>(n)) != 1) ||
      EVP_CIPHER_CTX_ctrl(ctx_.get(), EVP_CTRL_GCM_SET_TAG, kTagSize, ciphertext_.data() + n) !=
          1) {
    return common::OpenSslError(absl::StrCat("opening chunk ", index_, " failed"));
  }
  if (EVP_DecryptFinal_ex(ctx_.get(), plain_.data() + n, &len) != 1) {
    ERR_clear_error();
    // Never leave unverified plaintext behind.
    if (n > 0) OPENSSL_cleanse(plain_.data(), n);
    return false;
  }
  return true;
}

absl::Status SealedReader::LoadNextChunk() {
  absl::Status status = [&]() -> absl::Status {
    if (index_ >= kMaxChunks) {
      return absl::DataLossError("more than 2^32 chunks: no final chunk within the limit");
    }
    const size_t full = size_t{header_.chunk_size} + kTagSize;
    KBS_ASSIGN_OR_RETURN(size_t n, source_->ReadFull(ciphertext_.data(), full));
    if (n < kTagSize) {
      if (n == 0) return absl::DataLossError("truncated: no final chunk");
      return absl::DataLossError(
          absl::StrCat("truncated: no final chunk (chunk ", index_, " has only ", n, " bytes)"));
    }
    bool at_end = n < full;
    if (!at_end) {
      KBS_ASSIGN_OR_RETURN(at_end, source_->AtEnd());
    }
    KBS_ASSIGN_OR_RETURN(bool ok, OpenChunk(n, /*final=*/at_end));
    if (ok) {
      pos_ = 0;
      len_ = n - kTagSize;
      ++index_;
      if (at_end) state_ = State::kDone;
      return absl::OkStatus();
    }
    // Tell truncation and trailing data from corruption: does the chunk
    // authenticate with the other final flag? (Nothing it decrypts is kept.)
    KBS_ASSIGN_OR_RETURN(bool other, OpenChunk(n, /*final=*/!at_end));
    if (other && n > kTagSize) OPENSSL_cleanse(plain_.data(), n - kTagSize);
    if (other && at_end) {
      return absl::DataLossError(
          absl::StrCat("truncated: no final chunk (the file ends after chunk ", index_,
                       ", which is not the last)"));
    }
    if (other) {
      return absl::DataLossError(
          absl::StrCat("data after the final chunk (chunk ", index_, " is the last)"));
    }
    return absl::DataLossError(absl::StrCat("chunk ", index_, " failed authentication"));
  }();
  if (!status.ok()) {
    state_ = State::kFailed;
    error_ = status;
    pos_ = len_ = 0;
  }
  return status;
}

absl::StatusOr<absl::Span<const uint8_t>> SealedReader::NextChunk() {
  if (state_ == State::kFailed) return error_;
  while (pos_ == len_) {
    if (state_ == State::kDone) return absl::Span<const uint8_t>();
    KBS_RETURN_IF_ERROR(LoadNextChunk());
  }
  absl::Span<const uint8_t> out = plain_.span().subspan(pos_, len_ - pos_);
  bytes_read_ += out.size();
  pos_ = len_;
  return out;
}

absl::StatusOr<size_t> SealedReader::Read(absl::Span<uint8_t> buffer) {
  if (state_ == State::kFailed) return error_;
  if (buffer.empty()) return 0;
  while (pos_ == len_) {
    if (state_ == State::kDone) return 0;
    KBS_RETURN_IF_ERROR(LoadNextChunk());
  }
  size_t n = std::min(buffer.size(), len_ - pos_);
  std::memcpy(buffer.data(), plain_.data() + pos_, n);
  pos_ += n;
  bytes_read_ += n;
  return n;
}

}  // namespace kbs::sealed
