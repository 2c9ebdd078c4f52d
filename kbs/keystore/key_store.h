// The key-store seam: where resource values (model-weight keys and other
// secrets) live, encrypted at rest. Backends: the local store (SQLite under
// a master key file); HSM/KMS-backed stores implement the same interface.
#ifndef KBS_KBS_KEYSTORE_KEY_STORE_H_
#define KBS_KBS_KEYSTORE_KEY_STORE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/bytes.h"

namespace kbs::keystore {

// Largest accepted resource value.
inline constexpr size_t kMaxResourceBytes = 1 << 20;

struct ResourceMetadata {
  std::string path;  // "repo/type/tag"
  absl::Time created;
  absl::Time updated;
  int64_t size = 0;
  std::string sha256_hex;  // of the plaintext value
};

// Thread-safe.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Creates or replaces the value at `path`. InvalidArgument for values over
  // kMaxResourceBytes; Unavailable when storage fails.
  virtual absl::StatusOr<ResourceMetadata> Put(absl::string_view path,
                                               absl::Span<const uint8_t> value) = 0;
  // NotFound when absent; DataLoss when the stored value fails
  // authentication (tampering or a wrong master key).
  virtual absl::StatusOr<common::SecretBytes> Get(absl::string_view path) = 0;
  // NotFound when absent.
  virtual absl::Status Delete(absl::string_view path) = 0;
  // Metadata only, never values; sorted by path.
  virtual absl::StatusOr<std::vector<ResourceMetadata>> List() = 0;
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_KEY_STORE_H_
