// The embedded KEK: AES-256 keys in files next to the database. Version 1 is
// the master key file (`master.key`); a rotation writes `master.key.2`,
// `master.key.3`, ... (mode 0600), and the highest is current. Data keys are
// wrapped with AES-256-GCM (random 96-bit nonce, the context and KEK id as
// associated data).
#ifndef KBS_KBS_KEYSTORE_LOCAL_KEK_H_
#define KBS_KBS_KEYSTORE_LOCAL_KEK_H_

#include <map>
#include <memory>
#include <mutex>
#include <string>

#include "kbs/keystore/kek.h"

namespace kbs::keystore {

// Reads the 32-byte key at `path`, creating it (mode 0600) when the file
// does not exist. FailedPrecondition if the file is readable by group or
// others or has the wrong size.
absl::StatusOr<common::SecretBytes> LoadOrCreateMasterKey(const std::string& path);

class LocalKek final : public Kek {
 public:
  // Loads `master_path` (created when missing) and its rotations.
  static absl::StatusOr<std::unique_ptr<LocalKek>> Open(const std::string& master_path);

  std::string current_id() const override;
  absl::StatusOr<WrappedKey> Wrap(absl::Span<const uint8_t> data_key,
                                  absl::string_view context) override;
  absl::StatusOr<common::SecretBytes> Unwrap(const WrappedKey& key,
                                             absl::string_view context) override;
  absl::StatusOr<std::string> Rotate() override;

  // The version-1 key (the master key), for reading stores written before
  // values had data keys.
  absl::Span<const uint8_t> master_key() const;

 private:
  explicit LocalKek(std::string master_path) : master_path_(std::move(master_path)) {}

  std::string master_path_;
  mutable std::mutex mu_;
  std::map<int, common::SecretBytes> keys_;  // version -> key
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_LOCAL_KEK_H_
