#include "kbs/core/policy_store.h"

#include "common/status_macros.h"

namespace kbs {

absl::StatusOr<std::unique_ptr<PolicyStore>> PolicyStore::Create(storage::SqliteDatabase* db,
                                                                 const common::Clock* clock) {
  KBS_RETURN_IF_ERROR(db->Run([](storage::SqliteConnection& c) {
    return c.Exec(R"sql(
CREATE TABLE IF NOT EXISTS resource_policy (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  document   TEXT NOT NULL,
  updated_at INTEGER NOT NULL  -- unix microseconds
) STRICT;)sql");
  }));
  return std::unique_ptr<PolicyStore>(new PolicyStore(db, clock));
}

absl::StatusOr<std::optional<std::string>> PolicyStore::Load() {
  std::optional<std::string> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT document FROM resource_policy WHERE id = 1"));
    KBS_ASSIGN_OR_RETURN(bool row, stmt->Step());
    if (row) out = stmt->ColumnText(0);
    stmt->Reset();
    return absl::OkStatus();
  }));
  return out;
}

absl::Status PolicyStore::Save(absl::string_view document) {
  return db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * stmt,
        c.Prepare("INSERT INTO resource_policy(id, document, updated_at) VALUES(1, ?1, ?2) "
                  "ON CONFLICT(id) DO UPDATE SET document=excluded.document, "
                  "updated_at=excluded.updated_at"));
    stmt->BindText(1, document);
    stmt->BindInt64(2, absl::ToUnixMicros(clock_->Now()));
    absl::Status s = stmt->Run();
    stmt->Reset();
    return s;
  });
}

}  // namespace kbs
