#include "kbs/storage/sqlite.h"

#include <pthread.h>

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kbs::storage {

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what) {
  std::string message =
      absl::StrCat(what, ": ", db != nullptr ? sqlite3_errmsg(db) : sqlite3_errstr(rc));
  switch (rc & 0xff) {
    case SQLITE_BUSY:
    case SQLITE_LOCKED:
    case SQLITE_IOERR:
    case SQLITE_FULL:
    case SQLITE_READONLY:
    case SQLITE_CANTOPEN:
    case SQLITE_NOMEM:
    case SQLITE_PERM:
    case SQLITE_PROTOCOL:
      return absl::UnavailableError(message);
    case SQLITE_CORRUPT:
    case SQLITE_NOTADB:
      return absl::DataLossError(message);
    case SQLITE_CONSTRAINT:
      return absl::AlreadyExistsError(message);
    default:
      return absl::InternalError(message);
  }
}

SqliteStatement::~SqliteStatement() { sqlite3_finalize(stmt_); }

void SqliteStatement::BindInt64(int index, int64_t value) {
  sqlite3_bind_int64(stmt_, index, value);
}
void SqliteStatement::BindText(int index, absl::string_view value) {
  sqlite3_bind_text(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}
void SqliteStatement::BindBlob(int index, absl::Span<const uint8_t> value) {
  sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}
void SqliteStatement::BindBlob(int index, absl::string_view value) {
  sqlite3_bind_blob(stmt_, index, value.data(), static_cast<int>(value.size()), SQLITE_TRANSIENT);
}

absl::StatusOr<bool> SqliteStatement::Step() {
  int rc = sqlite3_step(stmt_);
  if (rc == SQLITE_ROW) return true;
  if (rc == SQLITE_DONE) return false;
  return SqliteError(sqlite3_db_handle(stmt_), rc, "SQLite step failed");
}

absl::Status SqliteStatement::Run() {
  KBS_ASSIGN_OR_RETURN(bool row, Step());
  (void)row;
  return absl::OkStatus();
}

int64_t SqliteStatement::ColumnInt64(int index) const { return sqlite3_column_int64(stmt_, index); }

std::string SqliteStatement::ColumnText(int index) const {
  const auto* text = sqlite3_column_text(stmt_, index);
  int len = sqlite3_column_bytes(stmt_, index);
  return text == nullptr ? std::string() : std::string(reinterpret_cast<const char*>(text), len);
}

std::string SqliteStatement::ColumnBlob(int index) const {
  const void* blob = sqlite3_column_blob(stmt_, index);
  int len = sqlite3_column_bytes(stmt_, index);
  return blob == nullptr ? std::string() : std::string(static_cast<const char*>(blob), len);
}

absl::string_view SqliteStatement::ColumnBlobView(int index) const {
  const void* blob = sqlite3_column_blob(stmt_, index);
  int len = sqlite3_column_bytes(stmt_, index);
  return blob == nullptr ? absl::string_view()
                         : absl::string_view(static_cast<const char*>(blob), len);
}

void SqliteStatement::Reset() {
  sqlite3_reset(stmt_);
  sqlite3_clear_bindings(stmt_);
}

absl::StatusOr<std::unique_ptr<SqliteConnection>> SqliteConnection::Open(const std::string& path) {
  sqlite3* db = nullptr;
  int rc = sqlite3_open_v2(
      path.c_str(), &db, SQLITE_OPEN_READWRITE | SQLITE_OPEN_CREATE | SQLITE_OPEN_NOMUTEX, nullptr);
  if (rc != SQLITE_OK) {
    absl::Status s = SqliteError(db, rc, absl::StrCat("cannot open database ", path));
    sqlite3_close(db);
    return s;
  }
  auto conn = std::unique_ptr<SqliteConnection>(new SqliteConnection(db));
  sqlite3_busy_timeout(db, SqliteDatabase::kBusyTimeoutMs);
  sqlite3_extended_result_codes(db, 1);
  // WAL: readers never block the writer. synchronous=FULL: a committed
  // write survives power loss, which the key store and (later) the receipt
  // log rely on.
  KBS_RETURN_IF_ERROR(conn->Exec("PRAGMA journal_mode=WAL"));
  KBS_RETURN_IF_ERROR(conn->Exec("PRAGMA synchronous=FULL"));
  KBS_RETURN_IF_ERROR(conn->Exec("PRAGMA foreign_keys=ON"));
  // A WAL that a long reader let grow is cut back to this once it starts
  // over (see SqliteDatabase).
  KBS_RETURN_IF_ERROR(
      conn->Exec(absl::StrCat("PRAGMA journal_size_limit=", SqliteDatabase::kWalSizeLimitBytes)));
  return conn;
}

SqliteConnection::~SqliteConnection() {
  statements_.clear();
  sqlite3_close(db_);
}

absl::Status SqliteConnection::Exec(absl::string_view sql) {
  std::string text(sql);
  char* err = nullptr;
  int rc = sqlite3_exec(db_, text.c_str(), nullptr, nullptr, &err);
  sqlite3_free(err);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "SQLite exec failed");
  return absl::OkStatus();
}

absl::StatusOr<SqliteStatement*> SqliteConnection::Prepare(absl::string_view sql) {
  auto it = statements_.find(std::string_view(sql.data(), sql.size()));
  if (it != statements_.end()) {
    it->second->Reset();
    return it->second.get();
  }
  sqlite3_stmt* stmt = nullptr;
  int rc = sqlite3_prepare_v3(db_, sql.data(), static_cast<int>(sql.size()),
                              SQLITE_PREPARE_PERSISTENT, &stmt, nullptr);
  if (rc != SQLITE_OK) return SqliteError(db_, rc, "SQLite prepare failed");
  auto owned = std::make_unique<SqliteStatement>(stmt);
  SqliteStatement* raw = owned.get();
  statements_.emplace(std::string(sql), std::move(owned));
  return raw;
}

absl::Status SqliteConnection::Transaction(const std::function<absl::Status()>& body) {
  KBS_RETURN_IF_ERROR(Exec("BEGIN IMMEDIATE"));
  absl::Status status = body();
  if (status.ok()) {
    status = Exec("COMMIT");
    if (status.ok()) return status;
  }
  (void)Exec("ROLLBACK");
  return status;
}

int64_t SqliteConnection::Changes() const { return sqlite3_changes64(db_); }

absl::StatusOr<std::unique_ptr<SqliteDatabase>> SqliteDatabase::Open(const std::string& path,
                                                                     int pool_size,
                                                                     absl::string_view schema,
                                                                     Options options) {
  auto db = std::unique_ptr<SqliteDatabase>(new SqliteDatabase());
  db->options_ = options;
  db->restart_at_pages_ = options.restart_pages;
  for (int i = 0; i < std::max(1, pool_size); ++i) {
    KBS_ASSIGN_OR_RETURN(std::unique_ptr<SqliteConnection> conn, SqliteConnection::Open(path));
    if (i == 0 && !schema.empty()) KBS_RETURN_IF_ERROR(conn->Exec(schema));
    // Replaces SQLite's auto-checkpoint (itself a WAL hook).
    sqlite3_wal_hook(conn->db_, &SqliteDatabase::OnWalCommit, db.get());
    db->idle_.push_back(conn.get());
    db->all_.push_back(std::move(conn));
  }
  KBS_ASSIGN_OR_RETURN(db->checkpointer_, SqliteConnection::Open(path));
  sqlite3_wal_autocheckpoint(db->checkpointer_->db_, 0);
  db->checkpoint_thread_ = std::thread([d = db.get()] { d->CheckpointLoop(); });
  return db;
}

SqliteDatabase::~SqliteDatabase() {
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    stop_ = true;
  }
  checkpoint_cv_.notify_one();
  if (checkpoint_thread_.joinable()) checkpoint_thread_.join();
}

int SqliteDatabase::OnWalCommit(void* self, sqlite3* db, const char* name, int pages) {
  auto* d = static_cast<SqliteDatabase*>(self);
  if (pages < d->options_.checkpoint_pages) return SQLITE_OK;
  {
    std::lock_guard<std::mutex> lock(d->checkpoint_mu_);
    if (d->checkpoint_wanted_) return SQLITE_OK;
    d->checkpoint_wanted_ = true;
  }
  d->checkpoint_cv_.notify_one();
  return SQLITE_OK;
}

namespace {
int64_t SteadyNowNanos() {
  return std::chrono::duration_cast<std::chrono::nanoseconds>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}
}  // namespace

void SqliteDatabase::CheckpointLoop() {
  pthread_setname_np(pthread_self(), "kbs-wal-ckpt");
  std::unique_lock<std::mutex> lock(checkpoint_mu_);
  while (true) {
    checkpoint_cv_.wait(lock, [this] { return stop_ || checkpoint_wanted_; });
    if (stop_) return;
    checkpoint_wanted_ = false;
    lock.unlock();
    {
      std::lock_guard<std::mutex> pass(pass_mu_);
      // While a restart is due a pass would only delay it; after a second
      // without one (no thread calls RestartWalIfDue), passes resume.
      const bool waiting_for_restart = restart_ready_.load(std::memory_order_relaxed) &&
                                       SteadyNowNanos() - ready_since_ns_ < 1'000'000'000;
      if (!waiting_for_restart) {
        restart_ready_.store(false, std::memory_order_relaxed);
        int wal_pages = 0;
        int copied = 0;
        int rc = sqlite3_wal_checkpoint_v2(checkpointer_->db_, nullptr, SQLITE_CHECKPOINT_PASSIVE,
                                           &wal_pages, &copied);
        if (rc != SQLITE_OK && (rc & 0xff) != SQLITE_BUSY) {
          KBS_LOG(kWarning, "SQLite checkpoint failed: ", sqlite3_errmsg(checkpointer_->db_));
        }
        if (rc == SQLITE_OK && wal_pages < last_pass_wal_pages_) {
          // The WAL started over (by a restart, or by itself once a reader
          // that held it left): thresholds from before no longer apply.
          restart_at_pages_ = options_.restart_pages;
          awaiting_reset_ = false;
        }
        if (rc == SQLITE_OK) last_pass_wal_pages_ = wal_pages;
        // A restart's reset shows as a smaller WAL (above); should it never
        // come, the WAL growing on by another threshold ends the wait.
        if (awaiting_reset_ && wal_pages >= restart_wal_pages_ + options_.restart_pages) {
          awaiting_reset_ = false;
        }
        // Due only when this pass copied all of it (a reader may have held
        // it back), so the restart has only the commits since to copy.
        if (rc == SQLITE_OK && !awaiting_reset_ && wal_pages >= restart_at_pages_ &&
            copied == wal_pages) {
          ready_since_ns_ = SteadyNowNanos();
          restart_ready_.store(true, std::memory_order_release);
        }
      }
    }
    lock.lock();
  }
}

void SqliteDatabase::RestartWalIfDue() {
  if (!restart_ready_.load(std::memory_order_acquire)) return;
  // Not while a pass runs (SQLite would refuse it): next time.
  std::unique_lock<std::mutex> pass(pass_mu_, std::try_to_lock);
  if (!pass.owns_lock() || !restart_ready_.load(std::memory_order_relaxed)) return;
  SqliteConnection* conn;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (idle_.empty()) return;  // all busy: next time
    conn = idle_.back();
    idle_.pop_back();
  }
  restart_ready_.store(false, std::memory_order_relaxed);
  sqlite3_busy_timeout(conn->db_, kRestartWaitMs);
  int wal_pages = 0;
  int copied = 0;
  int rc =
      sqlite3_wal_checkpoint_v2(conn->db_, nullptr, SQLITE_CHECKPOINT_RESTART, &wal_pages, &copied);
  sqlite3_busy_timeout(conn->db_, kBusyTimeoutMs);
  if (rc == SQLITE_OK) {
    // The next commit writes the WAL from its start.
    restart_at_pages_ = options_.restart_pages;
    awaiting_reset_ = true;
    restart_wal_pages_ = wal_pages;
    wal_restarts_.fetch_add(1, std::memory_order_relaxed);
  } else {
    // A reader still uses the WAL (BUSY) or the checkpoint failed: again
    // once it has grown as much again.
    if ((rc & 0xff) != SQLITE_BUSY) {
      KBS_LOG(kWarning, "SQLite WAL restart failed: ", sqlite3_errmsg(conn->db_));
    }
    restart_at_pages_ = std::max(wal_pages, 0) + options_.restart_pages;
  }
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(conn);
  }
  cv_.notify_one();
}

absl::Status SqliteDatabase::Run(const std::function<absl::Status(SqliteConnection&)>& fn) {
  SqliteConnection* conn;
  {
    std::unique_lock<std::mutex> lock(mu_);
    cv_.wait(lock, [this] { return !idle_.empty(); });
    conn = idle_.back();
    idle_.pop_back();
  }
  absl::Status status = fn(*conn);
  {
    std::lock_guard<std::mutex> lock(mu_);
    idle_.push_back(conn);
  }
  cv_.notify_one();
  return status;
}

}  // namespace kbs::storage
