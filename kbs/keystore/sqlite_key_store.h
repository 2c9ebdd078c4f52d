// The key store over SQLite (the embedded database, or the scale-out one
// later): resource versions in one table, each value sealed with
// AES-256-GCM under its own random data key (the path and version as
// associated data, so a row copied elsewhere does not open), the data key
// stored only wrapped by the KEK (kek.h). Plaintext values and unwrapped
// data keys never reach the database.
#ifndef KBS_KBS_KEYSTORE_SQLITE_KEY_STORE_H_
#define KBS_KBS_KEYSTORE_SQLITE_KEY_STORE_H_

#include <map>
#include <memory>
#include <mutex>
#include <optional>

#include "common/bytes.h"
#include "common/clock.h"
#include "kbs/keystore/kek.h"
#include "kbs/keystore/key_store.h"
#include "kbs/storage/sqlite.h"

namespace kbs::keystore {

class SqliteKeyStore final : public KeyStore {
 public:
  // `db`, `kek` and `clock` must outlive the store. Creates its table if
  // needed. `legacy_master_key`, when given, opens values a first-release
  // KBS stored directly under the master key (table `resources`): they
  // become version 1 of their resource, with a data key, and the old table
  // is dropped.
  static absl::StatusOr<std::unique_ptr<SqliteKeyStore>> Create(
      storage::SqliteDatabase* db, Kek* kek, const common::Clock* clock,
      std::optional<absl::Span<const uint8_t>> legacy_master_key = std::nullopt);

  absl::StatusOr<ResourceMetadata> Put(absl::string_view path,
                                       absl::Span<const uint8_t> value) override;
  absl::StatusOr<ReleasedValue> Get(absl::string_view path,
                                    std::optional<int64_t> version = std::nullopt) override;
  absl::Status Delete(absl::string_view path) override;
  absl::StatusOr<std::vector<ResourceMetadata>> List() override;
  absl::StatusOr<std::vector<ResourceVersion>> Versions(absl::string_view path) override;
  absl::StatusOr<ResourceVersion> SetState(absl::string_view path, int64_t version,
                                           VersionState state) override;
  absl::StatusOr<int64_t> RewrapAll() override;

 private:
  SqliteKeyStore(storage::SqliteDatabase* db, Kek* kek, const common::Clock* clock)
      : db_(db), kek_(kek), clock_(clock) {}

  struct SealedRow {
    int64_t version = 0;
    int state = 0;
    std::string kek_id;
    std::string wrapped_key;
    std::string nonce;
    std::string sealed;  // ciphertext || tag
  };
  absl::Status MigrateLegacy(absl::Span<const uint8_t> master_key);
  absl::StatusOr<SealedRow> ReadRow(absl::string_view path, std::optional<int64_t> version);
  absl::StatusOr<ResourceMetadata> Insert(absl::string_view path, absl::Span<const uint8_t> value,
                                          std::optional<absl::Time> created);
  void Forget(absl::string_view path);

  storage::SqliteDatabase* db_;
  Kek* kek_;
  const common::Clock* clock_;
  // Sealed rows of latest enabled versions already read (ciphertext and
  // wrapped keys only; data keys are unwrapped on every Get), so releases do
  // not take SQLite's locks. This store is the only writer of its table:
  // every write drops the path's entry.
  std::mutex cache_mu_;
  std::map<std::string, SealedRow, std::less<>> cache_;
  size_t cache_bytes_ = 0;
};

}  // namespace kbs::keystore

#endif  // KBS_KBS_KEYSTORE_SQLITE_KEY_STORE_H_
