// The embedded key store: values in SQLite, each sealed with AES-256-GCM
// under the master key (fresh 96-bit nonce per write, the resource path as
// associated data, so a row copied to another path fails to open).
#ifndef KBS_KBS_KEYSTORE_LOCAL_KEY_STORE_H_
#define KBS_KBS_KEYSTORE_LOCAL_KEY_STORE_H_

#include <map>
#include <memory>
#include <mutex>

#include "common/bytes.h"
#include "common/clock.h"
#include "kbs/keystore/key_store.h"
#include "kbs/storage/sqlite.h"

namespace kbs::keystore {

// Reads the 32-byte master key at `path`, creating it (mode 0600) when the
// file does not exist. FailedPrecondition if the file is readable by group
// or others or has the wrong size.
absl::StatusOr<common::SecretBytes> LoadOrCreateMasterKey(const std::string& path);

class LocalKeyStore final : public KeyStore {
 public:
  // `db` and `clock` must outlive the store. Creates its table if needed.
  static absl::StatusOr<std::unique_ptr<LocalKeyStore>> Create(storage::SqliteDatabase* db,
                                                               common::SecretBytes master_key,
                                                               const common::Clock* clock);

  absl::StatusOr<ResourceMetadata> Put(absl::string_view path,
                                       absl::Span<const uint8_t> value) override;
  absl::StatusOr<common::SecretBytes> Get(absl::string_view path) override;
  absl::Status Delete(absl::string_view path) override;
  absl::StatusOr<std::vector<ResourceMetadata>> List() override;

 private:
  LocalKeyStore(storage::SqliteDatabase* db, common::SecretBytes master_key,
                const common::Clock* clock)
      : db_(db), master_key_(std::move(master_key)), clock_(clock) {}

  struct SealedRow {
    std::string nonce;
    std::string sealed;  // ciphertext || tag
  };
  absl::StatusOr<SealedRow> ReadRow(absl::string_view path);
  void Forget(absl::string_view path);

  storage::SqliteDatabase* db_;
  common::SecretBytes master_key_;
  const common::Clock* clock_;
  // Sealed rows already read (ciphertext only; values are decrypted on every
  // Get), so releases do not take SQLite's file locks. This store is the
  // only writer of its table: Put and Delete drop the cached row.
  std::mutex cache_mu_;
  std::map<std::string, SealedRow, std::less<>> cache_;
  size_t cache_bytes_ = 0;
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_LOCAL_KEY_STORE_H_
