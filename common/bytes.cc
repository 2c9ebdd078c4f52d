#include "common/bytes.h"

#include <openssl/crypto.h>

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

}  // namespace kbs::common
