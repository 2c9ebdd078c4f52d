// The key-encryption-key seam. Every resource value is encrypted with its
// own random data key (AES-256-GCM); the data key is stored only wrapped by
// a KEK that never leaves its backend: the local master key file, or a key
// in an HSM reached through PKCS#11. KEKs have versions: rotation makes a
// new version current for new wraps, and old versions stay for unwrapping
// until every data key has been re-wrapped.
#ifndef KBS_KBS_KEYSTORE_KEK_H_
#define KBS_KBS_KEYSTORE_KEK_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/bytes.h"

namespace kbs::keystore {

struct WrappedKey {
  std::string kek_id;   // the KEK version that wrapped it, e.g. "local:1", "pkcs11:kbs-kek.2"
  std::string wrapped;  // opaque to callers (backend-defined: e.g. nonce || ciphertext || tag)
};

// Thread-safe. Errors: Unavailable when the backend cannot be reached or
// refuses (HSM removed, PIN wrong, session lost); the caller releases
// nothing and retries later. Messages never contain key material or PINs.
class Kek {
 public:
  virtual ~Kek() = default;
  // The KEK version new wraps use.
  virtual std::string current_id() const = 0;
  // Wraps a data key (16-64 bytes) with the current version; `context` is
  // bound as associated data (the resource path and version), so a wrapped
  // key moved to another row does not unwrap.
  virtual absl::StatusOr<WrappedKey> Wrap(absl::Span<const uint8_t> data_key,
                                          absl::string_view context) = 0;
  // NotFound for an unknown KEK version; DataLoss when the wrapped key or its
  // context fails authentication.
  virtual absl::StatusOr<common::SecretBytes> Unwrap(const WrappedKey& key,
                                                     absl::string_view context) = 0;
  // Creates a new KEK version and makes it current; returns its id.
  virtual absl::StatusOr<std::string> Rotate() = 0;
  // Whether the KEK answered last time it was used (for readiness probes and
  // metrics): Unavailable with the reason when it did not. Never contacts
  // the HSM itself.
  virtual absl::Status Health() const { return absl::OkStatus(); }
  // Checks the KEK is reachable now, reconnecting when it was not (within
  // any backoff), so Health() recovers without release traffic; called
  // periodically by the server.
  virtual absl::Status Probe() { return absl::OkStatus(); }
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_KEK_H_
