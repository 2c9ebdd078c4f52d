// The HSM KEK: AES-256 keys that live in a PKCS#11 token and never leave it.
// Version n is the secret key object labelled "<key_label>.<n>"; the highest
// is current and its id is "pkcs11:<key_label>.<n>". Data keys are wrapped
// inside the token with CKM_AES_GCM (C_Encrypt/C_Decrypt, random 96-bit IV,
// 128-bit tag, "<kek id>\n<context>" as associated data, as LocalKek does):
// wrapped = iv || ciphertext || tag. Random IVs allow 2^32 wraps per version
// (NIST SP 800-38D §8.3); rotate long before that.
//
// The module is loaded with dlopen (PKCS#11 v2.40, §5.2 C_GetFunctionList)
// and initialised with CKF_OS_LOCKING_OK. C_Initialize is process-wide state:
// use one Pkcs11Kek per module per process. If something else in the process
// initialised the module first, this class uses it but never finalises it.
#ifndef KBS_KBS_KEYSTORE_PKCS11_KEK_H_
#define KBS_KBS_KEYSTORE_PKCS11_KEK_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "kbs/keystore/kek.h"

namespace kbs::keystore {

struct Pkcs11KekOptions {
  std::string module_path;        // e.g. /usr/lib/softhsm/libsofthsm2.so
  std::string token_label;        // CKA_LABEL of the token (at most 32 bytes)
  std::string key_label;          // [A-Za-z0-9._-], at most 64 bytes
  common::SecretBytes pin;        // user PIN, read by the caller from a file or env var
  int sessions = 4;               // R/W sessions in the pool (1..64)
  bool create_if_missing = true;  // generate "<key_label>.1" when no version exists
  // Reconnection backoff after a failed attempt: doubles from min to max.
  absl::Duration retry_backoff_min = absl::Milliseconds(100);
  absl::Duration retry_backoff_max = absl::Seconds(5);
  const common::Clock* clock = nullptr;  // for the backoff (outlives the Kek); default: system
  // When the token is unreachable or refuses the PIN at Create
  // (Unavailable), return the Kek anyway: every call fails Unavailable until
  // the token answers (a rejected PIN: until restarted with the right one),
  // and the versions are loaded then. A KBS that boots during an HSM outage
  // thus serves 503s and recovers by itself.
  bool start_unavailable = false;
};

// Thread-safe; every operation checks a session out of the pool. When the
// token goes away (CKR_SESSION_HANDLE_INVALID, CKR_DEVICE_REMOVED,
// CKR_TOKEN_NOT_PRESENT, CKR_USER_NOT_LOGGED_IN, CKR_GENERAL_ERROR, ...) the
// call returns Unavailable("HSM unavailable: <CKR name> from <function>") and
// the pool is marked broken; the next call reconnects by itself (reopen and
// log in; if that fails, C_Finalize/C_Initialize and find the token again),
// and failed reconnections back off so a dead HSM is not hammered. A PIN the
// token rejects is never retried (tokens lock the PIN after a few failures):
// every call then fails until the process restarts with the right PIN.
// The PIN is kept (in SecretBytes) to log in again after reconnecting.
class Pkcs11Kek final : public Kek {
 public:
  // Loads the module, finds the token, logs in and loads the KEK versions.
  // Errors: InvalidArgument for bad options; FailedPrecondition when the
  // module cannot be loaded, lacks AES-GCM, or a KEK object breaks policy
  // (extractable, not sensitive, not 32 bytes, duplicate label) or no version
  // exists and create_if_missing is false; Unavailable when the token is
  // absent or refuses the PIN (the message never contains the PIN), unless
  // start_unavailable is set.
  static absl::StatusOr<std::unique_ptr<Pkcs11Kek>> Create(Pkcs11KekOptions options);
  ~Pkcs11Kek() override;

  Pkcs11Kek(const Pkcs11Kek&) = delete;
  Pkcs11Kek& operator=(const Pkcs11Kek&) = delete;

  // "pkcs11:<key_label>.<n>".
  std::string current_id() const override;
  // InvalidArgument unless 16 <= data_key.size() <= 64; FailedPrecondition
  // if the current version vanished from a working token; Unavailable as above.
  absl::StatusOr<WrappedKey> Wrap(absl::Span<const uint8_t> data_key,
                                  absl::string_view context) override;
  // NotFound for an id that is not "pkcs11:<key_label>.<n>" or whose object
  // is not in the token (versions rotated by another KBS on the same token
  // are found); DataLoss when the tag does not verify (tampered bytes, other
  // context); Unavailable as above.
  absl::StatusOr<common::SecretBytes> Unwrap(const WrappedKey& key,
                                             absl::string_view context) override;
  // Generates "<key_label>.<n+1>" in the token (n: the highest version found
  // in the token now, so replicas sharing a token do not collide) and makes
  // it current. Aborted if another process created the same label at the
  // same moment (ours is destroyed; retry).
  absl::StatusOr<std::string> Rotate() override;
  absl::Status Health() const override;
  // Starts or reconnects when needed, then asks the token for its info
  // (C_GetTokenInfo): a token that went away marks the pool broken.
  absl::Status Probe() override;

 private:
  class Impl;
  explicit Pkcs11Kek(std::unique_ptr<Impl> impl);
  std::unique_ptr<Impl> impl_;
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_PKCS11_KEK_H_
