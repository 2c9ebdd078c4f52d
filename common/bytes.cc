#include "common/bytes.h"

#include <openssl/crypto.h>

#include "absl/strings/str_cat.h"

namespace kbs::common {

bool ConstantTimeEquals(absl::Span<const uint8_t> a, absl::Span<const uint8_t> b) {
  if (a.size() != b.size()) return false;
  if (a.empty()) return true;
  return CRYPTO_memcmp(a.data(), b.data(), a.size()) == 0;
}

void SecretBytes::Wipe() {
  if (!data_.empty()) OPENSSL_cleanse(data_.data(), data_.size());
}

void SecretBytes::Truncate(size_t size) {
  if (size >= data_.size()) return;
  OPENSSL_cleanse(data_.data() + size, data_.size() - size);
  data_.resize(size);
}

absl::Status ByteReader::Need(size_t n, absl::string_view what) const {
  if (n > remaining()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": need ", n, " bytes at offset ", offset_, ", have ", remaining()));
  }
  return absl::OkStatus();
}

absl::StatusOr<uint8_t> ByteReader::U8(absl::string_view what) {
  if (absl::Status s = Need(1, what); !s.ok()) return s;
  return data_[offset_++];
}

absl::StatusOr<uint16_t> ByteReader::U16(absl::string_view what) {
  if (absl::Status s = Need(2, what); !s.ok()) return s;
  uint16_t v = static_cast<uint16_t>(data_[offset_] | (data_[offset_ + 1] << 8));
  offset_ += 2;
  return v;
}

absl::StatusOr<uint32_t> ByteReader::U32(absl::string_view what) {
  if (absl::Status s = Need(4, what); !s.ok()) return s;
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | data_[offset_ + i];
  offset_ += 4;
  return v;
}

absl::StatusOr<uint64_t> ByteReader::U64(absl::string_view what) {
  if (absl::Status s = Need(8, what); !s.ok()) return s;
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | data_[offset_ + i];
  offset_ += 8;
  return v;
}

absl::StatusOr<absl::Span<const uint8_t>> ByteReader::Bytes(size_t n, absl::string_view what) {
  if (absl::Status s = Need(n, what); !s.ok()) return s;
  absl::Span<const uint8_t> out = data_.subspan(offset_, n);
  offset_ += n;
  return out;
}

absl::Status ByteReader::Skip(size_t n, absl::string_view what) {
  if (absl::Status s = Need(n, what); !s.ok()) return s;
  offset_ += n;
  return absl::OkStatus();
}

bool AllZero(absl::Span<const uint8_t> bytes) {
  uint8_t acc = 0;
  for (uint8_t b : bytes) acc |= b;
  return acc == 0;
}

}  // namespace kbs::common
