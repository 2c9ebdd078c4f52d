// The receipt log: every release decision appended durably to a Merkle tree
// (RFC 6962 hashing) in SQLite, with signed C2SP checkpoints and O(log n)
// proofs (kbs/receipts/merkle.h, note.h).
//
// Writes: Append() queues a receipt; one writer thread takes everything
// queued (group commit), assigns indexes, computes leaf and completed
// subtree hashes from its in-memory right frontier, and commits receipts
// and nodes in one transaction (WAL, synchronous=FULL). Append returns only
// once its receipt is durable, so the broker releases a key only after
// that. If the log cannot be written, or its start-up verification failed,
// Append returns Unavailable and nothing is released.
//
// Start-up verification: every stored leaf is re-hashed and checked against
// the stored leaf hashes, indexes must be contiguous, and the latest signed
// checkpoint must verify under the log's key and match the stored tree.
// On any mismatch the log is halted (reads work, appends are refused) with
// the reason, until an operator restores the database.
#ifndef KBS_KBS_RECEIPTS_RECEIPT_LOG_H_
#define KBS_KBS_RECEIPTS_RECEIPT_LOG_H_

#include <atomic>
#include <condition_variable>
#include <cstdint>
#include <deque>
#include <functional>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <thread>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/fiber.h"
#include "common/openssl_util.h"
#include "kbs/receipts/merkle.h"
#include "kbs/receipts/note.h"
#include "kbs/receipts/receipt.h"
#include "kbs/storage/sqlite.h"

namespace kbs::receipts {

// Reads the log's Ed25519 signing key (PEM, mode 0600) or creates it there.
absl::StatusOr<common::EvpPkeyPtr> LoadOrCreateLogKey(const std::string& path);

struct ReceiptQuery {
  std::optional<absl::Time> from, to;  // [from, to)
  std::string decision, resource, key_version, image, measurement, tee, policy_version, rule,
      chip_id;
  uint64_t after_index = 0;  // pagination: receipts with index >= after_index
  size_t limit = 100;
};

struct StoredReceipt {
  uint64_t index = 0;
  std::string leaf;
};

class ReceiptLog final {
 public:
  struct Options {
    // The checkpoint origin line, e.g. "kbs.example.com/receipts".
    std::string origin = "kbs/receipts";
    absl::Duration checkpoint_interval = absl::Seconds(10);
    size_t max_batch = 2048;
    // Group commit under concurrency: a batch smaller than `commit_batch`
    // waits up to `commit_delay` for more appends (only when the previous
    // batch held more than one receipt). Trades that much latency for fewer
    // fsyncs and pages per receipt; zero turns it off.
    absl::Duration commit_delay = absl::Milliseconds(1);
    size_t commit_batch = 8;
    // Posting lists (receipt_postings) are written in bulk, in a transaction
    // of their own after the commit that makes `index_batch` receipts wait,
    // or `index_interval` after the last flush (and at shutdown); queries
    // scan the receipts not yet indexed. Small values write the keys' pages
    // often (tests use 1 and 7 to cross the boundary).
    size_t index_batch = 4096;
    absl::Duration index_interval = absl::Seconds(1);
    // Raw evidence older than this is deleted (0: kept forever).
    absl::Duration evidence_retention = absl::ZeroDuration();
    // When set, every signed checkpoint is also written here (atomically),
    // outside the database, and start-up verification holds the database to
    // the newest of the two: deleting checkpoint rows cannot make the log
    // sign a rewritten history.
    std::string checkpoint_file;
  };

  // Opens (creating tables), verifies the stored log and starts the writer.
  // A failed verification does not fail Open: the log starts halted and
  // halted_reason() says why. Errors only for an unusable database.
  static absl::StatusOr<std::unique_ptr<ReceiptLog>> Open(storage::SqliteDatabase* db,
                                                          std::unique_ptr<NoteSigner> signer,
                                                          const common::Clock* clock,
                                                          Options options);
  ~ReceiptLog();

  // Appends durably; fills index and time. Unavailable when the log cannot
  // be written (the caller must then release nothing).
  absl::StatusOr<Receipt> Append(Receipt receipt);

  // Keeps the evidence of an attestation (zlib-compressed) under the id of
  // the token it earned (token ids are time-ordered, so records are appended,
  // not inserted at random), written with the next batch of receipts, before
  // any receipt queued after this call. `sha256_hex` is the digest the
  // caller computed for the token; Evidence() re-checks it on every read.
  absl::Status StoreEvidence(absl::string_view token_id, absl::string_view evidence,
                             absl::string_view sha256_hex);
  // The evidence a receipt names: kept under `token_id` with this digest, or
  // (stored by earlier releases) by digest alone. NotFound when absent or
  // deleted by retention.
  absl::StatusOr<std::string> Evidence(absl::string_view token_id, absl::string_view sha256_hex);

  // The latest signed checkpoint note; signs one first if none covers the
  // current tree and `fresh` is set.
  absl::StatusOr<std::string> LatestCheckpoint(bool fresh);
  uint64_t size() const;
  const std::string& verifier_key() const { return verifier_key_; }
  const std::string& origin() const { return options_.origin; }
  // Empty when healthy.
  std::string halted_reason() const;

  // Receipts [start, end) (clipped to the log's size), at most 1,000.
  absl::StatusOr<std::vector<StoredReceipt>> Range(uint64_t start, uint64_t end);
  static constexpr uint64_t kMaxRange = 10000;  // per AppendLeafLines
  // Receipts [start, end) (at most kMaxRange), each leaf appended to
  // `out` followed by a newline (JCS leaves hold no raw newline), with no
  // intermediate copies: the bulk download behind `kbsctl audit verify`.
  // Stops early (after at least one leaf) once `out` holds max_bytes.
  static constexpr size_t kMaxLeafLineBytes = 32 << 20;
  absl::Status AppendLeafLines(uint64_t start, uint64_t end, std::string& out,
                               size_t max_bytes = kMaxLeafLineBytes);
  absl::StatusOr<std::vector<StoredReceipt>> Query(const ReceiptQuery& q);
  absl::StatusOr<std::vector<Hash>> InclusionProof(uint64_t index, uint64_t size);
  absl::StatusOr<std::vector<Hash>> ConsistencyProof(uint64_t size1, uint64_t size2);
  // The C2SP tlog-proof of receipt `index` against the latest checkpoint
  // (signing a fresh one if the latest does not cover it).
  absl::StatusOr<TlogProof> Prove(uint64_t index);

 private:
  // One queued append, shared by its appender and the writer.
  struct Pending {
    explicit Pending(LeafTemplate l) : leaf(std::move(l)) {}
    LeafTemplate leaf;
    Receipt receipt;
    std::vector<int64_t> keys;  // its query keys (QueryKeys)
    // Set by the writer before `done`.
    absl::Status status;
    uint64_t index = 0;
    absl::Time time;
    // Notified by the writer (or another appender) after status, index and
    // time are set. An appender on an HTTP fiber is suspended meanwhile (its
    // thread serves other requests); one on a plain thread blocks on a futex.
    common::Event done;
    // Appenders this one wakes once woken itself: the writer notifies the
    // fibers and two blocked threads, and each woken thread two more, so
    // the futex wakeups of a batch run on every core instead of serially on
    // the writer's.
    std::vector<std::shared_ptr<Pending>> wake;
  };
  class DbNodes;
  // Query keys of committed receipts not yet in posting lists: per key, its
  // receipt indexes packed as receipt_postings stores them (8-byte
  // little-endian, ascending), so a flush writes each list as it is.
  class PostingBacklog {
   public:
    // Receipts come in index order: `idx` is never below the key's last.
    void Add(int64_t key, int64_t idx);
    void Clear();
    // Inserts one receipt_postings row per key, in key order.
    absl::Status Write(storage::SqliteConnection& c) const;

   private:
    struct List {
      int64_t last = -1;
      std::string idxs;
    };
    absl::flat_hash_map<int64_t, List> lists_;
  };
  struct PendingEvidence {
    std::string token_id;
    std::string sha256;
    int64_t size;
    std::string packed;
    absl::Time at;
  };

  ReceiptLog(storage::SqliteDatabase* db, std::unique_ptr<NoteSigner> signer,
             const common::Clock* clock, Options options);
  absl::Status Verify();
  void WriterLoop();
  // Writes `batch` (and `evidence`) in one transaction and sets each
  // Pending's status, index and time (not `done`); the committed receipts'
  // query keys join index_backlog_.
  void CommitBatch(const std::vector<std::shared_ptr<Pending>>& batch,
                   std::vector<PendingEvidence>& evidence);
  // Writes index_backlog_ as posting lists, with receipt_index, in their own
  // transaction once index_batch receipts wait, index_interval passed, or
  // `force`. A failure is logged and retried each index_interval: postings
  // are derived data and never hold up a receipt.
  void MaybeFlushPostings(bool force);
  // Reads the keys of receipts [indexed_, size_) into index_backlog_.
  absl::Status LoadKeyBacklog();
  absl::StatusOr<std::string> SignCheckpointLocked();
  // Calls `fn` for receipts [start, end) in order until it returns false.
  absl::Status ForEachInRange(uint64_t start, uint64_t end, uint64_t max,
                              const std::function<bool(uint64_t, absl::string_view)>& fn);
  void MaybeCheckpoint();
  // Deletes expired evidence (Options::evidence_retention), oldest first.
  void MaybeExpireEvidence();

  storage::SqliteDatabase* db_;
  std::unique_ptr<NoteSigner> signer_;
  std::string verifier_key_;
  const common::Clock* clock_;
  Options options_;

  mutable std::mutex mu_;
  std::condition_variable cv_;  // writer: work queued / stop
  std::deque<std::shared_ptr<Pending>> queue_;
  std::vector<PendingEvidence> evidence_queue_;
  bool stop_ = false;
  // The queue length at which an appender wakes the writer: 1 while it
  // waits for work, commit_batch while it gives a batch time to grow (so a
  // growing batch does not wake it once per append).
  size_t wake_at_ = 1;

  // Tree state, guarded by mu_; changed only by the writer after a commit.
  uint64_t size_ = 0;
  std::vector<std::optional<Hash>> frontier_ = std::vector<std::optional<Hash>>(64);
  absl::Time last_time_ = absl::UnixEpoch();
  std::string halted_;
  // The posting lists cover receipts [0, indexed_) (guarded by mu_).
  uint64_t indexed_ = 0;
  // Writer only: the (key, index) rows of receipts [indexed_, size_), the
  // last flush attempt and the failures since the last success.
  PostingBacklog index_backlog_;
  absl::Time index_flushed_at_ = absl::InfinitePast();
  int index_failures_ = 0;
  absl::Time retention_at_ = absl::InfinitePast();  // writer only
  // Serializes checkpoint signing (and its database write).
  std::mutex checkpoint_mu_;
  uint64_t checkpoint_size_ = 0;
  std::string checkpoint_note_;
  absl::Time checkpoint_at_ = absl::InfinitePast();

  std::thread writer_;
};

}  // namespace kbs::receipts

#endif  // KBS_KBS_RECEIPTS_RECEIPT_LOG_H_
