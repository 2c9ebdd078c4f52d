#include "kbs/core/policy_store.h"

#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kbs {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS resource_policy (
  id         INTEGER PRIMARY KEY CHECK (id = 1),
  document   TEXT NOT NULL,
  updated_at INTEGER NOT NULL  -- unix microseconds
) STRICT;
CREATE TABLE IF NOT EXISTS policy_versions (
  id         TEXT PRIMARY KEY,  -- sha256:<hex> of the canonical document
  source     TEXT NOT NULL,
  created_at INTEGER NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS policy_events (
  seq        INTEGER PRIMARY KEY AUTOINCREMENT,
  at         INTEGER NOT NULL,
  action     TEXT NOT NULL,      -- activate | shadow | shadow-off
  version_id TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS policy_state (
  slot       TEXT PRIMARY KEY,   -- active | shadow
  version_id TEXT NOT NULL
) STRICT;
CREATE TABLE IF NOT EXISTS refvalue_sets (
  name       TEXT PRIMARY KEY,
  document   TEXT NOT NULL,
  updated_at INTEGER NOT NULL
) STRICT;)sql";

absl::Time FromMicros(int64_t us) { return absl::FromUnixMicros(us); }

// Steps `q` to the end, calling `row` for each row; the statement is reset
// whatever happens.
absl::Status ForEachRow(storage::SqliteStatement* q, const std::function<void()>& row) {
  while (true) {
    absl::StatusOr<bool> more = q->Step();
    if (!more.ok() || !*more) {
      q->Reset();
      return more.status();
    }
    row();
  }
}

}  // namespace

absl::StatusOr<std::unique_ptr<PolicyStore>> PolicyStore::Create(storage::SqliteDatabase* db,
                                                                 const common::Clock* clock) {
  KBS_RETURN_IF_ERROR(db->Run([](storage::SqliteConnection& c) { return c.Exec(kSchema); }));
  return std::unique_ptr<PolicyStore>(new PolicyStore(db, clock));
}

absl::Status PolicyStore::Record(storage::SqliteConnection& c, absl::string_view slot,
                                 absl::string_view id) {
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * ev,
                       c.Prepare("INSERT INTO policy_events(at, action, version_id) "
                                 "VALUES(?1, ?2, ?3)"));
  ev->BindInt64(1, absl::ToUnixMicros(clock_->Now()));
  ev->BindText(2, slot == "active" ? "activate" : "shadow");
  ev->BindText(3, id);
  KBS_RETURN_IF_ERROR(ev->Run());
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * st,
                       c.Prepare("INSERT INTO policy_state(slot, version_id) VALUES(?1, ?2) "
                                 "ON CONFLICT(slot) DO UPDATE SET version_id=excluded.version_id"));
  st->BindText(1, slot);
  st->BindText(2, id);
  KBS_RETURN_IF_ERROR(st->Run());
  if (slot == "active") {
    // The first release's single-document table is superseded.
    KBS_RETURN_IF_ERROR(c.Exec("DELETE FROM resource_policy"));
  }
  return absl::OkStatus();
}

absl::Status PolicyStore::SaveAndActivate(absl::string_view id, absl::string_view source,
                                          absl::string_view slot) {
  return db_->Run([&](storage::SqliteConnection& c) {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * ins,
                           c.Prepare("INSERT INTO policy_versions(id, source, created_at) "
                                     "VALUES(?1, ?2, ?3) ON CONFLICT(id) DO NOTHING"));
      ins->BindText(1, id);
      ins->BindText(2, source);
      ins->BindInt64(3, absl::ToUnixMicros(clock_->Now()));
      KBS_RETURN_IF_ERROR(ins->Run());
      return Record(c, slot, id);
    });
  });
}

absl::StatusOr<StoredPolicy> PolicyStore::Resolve(storage::SqliteConnection& c,
                                                  absl::string_view id) {
  if (id.size() < 12) {
    return absl::InvalidArgumentError(
        "a policy version is its full id or a prefix of at least 12 characters");
  }
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                       c.Prepare("SELECT id, source, created_at FROM policy_versions "
                                 "WHERE substr(id, 1, length(?1)) = ?1 LIMIT 2"));
  q->BindText(1, id);
  std::vector<StoredPolicy> found;
  KBS_RETURN_IF_ERROR(ForEachRow(q, [&] {
    found.push_back({q->ColumnText(0), q->ColumnText(1), FromMicros(q->ColumnInt64(2))});
  }));
  if (found.empty()) {
    return absl::NotFoundError(absl::StrCat("no stored policy version ", id.substr(0, 80)));
  }
  if (found.size() > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("policy version prefix ", id.substr(0, 80), " is ambiguous"));
  }
  return found.front();
}

absl::StatusOr<StoredPolicy> PolicyStore::Activate(absl::string_view id, absl::string_view slot) {
  StoredPolicy out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(out, Resolve(c, id));
      return Record(c, slot, out.id);
    });
  }));
  return out;
}

absl::Status PolicyStore::ClearShadow() {
  return db_->Run([&](storage::SqliteConnection& c) {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * ev,
                           c.Prepare("INSERT INTO policy_events(at, action, version_id) "
                                     "VALUES(?1, 'shadow-off', '')"));
      ev->BindInt64(1, absl::ToUnixMicros(clock_->Now()));
      KBS_RETURN_IF_ERROR(ev->Run());
      return c.Exec("DELETE FROM policy_state WHERE slot = 'shadow'");
    });
  });
}

absl::StatusOr<PolicyState> PolicyStore::LoadState() {
  PolicyState out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("SELECT slot, version_id FROM policy_state"));
    return ForEachRow(q, [&] {
      std::string slot = q->ColumnText(0);
      if (slot == "active") out.active = q->ColumnText(1);
      if (slot == "shadow") out.shadow = q->ColumnText(1);
    });
  }));
  return out;
}

absl::StatusOr<std::optional<StoredPolicy>> PolicyStore::Get(absl::string_view id) {
  std::optional<StoredPolicy> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * q,
        c.Prepare("SELECT id, source, created_at FROM policy_versions WHERE id = ?1"));
    q->BindText(1, id);
    absl::StatusOr<bool> row = q->Step();
    if (row.ok() && *row) {
      out = StoredPolicy{q->ColumnText(0), q->ColumnText(1), FromMicros(q->ColumnInt64(2))};
    }
    q->Reset();
    return row.status();
  }));
  return out;
}

absl::StatusOr<std::vector<StoredPolicy>> PolicyStore::Versions(size_t limit) {
  std::vector<StoredPolicy> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    // The source is not listed (it may be large); Get() returns it.
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("SELECT id, created_at FROM policy_versions "
                                   "ORDER BY created_at DESC, id LIMIT ?1"));
    q->BindInt64(1, static_cast<int64_t>(limit));
    return ForEachRow(q, [&] {
      out.push_back({q->ColumnText(0), "", FromMicros(q->ColumnInt64(1))});
    });
  }));
  return out;
}

absl::StatusOr<std::vector<PolicyEvent>> PolicyStore::Events(size_t limit) {
  std::vector<PolicyEvent> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("SELECT seq, at, action, version_id FROM policy_events "
                                   "ORDER BY seq DESC LIMIT ?1"));
    q->BindInt64(1, static_cast<int64_t>(limit));
    return ForEachRow(q, [&] {
      out.push_back(
          {q->ColumnInt64(0), FromMicros(q->ColumnInt64(1)), q->ColumnText(2), q->ColumnText(3)});
    });
  }));
  return out;
}

absl::StatusOr<std::optional<std::string>> PolicyStore::LoadLegacy() {
  std::optional<std::string> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("SELECT document FROM resource_policy WHERE id = 1"));
    absl::StatusOr<bool> row = stmt->Step();
    if (row.ok() && *row) out = stmt->ColumnText(0);
    stmt->Reset();
    return row.status();
  }));
  return out;
}

absl::Status PolicyStore::PutRefValues(absl::string_view name, absl::string_view json) {
  return db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * stmt,
        c.Prepare("INSERT INTO refvalue_sets(name, document, updated_at) VALUES(?1, ?2, ?3) "
                  "ON CONFLICT(name) DO UPDATE SET document=excluded.document, "
                  "updated_at=excluded.updated_at"));
    stmt->BindText(1, name);
    stmt->BindText(2, json);
    stmt->BindInt64(3, absl::ToUnixMicros(clock_->Now()));
    absl::Status s = stmt->Run();
    stmt->Reset();
    return s;
  });
}

absl::Status PolicyStore::DeleteRefValues(absl::string_view name) {
  return db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * stmt,
                         c.Prepare("DELETE FROM refvalue_sets WHERE name = ?1"));
    stmt->BindText(1, name);
    absl::Status s = stmt->Run();
    stmt->Reset();
    if (s.ok() && c.Changes() == 0) {
      return absl::NotFoundError(absl::StrCat("no reference-value set ", name.substr(0, 128)));
    }
    return s;
  });
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> PolicyStore::LoadRefValues() {
  std::vector<std::pair<std::string, std::string>> out;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("SELECT name, document FROM refvalue_sets ORDER BY name"));
    return ForEachRow(q, [&] { out.emplace_back(q->ColumnText(0), q->ColumnText(1)); });
  }));
  return out;
}

}  // namespace kbs
