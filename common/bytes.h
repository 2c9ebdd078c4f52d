// Byte containers: SecretBytes (zeroized on destruction) and a constant-time
// comparison for secrets and digests.
#ifndef KBS_COMMON_BYTES_H_
#define KBS_COMMON_BYTES_H_

#include <cstdint>
#include <string>
#include <string_view>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kbs::common {

using Bytes = std::vector<uint8_t>;

inline absl::Span<const uint8_t> AsSpan(absl::string_view s) {
  return absl::Span<const uint8_t>(reinterpret_cast<const uint8_t*>(s.data()), s.size());
}
inline absl::string_view AsStringView(absl::Span<const uint8_t> b) {
  return absl::string_view(reinterpret_cast<const char*>(b.data()), b.size());
}
inline std::string ToString(absl::Span<const uint8_t> b) { return std::string(AsStringView(b)); }
inline Bytes ToBytes(absl::string_view s) { return Bytes(s.begin(), s.end()); }

// Constant-time equality (length is not secret). Use for digests, nonces,
// MACs and anything derived from a secret.
bool ConstantTimeEquals(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b);
inline bool ConstantTimeEquals(absl::string_view a, absl::string_view b) {
  return ConstantTimeEquals(AsSpan(a), AsSpan(b));
}

// Owns secret bytes (keys, plaintext resource values) and wipes them with
// OPENSSL_cleanse when destroyed or reassigned. Movable, not copyable, so
// secrets are not duplicated by accident. Never log its contents.
class SecretBytes final {
 public:
  SecretBytes() = default;
  explicit SecretBytes(size_t size) : data_(size, 0) {}
  explicit SecretBytes(absl::Span<const uint8_t> b) : data_(b.begin(), b.end()) {}
  ~SecretBytes() { Wipe(); }
  SecretBytes(SecretBytes&& other) noexcept : data_(std::move(other.data_)) { other.data_.clear(); }
  SecretBytes& operator=(SecretBytes&& other) noexcept {
    if (this != &other) {
      Wipe();
      data_ = std::move(other.data_);
      other.data_.clear();
    }
    return *this;
  }
  SecretBytes(const SecretBytes&) = delete;
  SecretBytes& operator=(const SecretBytes&) = delete;

  uint8_t* data() { return data_.data(); }
  const uint8_t* data() const { return data_.data(); }
  size_t size() const { return data_.size(); }
  bool empty() const { return data_.empty(); }
  absl::Span<const uint8_t> span() const { return data_; }
  // Shrinks the buffer (wiping the tail).
  void Truncate(size_t size);

 private:
  void Wipe();
  std::vector<uint8_t> data_;
};

// A bounds-checked little-endian reader over untrusted bytes. Every read
// checks what remains first; errors name the offset and the field.
class ByteReader final {
 public:
  explicit ByteReader(absl::Span<const uint8_t> data) : data_(data) {}

  size_t offset() const { return offset_; }
  size_t remaining() const { return data_.size() - offset_; }

  // InvalidArgument "<what>: need N bytes at offset O, have R" on underrun.
  absl::StatusOr<uint8_t> U8(absl::string_view what);
  absl::StatusOr<uint16_t> U16(absl::string_view what);
  absl::StatusOr<uint32_t> U32(absl::string_view what);
  absl::StatusOr<uint64_t> U64(absl::string_view what);
  absl::StatusOr<absl::Span<const uint8_t>> Bytes(size_t n, absl::string_view what);
  absl::Status Skip(size_t n, absl::string_view what);

 private:
  absl::Status Need(size_t n, absl::string_view what) const;
  absl::Span<const uint8_t> data_;
  size_t offset_ = 0;
};

// True when every byte is zero.
bool AllZero(absl::Span<const uint8_t> bytes);

}  // namespace kbs::common

#endif  // KBS_COMMON_BYTES_H_
