// The key-store seam: where resource values (model-weight keys and other
// secrets) live. Every put makes a new version of the resource; a release
// gets the latest enabled version, or one it names. Versions can be
// disabled, re-enabled and destroyed (the value is erased, the metadata
// stays). Values are encrypted at rest under per-value data keys wrapped by
// a key-encryption key (kek.h): the local master key file or an HSM.
#ifndef KBS_KBS_KEYSTORE_KEY_STORE_H_
#define KBS_KBS_KEYSTORE_KEY_STORE_H_

#include <optional>
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

enum class VersionState { kEnabled, kDisabled, kDestroyed };
absl::string_view VersionStateName(VersionState s);  // "enabled", "disabled", "destroyed"
std::optional<VersionState> VersionStateFromName(absl::string_view name);

struct ResourceVersion {
  int64_t version = 0;
  VersionState state = VersionState::kEnabled;
  absl::Time created;
  absl::Time updated;  // of the state
  int64_t size = 0;
  std::string sha256_hex;  // of the plaintext value
  std::string kek_id;      // the KEK version wrapping its data key; "" once destroyed
};

struct ResourceMetadata {
  std::string path;  // "repo/type/tag"
  absl::Time created;
  absl::Time updated;
  // Of the latest enabled version (the one a release gets), or of the
  // latest version when none is enabled (then `version` is 0).
  int64_t size = 0;
  std::string sha256_hex;
  int64_t version = 0;
  int64_t latest_version = 0;
};

struct ReleasedValue {
  common::SecretBytes value;
  int64_t version = 0;
};

// Thread-safe.
class KeyStore {
 public:
  virtual ~KeyStore() = default;

  // Stores `value` as a new, enabled version of `path`. ResourceExhausted
  // for values over kMaxResourceBytes; Unavailable when storage or the KEK
  // backend fails.
  virtual absl::StatusOr<ResourceMetadata> Put(absl::string_view path,
                                               absl::Span<const uint8_t> value) = 0;
  // The latest enabled version, or `version`. NotFound when the path or the
  // version does not exist; FailedPrecondition when that version is disabled
  // or destroyed, or no version is enabled; DataLoss when the stored value
  // fails authentication; Unavailable when the KEK backend cannot unwrap.
  virtual absl::StatusOr<ReleasedValue> Get(absl::string_view path,
                                            std::optional<int64_t> version = std::nullopt) = 0;
  // Removes every version and the metadata. NotFound when absent.
  virtual absl::Status Delete(absl::string_view path) = 0;
  // Metadata only, never values; sorted by path.
  virtual absl::StatusOr<std::vector<ResourceMetadata>> List() = 0;
  // Every version of `path`, oldest first. NotFound when absent.
  virtual absl::StatusOr<std::vector<ResourceVersion>> Versions(absl::string_view path) = 0;
  // Disables, re-enables or destroys a version. Destroying erases the value
  // and its data key for good: a destroyed version cannot be enabled
  // (FailedPrecondition).
  virtual absl::StatusOr<ResourceVersion> SetState(absl::string_view path, int64_t version,
                                                   VersionState state) = 0;
  // Re-wraps every stored data key under the KEK's current version (after a
  // KEK rotation); values never leave the process in plaintext. Returns how
  // many were re-wrapped.
  virtual absl::StatusOr<int64_t> RewrapAll() = 0;
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_KEY_STORE_H_
