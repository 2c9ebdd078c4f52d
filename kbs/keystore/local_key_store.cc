#include "kbs/keystore/local_key_store.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kbs::keystore {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS resources (
  path       TEXT PRIMARY KEY,
  nonce      BLOB NOT NULL,     -- 12-byte AES-GCM nonce, fresh per write
  ciphertext BLOB NOT NULL,     -- AES-256-GCM ciphertext || 16-byte tag
  size       INTEGER NOT NULL,
  sha256     BLOB NOT NULL,
  created_at INTEGER NOT NULL,  -- unix microseconds
  updated_at INTEGER NOT NULL
) STRICT;
)sql";

ResourceMetadata ReadMetadata(const storage::SqliteStatement& stmt, int first_column) {
  ResourceMetadata md;
  md.path = stmt.ColumnText(first_column);
  md.size = stmt.ColumnInt64(first_column + 1);
  md.sha256_hex = common::HexEncode(stmt.ColumnBlob(first_column + 2));
  md.created = absl::FromUnixMicros(stmt.ColumnInt64(first_column + 3));
  md.updated = absl::FromUnixMicros(stmt.ColumnInt64(first_column + 4));
  return md;
}

// The sealed-row cache holds ciphertext only; bounded in bytes.
constexpr size_t kMaxCacheBytes = 64 << 20;

}  // namespace

absl::StatusOr<common::SecretBytes> LoadOrCreateMasterKey(const std::string& path) {
  if (!common::FileExists(path)) {
    KBS_ASSIGN_OR_RETURN(common::SecretBytes key, common::RandomBytes(32));
    KBS_RETURN_IF_ERROR(common::WriteFileAtomic(path, common::AsStringView(key.span()), 0600));
    return key;
  }
  KBS_ASSIGN_OR_RETURN(std::string raw, common::ReadPrivateFile(path));
  common::SecretBytes key(common::AsSpan(raw));
  std::fill(raw.begin(), raw.end(), '\0');
  if (key.size() != 32) {
    return absl::FailedPreconditionError(
        absl::StrCat("master key ", path, " must be exactly 32 bytes, found ", key.size()));
  }
  return key;
}

absl::StatusOr<std::unique_ptr<LocalKeyStore>> LocalKeyStore::Create(storage::SqliteDatabase* db,
                                                                     common::SecretBytes master_key,
                                                                     const common::Clock* clock) {
  if (master_key.size() != 32) return absl::InvalidArgumentError("master key must be 32 bytes");
  KBS_RETURN_IF_ERROR(db->Run([](storage::SqliteConnection& c) { return c.Exec(kSchema); }));
  return std::unique_ptr<LocalKeyStore>(new LocalKeyStore(db, std::move(master_key), clock));
}

absl::StatusOr<ResourceMetadata> LocalKeyStore::Put(absl::string_view path,
                                                    absl::Span<const uint8_t> value) {
  if (value.size() > kMaxResourceBytes) {
    return absl::ResourceExhaustedError(absl::StrCat("resource value is ", value.size(),
                                                     " bytes; the limit is ", kMaxResourceBytes));
  }
  KBS_ASSIGN_OR_RETURN(std::string nonce, common::RandomString(12));
  KBS_ASSIGN_OR_RETURN(
      common::AesGcmSealed sealed,
      common::AesGcmSeal(master_key_.span(), common::AsSpan(nonce), common::AsSpan(path), value));
  std::string digest = common::Digest(common::HashAlgorithm::kSha256, value);
  int64_t now = absl::ToUnixMicros(clock_->Now());
  ResourceMetadata md;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * stmt,
          c.Prepare("INSERT INTO resources(path, nonce, ciphertext, size, sha256, created_at, "
                    "updated_at) VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?6) ON CONFLICT(path) DO UPDATE "
                    "SET nonce=excluded.nonce, ciphertext=excluded.ciphertext, "
                    "size=excluded.size, sha256=excluded.sha256, updated_at=excluded.updated_at "
                    "RETURNING path, size, sha256, created_at, updated_at"));
      stmt->BindText(1, path);
      stmt->BindBlob(2, nonce);
      stmt->BindBlob(3, absl::StrCat(sealed.ciphertext, sealed.tag));
      stmt->BindInt64(4, static_cast<int64_t>(value.size()));
      stmt->BindBlob(5, digest);
      stmt->BindInt64(6, now);
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) return absl::InternalError("resource upsert returned no row");
      md = ReadMetadata(*stmt, 0);
      stmt->Reset();
      return absl::OkStatus();
    });
  }));
  Forget(path);
  return md;
}

absl::StatusOr<LocalKeyStore::SealedRow> LocalKeyStore::ReadRow(absl::string_view path) {
  {
    std::lock_guard<std::mutex> lock(cache_mu_);
    auto it = cache_.find(path);
    if (it != cache_.end()) return it->second;
  }
  SealedRow row;
  bool found = false;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT nonce, ciphertext FROM resources WHERE path = ?1"));
    stmt->BindText(1, path);
    KBS_ASSIGN_OR_RETURN(found, stmt->Step());
    if (found) {
      row.nonce = stmt->ColumnBlob(0);
      row.sealed = stmt->ColumnBlob(1);
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  if (!found) return absl::NotFoundError(absl::StrCat("resource ", path, " not found"));
  std::lock_guard<std::mutex> lock(cache_mu_);
  if (cache_bytes_ + row.sealed.size() > kMaxCacheBytes) {
    cache_.clear();
    cache_bytes_ = 0;
  }
  auto [it, inserted] = cache_.insert_or_assign(std::string(path), row);
  if (inserted) cache_bytes_ += row.sealed.size();
  return row;
}

void LocalKeyStore::Forget(absl::string_view path) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = cache_.find(path);
  if (it == cache_.end()) return;
  cache_bytes_ -= it->second.sealed.size();
  cache_.erase(it);
}

absl::StatusOr<common::SecretBytes> LocalKeyStore::Get(absl::string_view path) {
  KBS_ASSIGN_OR_RETURN(SealedRow row, ReadRow(path));
  if (row.nonce.size() != 12 || row.sealed.size() < 16) {
    return absl::DataLossError(absl::StrCat("stored resource ", path, " is malformed"));
  }
  absl::string_view body(row.sealed);
  auto plain =
      common::AesGcmOpen(master_key_.span(), common::AsSpan(row.nonce), common::AsSpan(path),
                         common::AsSpan(body.substr(0, body.size() - 16)),
                         common::AsSpan(body.substr(body.size() - 16)));
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat(
        "stored resource ", path, " failed authentication (tampered, or a different master key)"));
  }
  return plain;
}

absl::Status LocalKeyStore::Delete(absl::string_view path) {
  int64_t changes = 0;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("DELETE FROM resources WHERE path = ?1"));
    stmt->BindText(1, path);
    KBS_RETURN_IF_ERROR(stmt->Run());
    changes = c.Changes();
    stmt->Reset();
    return absl::OkStatus();
  }));
  Forget(path);
  if (changes == 0) return absl::NotFoundError(absl::StrCat("resource ", path, " not found"));
  return absl::OkStatus();
}

absl::StatusOr<std::vector<ResourceMetadata>> LocalKeyStore::List() {
  std::vector<ResourceMetadata> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT path, size, sha256, created_at, updated_at FROM "
                                   "resources ORDER BY path"));
    while (true) {
      KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
      if (!row) break;
      out.push_back(ReadMetadata(*stmt, 0));
    }
    stmt->Reset();
    return absl::OkStatus();
  }));
  return out;
}

}  // namespace kbs::keystore
