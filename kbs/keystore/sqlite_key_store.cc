#include "kbs/keystore/sqlite_key_store.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs::keystore {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS resource_versions (
  path        TEXT NOT NULL,
  version     INTEGER NOT NULL,   -- 1, 2, ... per path
  state       INTEGER NOT NULL,   -- 0 enabled, 1 disabled, 2 destroyed
  kek_id      TEXT NOT NULL,      -- the KEK version wrapping the data key ('' once destroyed)
  wrapped_key BLOB NOT NULL,      -- the data key, wrapped by the KEK (empty once destroyed)
  nonce       BLOB NOT NULL,      -- 12-byte AES-GCM nonce of the value
  ciphertext  BLOB NOT NULL,      -- AES-256-GCM(data key) ciphertext || tag (empty once destroyed)
  size        INTEGER NOT NULL,
  sha256      BLOB NOT NULL,
  created_at  INTEGER NOT NULL,   -- unix microseconds
  updated_at  INTEGER NOT NULL,
  PRIMARY KEY (path, version)
) STRICT;
)sql";

// The sealed-row cache holds ciphertext only; bounded in bytes.
constexpr size_t kMaxCacheBytes = 64 << 20;
constexpr size_t kDataKeyBytes = 32;

// Associated data of a value and context of its wrapped data key: a row
// moved to another path or version does not open.
std::string ValueAad(absl::string_view path, int64_t version) {
  return absl::StrCat("kbs resource ", path, "#", version);
}

VersionState StateOf(int64_t v) {
  return v == 0   ? VersionState::kEnabled
         : v == 1 ? VersionState::kDisabled
                  : VersionState::kDestroyed;
}
int StateCode(VersionState s) {
  return s == VersionState::kEnabled ? 0 : s == VersionState::kDisabled ? 1 : 2;
}

constexpr absl::string_view kVersionColumns =
    "version, state, kek_id, size, sha256, created_at, updated_at";

ResourceVersion ReadVersion(const storage::SqliteStatement& stmt, int first) {
  ResourceVersion v;
  v.version = stmt.ColumnInt64(first);
  v.state = StateOf(stmt.ColumnInt64(first + 1));
  v.kek_id = stmt.ColumnText(first + 2);
  v.size = stmt.ColumnInt64(first + 3);
  v.sha256_hex = common::HexEncode(stmt.ColumnBlob(first + 4));
  v.created = absl::FromUnixMicros(stmt.ColumnInt64(first + 5));
  v.updated = absl::FromUnixMicros(stmt.ColumnInt64(first + 6));
  return v;
}

absl::Status NotFound(absl::string_view path) {
  return absl::NotFoundError(absl::StrCat("resource ", path, " not found"));
}

}  // namespace

absl::string_view VersionStateName(VersionState s) {
  switch (s) {
    case VersionState::kEnabled:
      return "enabled";
    case VersionState::kDisabled:
      return "disabled";
    case VersionState::kDestroyed:
      return "destroyed";
  }
  return "unknown";
}

std::optional<VersionState> VersionStateFromName(absl::string_view name) {
  if (name == "enabled") return VersionState::kEnabled;
  if (name == "disabled") return VersionState::kDisabled;
  if (name == "destroyed") return VersionState::kDestroyed;
  return std::nullopt;
}

absl::StatusOr<std::unique_ptr<SqliteKeyStore>> SqliteKeyStore::Create(
    storage::SqliteDatabase* db, Kek* kek, const common::Clock* clock,
    std::optional<absl::Span<const uint8_t>> legacy_master_key) {
  KBS_RETURN_IF_ERROR(db->Run([](storage::SqliteConnection& c) { return c.Exec(kSchema); }));
  std::unique_ptr<SqliteKeyStore> store(new SqliteKeyStore(db, kek, clock));
  if (legacy_master_key.has_value()) KBS_RETURN_IF_ERROR(store->MigrateLegacy(*legacy_master_key));
  return store;
}

absl::Status SqliteKeyStore::MigrateLegacy(absl::Span<const uint8_t> master_key) {
  struct Legacy {
    std::string path, nonce, sealed;
    int64_t created;
  };
  std::vector<Legacy> rows;
  bool exists = false;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * probe,
        c.Prepare("SELECT 1 FROM sqlite_master WHERE type='table' AND name='resources'"));
    KBS_ASSIGN_OR_RETURN(exists, probe->Step());
    probe->Reset();
    if (!exists) return absl::OkStatus();
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT path, nonce, ciphertext, created_at FROM resources"));
    while (true) {
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      rows.push_back(
          {stmt->ColumnText(0), stmt->ColumnBlob(1), stmt->ColumnBlob(2), stmt->ColumnInt64(3)});
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  if (!exists) return absl::OkStatus();
  for (const Legacy& row : rows) {
    if (row.nonce.size() != 12 || row.sealed.size() < 16) {
      return absl::DataLossError(absl::StrCat("stored resource ", row.path, " is malformed"));
    }
    absl::string_view body(row.sealed);
    auto plain = common::AesGcmOpen(master_key, common::AsSpan(row.nonce), common::AsSpan(row.path),
                                    common::AsSpan(body.substr(0, body.size() - 16)),
                                    common::AsSpan(body.substr(body.size() - 16)));
    if (!plain.ok()) {
      return absl::DataLossError(absl::StrCat("migrating resource ", row.path,
                                              ": it fails authentication under the master key"));
    }
    // Idempotent if a previous migration stopped half-way.
    auto existing = Versions(row.path);
    if (existing.ok() && !existing->empty()) continue;
    KBS_RETURN_IF_ERROR(
        Insert(row.path, plain->span(), absl::FromUnixMicros(row.created)).status());
  }
  return db_->Run([](storage::SqliteConnection& c) { return c.Exec("DROP TABLE resources"); });
}

absl::StatusOr<ResourceMetadata> SqliteKeyStore::Insert(absl::string_view path,
                                                        absl::Span<const uint8_t> value,
                                                        std::optional<absl::Time> created) {
  if (value.size() > kMaxResourceBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("resource value is ", value.size(),
                                                     " bytes; the limit is ", kMaxResourceBytes));
  }
  const std::string digest = common::Digest(common::HashAlgorithm::kSha256, value);
  const int64_t now = absl::ToUnixMicros(clock_->Now());
  ResourceMetadata md;
  md.path = std::string(path);
  md.size = static_cast<int64_t>(value.size());
  md.sha256_hex = common::HexEncode(digest);
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * next,
          c.Prepare("SELECT COALESCE(MAX(version), 0) + 1, MIN(created_at) FROM resource_versions "
                    "WHERE path = ?1"));
      next->BindText(1, path);
      KBS_ASSIGN_OR_RETURN(bool row, next->Step());
      if (!row) return absl::InternalError("no next version");
      md.version = next->ColumnInt64(0);
      const bool first = md.version == 1;
      md.created = first ? (created ? *created : absl::FromUnixMicros(now))
                         : absl::FromUnixMicros(next->ColumnInt64(1));
      next->Reset();
      // Seal under a fresh data key; wrap the data key with the KEK.
      KBS_ASSIGN_OR_RETURN(common::SecretBytes data_key, common::RandomBytes(kDataKeyBytes));
      KBS_ASSIGN_OR_RETURN(std::string nonce, common::RandomString(12));
      const std::string aad = ValueAad(path, md.version);
      KBS_ASSIGN_OR_RETURN(
          common::AesGcmSealed sealed,
          common::AesGcmSeal(data_key.span(), common::AsSpan(nonce), common::AsSpan(aad), value));
      KBS_ASSIGN_OR_RETURN(WrappedKey wrapped, kek_->Wrap(data_key.span(), aad));
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * ins,
          c.Prepare("INSERT INTO resource_versions(path, version, state, kek_id, wrapped_key, "
                    "nonce, ciphertext, size, sha256, created_at, updated_at) "
                    "VALUES(?1, ?2, 0, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10)"));
      ins->BindText(1, path);
      ins->BindInt64(2, md.version);
      ins->BindText(3, wrapped.kek_id);
      ins->BindBlob(4, wrapped.wrapped);
      ins->BindBlob(5, nonce);
      ins->BindBlob(6, absl::StrCat(sealed.ciphertext, sealed.tag));
      ins->BindInt64(7, md.size);
      ins->BindBlob(8, digest);
      ins->BindInt64(9, first ? absl::ToUnixMicros(md.created) : now);
      ins->BindInt64(10, now);
      absl::Status s = ins->Run();
      ins->Reset();
      return s;
    });
  }));
  md.updated = absl::FromUnixMicros(now);
  md.latest_version = md.version;
  Forget(path);
  return md;
}

absl::StatusOr<ResourceMetadata> SqliteKeyStore::Put(absl::string_view path,
                                                     absl::Span<const uint8_t> value) {
  return Insert(path, value, std::nullopt);
}

absl::StatusOr<SqliteKeyStore::SealedRow> SqliteKeyStore::ReadRow(absl::string_view path,
                                                                  std::optional<int64_t> version) {
  if (!version.has_value()) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(path);
    if (it != cache_.end()) return it->second;
  }
  SealedRow row;
  bool found = false, any = false;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * stmt,
        version.has_value()
            ? c.Prepare("SELECT version, state, kek_id, wrapped_key, nonce, ciphertext FROM "
                        "resource_versions WHERE path = ?1 AND version = ?2")
            : c.Prepare("SELECT version, state, kek_id, wrapped_key, nonce, ciphertext FROM "
                        "resource_versions WHERE path = ?1 AND state = 0 ORDER BY version DESC "
                        "LIMIT 1"));
    stmt->BindText(1, path);
    if (version.has_value()) stmt->BindInt64(2, *version);
    KBS_ASSIGN_OR_RETURN(found, stmt->Step());
    if (found) {
      row.version = stmt->ColumnInt64(0);
      row.state = static_cast<int>(stmt->ColumnInt64(1));
      row.kek_id = stmt->ColumnText(2);
      row.wrapped_key = stmt->ColumnBlob(3);
      row.nonce = stmt->ColumnBlob(4);
      row.sealed = stmt->ColumnBlob(5);
    }
    stmt->Reset();
    if (!found && !version.has_value()) {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * exists,
                           c.Prepare("SELECT 1 FROM resource_versions WHERE path = ?1 LIMIT 1"));
      exists->BindText(1, path);
      KBS_ASSIGN_OR_RETURN(any, exists->Step());
      exists->Reset();
    }
    return absl::OkStatus();
  }));
  if (!found) {
    if (version.has_value()) {
      return absl::NotFoundError(absl::StrCat("resource ", path, " has no version ", *version));
    }
    if (any) {
      return absl::FailedPreconditionError(
          absl::StrCat("resource ", path, " has no enabled version"));
    }
    return NotFound(path);
  }
  if (row.state != 0) {
    return absl::FailedPreconditionError(absl::StrCat(
        "resource ", path, " version ", row.version, " is ", VersionStateName(StateOf(row.state))));
  }
  if (!version.has_value()) {
    std::lock_guard<std::mutex> lock(cache_mu_);
    if (cache_bytes_ + row.sealed.size() > kMaxCacheBytes) {
      cache_.clear();
      cache_bytes_ = 0;
    }
    auto [it, inserted] = cache_.insert_or_assign(std::string(path), row);
    if (inserted) cache_bytes_ += row.sealed.size();
  }
  return row;
}

void SqliteKeyStore::Forget(absl::string_view path) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = cache_.find(path);
  if (it == cache_.end()) return;
  cache_bytes_ -= it->second.sealed.size();
  cache_.erase(it);
}

absl::StatusOr<ReleasedValue> SqliteKeyStore::Get(absl::string_view path,
                                                  std::optional<int64_t> version) {
  KBS_ASSIGN_OR_RETURN(SealedRow row, ReadRow(path, version));
  if (row.nonce.size() != 12 || row.sealed.size() < 16) {
    return absl::DataLossError(absl::StrCat("stored resource ", path, " is malformed"));
  }
  const std::string aad = ValueAad(path, row.version);
  KBS_ASSIGN_OR_RETURN(common::SecretBytes data_key,
                       kek_->Unwrap(WrappedKey{row.kek_id, row.wrapped_key}, aad));
  absl::string_view body(row.sealed);
  auto plain = common::AesGcmOpen(data_key.span(), common::AsSpan(row.nonce), common::AsSpan(aad),
                                  common::AsSpan(body.substr(0, body.size() - 16)),
                                  common::AsSpan(body.substr(body.size() - 16)));
  if (!plain.ok()) {
    return absl::DataLossError(
        absl::StrCat("stored resource ", path, " version ", row.version,
                     " failed authentication (tampered, or moved between rows)"));
  }
  return ReleasedValue{*std::move(plain), row.version};
}

absl::Status SqliteKeyStore::Delete(absl::string_view path) {
  int64_t changes = 0;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("DELETE FROM resource_versions WHERE path = ?1"));
    stmt->BindText(1, path);
    KBS_RETURN_IF_ERROR(stmt->Run());
    changes = c.Changes();
    stmt->Reset();
    return absl::OkStatus();
  }));
  Forget(path);
  if (changes == 0) return NotFound(path);
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ResourceMetadata>> SqliteKeyStore::List() {
  std::vector<ResourceMetadata> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    // Per path: the latest enabled version (else the latest), the first
    // creation and the last change.
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * stmt,
        c.Prepare("SELECT v.path, v.size, v.sha256, v.state, v.version, p.created, p.updated, "
                  "p.latest FROM (SELECT path, MIN(created_at) AS created, MAX(updated_at) AS "
                  "updated, MAX(version) AS latest, COALESCE(MAX(CASE WHEN state = 0 THEN "
                  "version END), MAX(version)) AS shown FROM resource_versions GROUP BY path) p "
                  "JOIN resource_versions v ON v.path = p.path AND v.version = p.shown "
                  "ORDER BY v.path"));
    while (true) {
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      ResourceMetadata md;
      md.path = stmt->ColumnText(0);
      md.size = stmt->ColumnInt64(1);
      md.sha256_hex = common::HexEncode(stmt->ColumnBlob(2));
      md.version = stmt->ColumnInt64(3) == 0 ? stmt->ColumnInt64(4) : 0;
      md.created = absl::FromUnixMicros(stmt->ColumnInt64(5));
      md.updated = absl::FromUnixMicros(stmt->ColumnInt64(6));
      md.latest_version = stmt->ColumnInt64(7);
      out.push_back(std::move(md));
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  return out;
}

absl::StatusOr<std::vector<ResourceVersion>> SqliteKeyStore::Versions(absl::string_view path) {
  std::vector<ResourceVersion> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare(absl::StrCat("SELECT ", kVersionColumns,
                                                " FROM resource_versions WHERE path = ?1 ORDER "
                                                "BY version")));
    stmt->BindText(1, path);
    while (true) {
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      out.push_back(ReadVersion(*stmt, 0));
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  if (out.empty()) return NotFound(path);
  return out;
}

absl::StatusOr<ResourceVersion> SqliteKeyStore::SetState(absl::string_view path, int64_t version,
                                                         VersionState state) {
  ResourceVersion out;
  bool found = false;
  const int64_t now = absl::ToUnixMicros(clock_->Now());
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * cur,
                           c.Prepare("SELECT state FROM resource_versions WHERE path = ?1 AND "
                                     "version = ?2"));
      cur->BindText(1, path);
      cur->BindInt64(2, version);
      KBS_ASSIGN_OR_RETURN(found, cur->Step());
      const VersionState current = found ? StateOf(cur->ColumnInt64(0)) : VersionState::kEnabled;
      cur->Reset();
      if (!found) return absl::OkStatus();
      if (current == VersionState::kDestroyed && state != VersionState::kDestroyed) {
        return absl::FailedPreconditionError(absl::StrCat("resource ", path, " version ", version,
                                                          " is destroyed; its value is gone"));
      }
      // Destroying erases the value and its data key; the metadata stays.
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * upd,
          state == VersionState::kDestroyed
              ? c.Prepare("UPDATE resource_versions SET state = ?3, updated_at = ?4, kek_id = '', "
                          "wrapped_key = X'', nonce = X'', ciphertext = X'' WHERE path = ?1 AND "
                          "version = ?2")
              : c.Prepare("UPDATE resource_versions SET state = ?3, updated_at = ?4 WHERE path = "
                          "?1 AND version = ?2"));
      upd->BindText(1, path);
      upd->BindInt64(2, version);
      upd->BindInt64(3, StateCode(state));
      upd->BindInt64(4, now);
      KBS_RETURN_IF_ERROR(upd->Run());
      upd->Reset();
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * read,
                           c.Prepare(absl::StrCat("SELECT ", kVersionColumns,
                                                  " FROM resource_versions WHERE path = ?1 AND "
                                                  "version = ?2")));
      read->BindText(1, path);
      read->BindInt64(2, version);
      KBS_ASSIGN_OR_RETURN(bool row, read->Step());
      if (row) out = ReadVersion(*read, 0);
      read->Reset();
      return absl::OkStatus();
    });
  }));
  Forget(path);
  if (!found)
    return absl::NotFoundError(absl::StrCat("resource ", path, " has no version ", version));
  return out;
}

absl::StatusOr<int64_t> SqliteKeyStore::RewrapAll() {
  const std::string current = kek_->current_id();
  struct Row {
    std::string path;
    int64_t version;
    std::string kek_id, wrapped;
  };
  std::vector<Row> rows;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT path, version, kek_id, wrapped_key FROM "
                                   "resource_versions WHERE state != 2 AND kek_id != ?1"));
    stmt->BindText(1, current);
    while (true) {
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      rows.push_back(
          {stmt->ColumnText(0), stmt->ColumnInt64(1), stmt->ColumnText(2), stmt->ColumnBlob(3)});
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  int64_t done = 0;
  for (const Row& r : rows) {
    // Only the data key moves between KEK versions; the value stays sealed.
    const std::string aad = ValueAad(r.path, r.version);
    KBS_ASSIGN_OR_RETURN(common::SecretBytes data_key,
                         kek_->Unwrap(WrappedKey{r.kek_id, r.wrapped}, aad));
    KBS_ASSIGN_OR_RETURN(WrappedKey rewrapped, kek_->Wrap(data_key.span(), aad));
    KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      // Only if the row still holds what was read (a concurrent destroy or
      // rewrap wins).
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * upd,
          c.Prepare("UPDATE resource_versions SET kek_id = ?3, wrapped_key = ?4 WHERE path = ?1 "
                    "AND version = ?2 AND kek_id = ?5 AND wrapped_key = ?6"));
      upd->BindText(1, r.path);
      upd->BindInt64(2, r.version);
      upd->BindText(3, rewrapped.kek_id);
      upd->BindBlob(4, rewrapped.wrapped);
      upd->BindText(5, r.kek_id);
      upd->BindBlob(6, r.wrapped);
      KBS_RETURN_IF_ERROR(upd->Run());
      done += c.Changes();
      upd->Reset();
      return absl::OkStatus();
    }));
    Forget(r.path);
  }
  return done;
}

}  // namespace kbs::keystore
