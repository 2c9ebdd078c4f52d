// A small RAII layer over SQLite: connections in WAL mode with a busy
// timeout, cached prepared statements, and a fixed-size pool. Errors become
// absl::Status (Unavailable for I/O, busy or full conditions, so callers fail
// closed with a retryable error; Internal for SQL bugs).
#ifndef KBS_KBS_STORAGE_SQLITE_H_
#define KBS_KBS_STORAGE_SQLITE_H_

#include <sqlite3.h>

#include <condition_variable>
#include <functional>
#include <map>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kbs::storage {

// A prepared statement owned by its connection; reset after each use.
class SqliteStatement final {
 public:
  explicit SqliteStatement(sqlite3_stmt* stmt) : stmt_(stmt) {}
  ~SqliteStatement();
  SqliteStatement(const SqliteStatement&) = delete;
  SqliteStatement& operator=(const SqliteStatement&) = delete;

  // Indexes are 1-based, as in SQLite.
  void BindInt64(int index, int64_t value);
  void BindText(int index, absl::string_view value);
  void BindBlob(int index, absl::Span<const uint8_t> value);
  void BindBlob(int index, absl::string_view value);
  // true when a row is available, false when done.
  absl::StatusOr<bool> Step();
  // Runs a statement that returns no rows.
  absl::Status Run();
  int64_t ColumnInt64(int index) const;
  std::string ColumnText(int index) const;
  std::string ColumnBlob(int index) const;
  // Valid until the next Step or Reset.
  absl::string_view ColumnBlobView(int index) const;
  // Resets and clears bindings for the next use.
  void Reset();

 private:
  friend class SqliteConnection;
  sqlite3_stmt* stmt_;
};

// One connection; not thread-safe (the pool hands it to one thread at a time).
class SqliteConnection final {
 public:
  static absl::StatusOr<std::unique_ptr<SqliteConnection>> Open(const std::string& path);
  ~SqliteConnection();

  absl::Status Exec(absl::string_view sql);
  // Returns the cached statement for `sql`, reset and ready to bind.
  absl::StatusOr<SqliteStatement*> Prepare(absl::string_view sql);
  // Runs `body` inside BEGIN IMMEDIATE ... COMMIT; rolls back on error.
  absl::Status Transaction(const std::function<absl::Status()>& body);
  int64_t Changes() const;

 private:
  friend class SqliteDatabase;
  explicit SqliteConnection(sqlite3* db) : db_(db) {}
  sqlite3* db_;
  std::map<std::string, std::unique_ptr<SqliteStatement>, std::less<>> statements_;
};

absl::Status SqliteError(sqlite3* db, int rc, absl::string_view what);

// A fixed pool of connections to one database file. Thread-safe.
//
// WAL checkpoints run on a background thread with its own connection
// instead of inside whichever commit crossed a threshold: a commit then costs
// its own pages and one fsync, not a copy of the whole WAL into the database
// as well.
// - Once the WAL holds `checkpoint_pages`, every commit asks for a PASSIVE
//   pass (never blocking readers or writers; requests made while one runs
//   fold into the next). Small continual passes spread the database's writes
//   and syncs; a pass per 4 MiB made I/O bursts that stalled commits' fsyncs.
// - Under continuous commits a PASSIVE pass never finds the WAL fully copied
//   (commits land while it runs), so SQLite never starts the WAL over and the
//   file grows without bound (110 MB in 3.5 s of durable appends). Once a
//   pass has copied a WAL of `restart_pages`, RestartWalIfDue (which the
//   continuous writer calls between its transactions, after it has answered
//   its waiters) runs a RESTART checkpoint: it copies the few pages committed
//   since and the next commit writes the WAL from its start. It waits at most
//   kRestartWaitMs for a reader (an auditor's download) and is tried again
//   `restart_pages` later. If no one restarts within a second (the writer
//   is stuck), passes run again, about once a second.
// - journal_size_limit truncates a WAL that a long reader let grow, once it
//   starts over.
class SqliteDatabase final {
 public:
  struct Options {
    int checkpoint_pages = 1000;  // 4 MiB at SQLite's default page size
    int restart_pages = 8192;     // 32 MiB
  };
  static constexpr int kRestartWaitMs = 10;
  static constexpr int kBusyTimeoutMs = 5000;
  static constexpr int64_t kWalSizeLimitBytes = 64 << 20;

  // Opens `pool_size` connections and applies `schema` (idempotent DDL) once.
  static absl::StatusOr<std::unique_ptr<SqliteDatabase>> Open(const std::string& path,
                                                              int pool_size,
                                                              absl::string_view schema,
                                                              Options options);
  static absl::StatusOr<std::unique_ptr<SqliteDatabase>> Open(const std::string& path,
                                                              int pool_size,
                                                              absl::string_view schema) {
    return Open(path, pool_size, schema, Options());
  }
  ~SqliteDatabase();

  // Borrows a connection for the duration of `fn`.
  absl::Status Run(const std::function<absl::Status(SqliteConnection&)>& fn);

  // Starts the WAL over when it is due (see above); cheap otherwise. For a
  // thread that commits continuously, between its transactions; it must not
  // hold a connection of this pool (its own transaction would make the
  // RESTART wait out kRestartWaitMs and fail).
  void RestartWalIfDue();
  // Restarts done so far (metrics, tests).
  int64_t wal_restarts() const { return wal_restarts_.load(std::memory_order_relaxed); }

 private:
  SqliteDatabase() = default;
  static int OnWalCommit(void* self, sqlite3* db, const char* name, int pages);
  void CheckpointLoop();

  std::mutex mu_;
  std::condition_variable cv_;
  std::vector<std::unique_ptr<SqliteConnection>> all_;
  std::vector<SqliteConnection*> idle_;

  Options options_;
  std::unique_ptr<SqliteConnection> checkpointer_;
  std::mutex checkpoint_mu_;
  std::condition_variable checkpoint_cv_;
  bool checkpoint_wanted_ = false;  // guarded by checkpoint_mu_
  // Held by a checkpoint pass and by a restart (one at a time); guards the
  // fields below it that are not atomic.
  std::mutex pass_mu_;
  // The WAL size at which a restart is due (raised after one was refused).
  int restart_at_pages_ = 0;
  // After a restart, until a pass sees the WAL smaller than the last pass
  // did (it started over): a pass still sees the old size and must not ask
  // for another restart.
  bool awaiting_reset_ = false;
  int restart_wal_pages_ = 0;    // the WAL size the last restart copied
  int last_pass_wal_pages_ = 0;  // the WAL size the last pass saw
  // When the due restart was found (steady clock, ns); passes wait for it
  // for a second at most.
  int64_t ready_since_ns_ = 0;
  // Set by a pass that copied a WAL of restart_at_pages_.
  std::atomic<bool> restart_ready_{false};
  std::atomic<int64_t> wal_restarts_{0};
  bool stop_ = false;  // guarded by checkpoint_mu_
  std::thread checkpoint_thread_;
};

}  // namespace kbs::storage

#endif  // KBS_KBS_STORAGE_SQLITE_H_
