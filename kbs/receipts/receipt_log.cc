#include "kbs/receipts/receipt_log.h"

#include <pthread.h>
#include <zlib.h>

#include <algorithm>
#include <array>
#include <functional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/jcs.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kbs::receipts {
namespace {

constexpr absl::string_view kSchema = R"sql(
CREATE TABLE IF NOT EXISTS receipts (
  idx             INTEGER PRIMARY KEY,
  time            INTEGER NOT NULL,   -- unix microseconds
  decision        TEXT NOT NULL,
  resource        TEXT NOT NULL,
  key_version     TEXT NOT NULL,
  tee             TEXT NOT NULL,
  policy_version  TEXT NOT NULL,
  rule            TEXT NOT NULL,
  chip_id         TEXT NOT NULL,
  evidence_sha256 TEXT NOT NULL,
  leaf            BLOB NOT NULL       -- the JCS bytes the tree hashes
) STRICT;
-- No index on time: receipt times never decrease with the index, so a time
-- is found by binary search over idx (Query), and appends write one index
-- fewer.
-- Query keys: the first 8 bytes of SHA-256("<kind>:<value>") as a signed
-- integer, for "resource:<path>", "image:<reference or digest>" and
-- "measurement:<hex>" (QueryKey); a match is re-checked against the
-- receipt itself. Posting lists: one row per key and flush, holding the
-- ascending indexes of the receipts with that key (8 bytes each, little
-- endian), keyed by the last of them. They are derived data (rebuilt from
-- the leaves), so the writer adds them in bulk, inside a receipt commit once
-- Options::index_batch receipts wait or index_interval passed: a flush
-- writes one row per distinct key instead of a row per key and receipt in
-- every group commit (whose pages were 60 % of what a commit wrote).
CREATE TABLE IF NOT EXISTS receipt_postings (
  key  INTEGER NOT NULL,
  last INTEGER NOT NULL,
  idxs BLOB NOT NULL,
  PRIMARY KEY (key, last)
) STRICT, WITHOUT ROWID;
-- The postings cover receipts [0, indexed); Query scans the rest. Logs
-- from before this table had every receipt indexed, hence the count (the
-- last index plus one: one b-tree descent, not a scan).
CREATE TABLE IF NOT EXISTS receipt_index (
  id      INTEGER PRIMARY KEY CHECK (id = 0),
  indexed INTEGER NOT NULL
) STRICT;
INSERT INTO receipt_index(id, indexed)
  SELECT 0, (SELECT COALESCE(MAX(idx) + 1, 0) FROM receipts)
  WHERE NOT EXISTS (SELECT 1 FROM receipt_index);
-- Complete subtrees: level L, index i covers leaves [i << L, (i + 1) << L).
-- Keyed by the last leaf covered, ((i + 1) << L) - 1, then the level: the
-- nodes an append completes all share the new leaf's key, so a batch of
-- appends writes to the right edge of one b-tree (a page or two) instead of
-- one page per tree level.
CREATE TABLE IF NOT EXISTS tree_nodes (
  last  INTEGER NOT NULL,
  level INTEGER NOT NULL,
  hash  BLOB NOT NULL,
  PRIMARY KEY (last, level)
) STRICT, WITHOUT ROWID;
CREATE TABLE IF NOT EXISTS checkpoints (
  size      INTEGER PRIMARY KEY,
  note      TEXT NOT NULL,
  signed_at INTEGER NOT NULL
) STRICT;
-- Evidence, keyed by the id of the token the attestation earned (every
-- receipt of the session names it). Token ids start with the time, so a
-- record is appended beside the previous one; a SHA-256 key put each at a
-- random place in its index (40 % of the pages an RCAR commit wrote).
CREATE TABLE IF NOT EXISTS token_evidence (
  token_id  TEXT NOT NULL UNIQUE,
  sha256    TEXT NOT NULL,
  size      INTEGER NOT NULL,
  data      BLOB NOT NULL,            -- zlib
  stored_at INTEGER NOT NULL
) STRICT;
-- What earlier releases kept, found by digest (retention empties it).
CREATE TABLE IF NOT EXISTS evidence (
  sha256    TEXT PRIMARY KEY,
  size      INTEGER NOT NULL,
  data      BLOB NOT NULL,            -- zlib
  stored_at INTEGER NOT NULL
) STRICT;)sql";

constexpr size_t kMaxEvidenceBytes = 16 << 20;
constexpr uint64_t kMaxQueryLimit = 1000;
constexpr uint64_t kMaxRangeRead = 1000;  // Range()

// A zlib stream of `in`: Z_BEST_SPEED with the window and hash table sized
// to the input (compress2's defaults allocate and clear about 256 KiB of
// state, which costs more than compressing a few KiB of evidence), and
// stored blocks (level 0) under 1 KiB, where compression saves a few dozen
// bytes for several microseconds per attestation. Any inflate reads either
// (smaller windows and stored blocks are part of the format).
absl::StatusOr<std::string> Deflate(absl::string_view in) {
  constexpr size_t kStoreBelow = 1024;
  int window_bits = 9;  // zlib's smallest usable window
  while (window_bits < 15 && (size_t{1} << window_bits) < in.size()) ++window_bits;
  const int mem_level = std::clamp(window_bits - 7, 1, 8);
  const int level = in.size() < kStoreBelow ? Z_NO_COMPRESSION : Z_BEST_SPEED;
  z_stream zs{};
  if (deflateInit2(&zs, level, Z_DEFLATED, window_bits, mem_level, Z_DEFAULT_STRATEGY) != Z_OK) {
    return absl::InternalError("evidence compression failed: deflateInit2");
  }
  // deflateBound is exact for the default parameters only; with a small
  // window and memLevel, stored blocks can need more (a 7-byte input did), so
  // the output grows until deflate finishes.
  std::string out(deflateBound(&zs, in.size()) + 64, '\0');
  zs.next_in = reinterpret_cast<Bytef*>(const_cast<char*>(in.data()));
  zs.avail_in = static_cast<uInt>(in.size());
  size_t written = 0;
  int rc = Z_OK;
  while (true) {
    zs.next_out = reinterpret_cast<Bytef*>(out.data() + written);
    zs.avail_out = static_cast<uInt>(out.size() - written);
    rc = deflate(&zs, Z_FINISH);
    written = out.size() - zs.avail_out;
    if (rc != Z_OK && rc != Z_BUF_ERROR) break;
    if (zs.avail_out > 0 && rc == Z_BUF_ERROR) break;  // no progress possible
    out.resize(out.size() * 2);
  }
  deflateEnd(&zs);
  if (rc != Z_STREAM_END) return absl::InternalError("evidence compression failed: deflate");
  out.resize(written);
  return out;
}

absl::Status Halted(absl::string_view why) {
  return absl::UnavailableError(absl::StrCat("receipt log halted: ", why));
}

Hash ToHash(absl::string_view bytes) {
  Hash h{};
  std::copy_n(bytes.begin(), std::min(bytes.size(), h.size()), h.begin());
  return h;
}

absl::string_view HashBytes(const Hash& h) {
  return absl::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

Hash RootOf(const std::vector<std::optional<Hash>>& frontier) {
  std::optional<Hash> root;
  for (const std::optional<Hash>& f : frontier) {
    if (f.has_value()) root = root.has_value() ? NodeHash(*f, *root) : *f;
  }
  return root.value_or(EmptyRoot());
}

// Adds leaf `index` with hash `h` to `frontier`, appending every subtree it
// completes (level 0 included) to `nodes`.
void AddLeaf(uint64_t index, const Hash& h, std::vector<std::optional<Hash>>& frontier,
             std::vector<std::pair<NodeId, Hash>>* nodes) {
  Hash carry = h;
  int level = 0;
  if (nodes != nullptr) nodes->push_back({{0, index}, carry});
  while (frontier[level].has_value()) {
    carry = NodeHash(*frontier[level], carry);
    frontier[level].reset();
    ++level;
    if (nodes != nullptr) nodes->push_back({{level, index >> level}, carry});
  }
  frontier[level] = carry;
}

int64_t QueryKey(absl::string_view kind, absl::string_view value) {
  std::string d = common::Sha256(absl::StrCat(kind, ":", value));
  uint64_t k = 0;
  for (int i = 0; i < 8; ++i) k = (k << 8) | static_cast<unsigned char>(d[i]);
  return static_cast<int64_t>(k);
}

// "sha256:<hex>" of a "name@sha256:<hex>" reference ("" without one): an
// image filter matches the full reference or its digest.
absl::string_view ImageDigest(absl::string_view image) {
  size_t at = image.find('@');
  return at == absl::string_view::npos ? absl::string_view() : image.substr(at + 1);
}

// The query keys of a receipt, sorted and distinct.
std::vector<int64_t> QueryKeys(const Receipt& r) {
  std::vector<int64_t> keys;
  if (!r.resource.empty()) keys.push_back(QueryKey("resource", r.resource));
  for (const std::string& image : r.images) {
    keys.push_back(QueryKey("image", image));
    if (absl::string_view digest = ImageDigest(image); !digest.empty()) {
      keys.push_back(QueryKey("image", digest));
    }
  }
  for (const auto& [name, value] : r.measurements) keys.push_back(QueryKey("measurement", value));
  std::sort(keys.begin(), keys.end());
  keys.erase(std::unique(keys.begin(), keys.end()), keys.end());
  return keys;
}

// Whether a receipt really has the image and measurement a query asked
// for (query keys can collide).
bool MatchesTerms(const Receipt& r, const ReceiptQuery& q) {
  if (!q.image.empty()) {
    bool found = false;
    for (const std::string& image : r.images) {
      found = found || image == q.image || ImageDigest(image) == q.image;
    }
    if (!found) return false;
  }
  if (!q.measurement.empty()) {
    bool found = false;
    for (const auto& [name, value] : r.measurements) found = found || value == q.measurement;
    if (!found) return false;
  }
  return true;
}

absl::Status ForEachRow(storage::SqliteStatement* q, const std::function<absl::Status()>& row) {
  while (true) {
    absl::StatusOr<bool> more = q->Step();
    if (!more.ok() || !*more) {
      q->Reset();
      return more.status();
    }
    if (absl::Status s = row(); !s.ok()) {
      q->Reset();
      return s;
    }
  }
}

// Whether the schema holds a `type` ("table", "index") called `name`.
absl::StatusOr<bool> HasSchemaObject(storage::SqliteConnection& c, absl::string_view type,
                                     absl::string_view name) {
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                       c.Prepare("SELECT 1 FROM sqlite_master WHERE type = ?1 AND name = ?2"));
  q->BindText(1, type);
  q->BindText(2, name);
  absl::StatusOr<bool> found = q->Step();
  q->Reset();
  return found;
}

// The last leaf a complete subtree covers (the tree_nodes key).
int64_t LastLeaf(const NodeId& id) {
  return static_cast<int64_t>(((id.index + 1) << id.level) - 1);
}

// Earlier releases kept the tree in merkle_nodes keyed by (level, idx), and
// indexed receipts by time; both move to the current layout in one
// transaction (the tree's hashes are copied as they are: start-up
// verification then checks them as usual).
absl::Status MigrateTreeLayout(storage::SqliteDatabase* db) {
  return db->Run([](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(bool old_table, HasSchemaObject(c, "table", "merkle_nodes"));
    KBS_ASSIGN_OR_RETURN(bool old_index, HasSchemaObject(c, "index", "receipts_time"));
    if (!old_table && !old_index) return absl::OkStatus();
    KBS_LOG(kInfo, "receipt log: moving the tree to its current layout (tree_nodes)");
    return c.Transaction([&]() -> absl::Status {
      if (old_table) {
        KBS_RETURN_IF_ERROR(
            c.Exec("INSERT OR REPLACE INTO tree_nodes(last, level, hash) "
                   "SELECT ((idx + 1) << level) - 1, level, hash FROM merkle_nodes; "
                   "DROP TABLE merkle_nodes;"));
      }
      return c.Exec("DROP INDEX IF EXISTS receipts_time;");
    });
  });
}

constexpr absl::string_view kInsertPosting =
    "INSERT INTO receipt_postings(key, last, idxs) VALUES(?1, ?2, ?3)";

absl::Status InsertPosting(storage::SqliteStatement* insert, int64_t key, int64_t last,
                           absl::string_view idxs) {
  insert->BindInt64(1, key);
  insert->BindInt64(2, last);
  insert->BindBlob(3, idxs);
  absl::Status st = insert->Run();
  insert->Reset();
  return st;
}

void AppendPostingIndex(std::string& idxs, int64_t idx) {
  const auto v = static_cast<uint64_t>(idx);
  for (int b = 0; b < 8; ++b) idxs.push_back(static_cast<char>(v >> (8 * b)));
}

// Writes (key, receipt index) rows as receipt_postings rows, one per key
// (sorting `rows`). Each call's indexes must all follow those already
// written for the same keys.
absl::Status WritePostings(storage::SqliteConnection& c,
                           std::vector<std::pair<int64_t, int64_t>>& rows) {
  std::sort(rows.begin(), rows.end());
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * insert, c.Prepare(kInsertPosting));
  std::string idxs;
  for (size_t i = 0; i < rows.size();) {
    idxs.clear();
    size_t j = i;
    for (; j < rows.size() && rows[j].first == rows[i].first; ++j) {
      if (j > i && rows[j].second == rows[j - 1].second) continue;
      AppendPostingIndex(idxs, rows[j].second);
    }
    KBS_RETURN_IF_ERROR(InsertPosting(insert, rows[i].first, rows[j - 1].second, idxs));
    i = j;
  }
  return absl::OkStatus();
}

// A single integer from `sql` (0 without a row).
absl::StatusOr<int64_t> QueryInt(storage::SqliteConnection& c, absl::string_view sql) {
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q, c.Prepare(sql));
  absl::StatusOr<bool> row = q->Step();
  const int64_t value = row.ok() && *row ? q->ColumnInt64(0) : 0;
  q->Reset();
  KBS_RETURN_IF_ERROR(row.status());
  return value;
}

// Brings the posting lists to what receipt_index says, in one transaction:
// - the first release's text terms (receipt_terms, receipts_resource) and
//   the second's receipt_keys (a row per key and receipt, all written with
//   the receipt) become posting lists: receipt_keys copied, terms rebuilt
//   from the leaves;
// - receipt_keys beside posting lists (an older release ran after this one
//   and indexed only its own receipts), or posting lists reaching past
//   `indexed` (which only an edit causes), are rebuilt from the leaves.
// Afterwards every receipt is indexed.
absl::Status PrepareQueryIndex(storage::SqliteDatabase* db) {
  return db->Run([](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(bool terms, HasSchemaObject(c, "table", "receipt_terms"));
    KBS_ASSIGN_OR_RETURN(bool keys, HasSchemaObject(c, "table", "receipt_keys"));
    KBS_ASSIGN_OR_RETURN(int64_t postings,
                         QueryInt(c, "SELECT COALESCE(MAX(last) + 1, 0) FROM receipt_postings"));
    KBS_ASSIGN_OR_RETURN(int64_t indexed,
                         QueryInt(c, "SELECT indexed FROM receipt_index WHERE id = 0"));
    const bool beyond = postings > indexed;
    if (!terms && !keys && !beyond) return absl::OkStatus();
    const bool from_leaves = terms || beyond || postings > 0;
    KBS_LOG(kInfo, "receipt log: ",
            from_leaves ? "rebuilding the posting lists from the receipts"
                        : "moving the query index to posting lists (receipt_postings)");
    // Written in chunks of rows; both sources give each key's indexes in
    // ascending order, as WritePostings needs.
    constexpr size_t kChunk = 1 << 16;
    std::vector<std::pair<int64_t, int64_t>> rows;
    auto add = [&](int64_t key, int64_t idx) -> absl::Status {
      rows.emplace_back(key, idx);
      if (rows.size() < kChunk) return absl::OkStatus();
      absl::Status st = WritePostings(c, rows);
      rows.clear();
      return st;
    };
    return c.Transaction([&]() -> absl::Status {
      KBS_RETURN_IF_ERROR(c.Exec("DELETE FROM receipt_postings"));
      if (from_leaves) {
        KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * leaves,
                             c.Prepare("SELECT idx, leaf FROM receipts ORDER BY idx"));
        int64_t unreadable = 0;
        KBS_RETURN_IF_ERROR(ForEachRow(leaves, [&]() -> absl::Status {
          // An unreadable leaf is left to start-up verification.
          auto r = ParseReceiptLeaf(leaves->ColumnBlob(1));
          if (!r.ok()) {
            ++unreadable;
            return absl::OkStatus();
          }
          for (int64_t k : QueryKeys(*r)) KBS_RETURN_IF_ERROR(add(k, leaves->ColumnInt64(0)));
          return absl::OkStatus();
        }));
        if (unreadable > 0) {
          KBS_LOG(kWarning, "receipt log: ", unreadable,
                  " receipts could not be decoded and are not found by filtered queries "
                  "(range reads and `audit verify` still cover them)");
        }
      } else {
        KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * old,
                             c.Prepare("SELECT key, idx FROM receipt_keys ORDER BY key, idx"));
        KBS_RETURN_IF_ERROR(ForEachRow(
            old, [&]() -> absl::Status { return add(old->ColumnInt64(0), old->ColumnInt64(1)); }));
      }
      KBS_RETURN_IF_ERROR(WritePostings(c, rows));
      return c.Exec(
          "DROP TABLE IF EXISTS receipt_terms; DROP INDEX IF EXISTS receipts_resource; "
          "DROP TABLE IF EXISTS receipt_keys; UPDATE receipt_index SET indexed = "
          "(SELECT COALESCE(MAX(idx) + 1, 0) FROM receipts) WHERE id = 0;");
    });
  });
}

}  // namespace

absl::StatusOr<common::EvpPkeyPtr> LoadOrCreateLogKey(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(
      common::EvpPkeyPtr key,
      common::LoadOrCreatePrivateKey(path, common::GenerateEd25519Key, "receipt log key"));
  if (EVP_PKEY_id(key.get()) != EVP_PKEY_ED25519) {
    return absl::FailedPreconditionError(
        absl::StrCat("receipt log key ", path, " is not an Ed25519 key"));
  }
  return key;
}

// Reads stored complete subtrees, one point lookup each (O(log n) per proof).
class ReceiptLog::DbNodes final : public NodeReader {
 public:
  explicit DbNodes(storage::SqliteDatabase* db) : db_(db) {}
  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) override {
    std::vector<Hash> out;
    out.reserve(ids.size());
    KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                           c.Prepare("SELECT hash FROM tree_nodes WHERE last = ?1 AND level = ?2"));
      for (const NodeId& id : ids) {
        q->BindInt64(1, LastLeaf(id));
        q->BindInt64(2, id.level);
        absl::StatusOr<bool> row = q->Step();
        std::string hash = row.ok() && *row ? q->ColumnBlob(0) : "";
        q->Reset();
        if (!row.ok()) return row.status();
        if (hash.size() != 32) {
          return absl::DataLossError(
              absl::StrCat("merkle node (", id.level, ", ", id.index, ") is missing or malformed"));
        }
        out.push_back(ToHash(hash));
      }
      return absl::OkStatus();
    }));
    return out;
  }

 private:
  storage::SqliteDatabase* db_;
};

ReceiptLog::ReceiptLog(storage::SqliteDatabase* db, std::unique_ptr<NoteSigner> signer,
                       const common::Clock* clock, Options options)
    : db_(db),
      signer_(std::move(signer)),
      verifier_key_(signer_->verifier_key()),
      clock_(clock),
      options_(std::move(options)) {}

absl::StatusOr<std::unique_ptr<ReceiptLog>> ReceiptLog::Open(storage::SqliteDatabase* db,
                                                             std::unique_ptr<NoteSigner> signer,
                                                             const common::Clock* clock,
                                                             Options options) {
  if (signer == nullptr || clock == nullptr) {
    return absl::InvalidArgumentError("receipt log: signer and clock are required");
  }
  KBS_RETURN_IF_ERROR(db->Run([](storage::SqliteConnection& c) { return c.Exec(kSchema); }));
  KBS_RETURN_IF_ERROR(PrepareQueryIndex(db));
  KBS_RETURN_IF_ERROR(MigrateTreeLayout(db));
  std::unique_ptr<ReceiptLog> log(new ReceiptLog(db, std::move(signer), clock, std::move(options)));
  absl::Status verified = log->Verify();
  if (!verified.ok()) {
    if (verified.code() == absl::StatusCode::kDataLoss) {
      log->halted_ = std::string(verified.message());
      KBS_LOG(kError, "receipt log halted: ", log->halted_);
    } else {
      return verified;
    }
  }
  KBS_RETURN_IF_ERROR(log->LoadKeyBacklog());
  if (log->halted_.empty()) {
    // A first checkpoint before any append, so a log with receipts always
    // has one (and a log without any has lost them).
    std::lock_guard<std::mutex> lock(log->checkpoint_mu_);
    if (log->checkpoint_note_.empty()) KBS_RETURN_IF_ERROR(log->SignCheckpointLocked().status());
  }
  log->writer_ = std::thread([l = log.get()] { l->WriterLoop(); });
  return log;
}

ReceiptLog::~ReceiptLog() {
  {
    std::lock_guard<std::mutex> lock(mu_);
    stop_ = true;
  }
  cv_.notify_all();
  if (writer_.joinable()) writer_.join();
  // A clean stop leaves a checkpoint covering everything appended.
  std::lock_guard<std::mutex> lock(checkpoint_mu_);
  bool healthy;
  uint64_t size;
  {
    std::lock_guard<std::mutex> state(mu_);
    healthy = halted_.empty();
    size = size_;
  }
  if (healthy && size > checkpoint_size_) {
    if (auto s = SignCheckpointLocked(); !s.ok()) {
      KBS_LOG(kError, "receipt log: final checkpoint: ", s.status().message());
    }
  }
}

absl::Status ReceiptLog::LoadKeyBacklog() {
  index_flushed_at_ = clock_->Now();
  return db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(int64_t indexed,
                         QueryInt(c, "SELECT indexed FROM receipt_index WHERE id = 0"));
    // More than the log holds only if receipts were deleted, which halts
    // the log: its reads then scan what is left.
    indexed_ = std::min(static_cast<uint64_t>(std::max<int64_t>(indexed, 0)), size_);
    if (!halted_.empty() || indexed_ == size_) return absl::OkStatus();
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * leaves,
                         c.Prepare("SELECT idx, leaf FROM receipts WHERE idx >= ?1 ORDER BY idx"));
    leaves->BindInt64(1, static_cast<int64_t>(indexed_));
    return ForEachRow(leaves, [&]() -> absl::Status {
      // Verified leaves written by the writer: they parse.
      auto r = ParseReceiptLeaf(leaves->ColumnBlob(1));
      if (!r.ok()) return absl::OkStatus();
      for (int64_t k : QueryKeys(*r)) index_backlog_.Add(k, leaves->ColumnInt64(0));
      return absl::OkStatus();
    });
  });
}

void ReceiptLog::PostingBacklog::Add(int64_t key, int64_t idx) {
  List& list = lists_[key];
  if (idx == list.last) return;  // a key a receipt has twice
  AppendPostingIndex(list.idxs, idx);
  list.last = idx;
}

void ReceiptLog::PostingBacklog::Clear() { lists_.clear(); }

absl::Status ReceiptLog::PostingBacklog::Write(storage::SqliteConnection& c) const {
  std::vector<int64_t> keys;
  keys.reserve(lists_.size());
  for (const auto& [key, list] : lists_) keys.push_back(key);
  std::sort(keys.begin(), keys.end());
  KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * insert, c.Prepare(kInsertPosting));
  for (int64_t key : keys) {
    const List& list = lists_.at(key);
    KBS_RETURN_IF_ERROR(InsertPosting(insert, key, list.last, list.idxs));
  }
  return absl::OkStatus();
}

void ReceiptLog::MaybeFlushPostings(bool force) {
  uint64_t n, indexed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!halted_.empty()) return;
    n = size_;
    indexed = indexed_;
  }
  if (n == indexed) return;
  const absl::Time now = clock_->Now();
  // After a failure, only index_interval retries (the receipts do not wait).
  const bool due = force || now - index_flushed_at_ >= options_.index_interval ||
                   (n - indexed >= options_.index_batch && index_failures_ == 0);
  if (!due) return;
  index_flushed_at_ = now;
  absl::Status s = db_->Run([&](storage::SqliteConnection& c) {
    return c.Transaction([&]() -> absl::Status {
      KBS_RETURN_IF_ERROR(index_backlog_.Write(c));
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * mark,
                           c.Prepare("UPDATE receipt_index SET indexed = ?1 WHERE id = 0"));
      mark->BindInt64(1, static_cast<int64_t>(n));
      absl::Status st = mark->Run();
      mark->Reset();
      return st;
    });
  });
  if (!s.ok()) {
    ++index_failures_;
    KBS_LOG(kError, "receipt log: writing the posting lists of receipts [", indexed, ", ", n,
            ") failed (attempt ", index_failures_,
            "; filtered queries scan those receipts meanwhile): ", s.message());
    return;
  }
  index_failures_ = 0;
  index_backlog_.Clear();
  std::lock_guard<std::mutex> lock(mu_);
  indexed_ = n;
}

namespace {

// Start-up verification of one row's query columns against its leaf (row
// columns as selected in Verify: 1 time, 2 leaf, 4.. decision, resource,
// key_version, tee, policy_version, rule, chip_id, evidence_sha256).
absl::Status CheckColumns(uint64_t n, storage::SqliteStatement* q, absl::Time time) {
  static constexpr absl::string_view kColumns[] = {"decision", "resource",       "key_version",
                                                   "tee",      "policy_version", "rule",
                                                   "chip_id",  "evidence_sha256"};
  constexpr size_t kCount = sizeof(kColumns) / sizeof(kColumns[0]);
  std::array<absl::string_view, kCount + 1> raw{};  // the leaf's values; last: time
  std::array<bool, kCount + 1> seen{};
  const absl::string_view leaf = q->ColumnBlobView(2);
  absl::Status scanned =
      ForEachLeafMember(leaf, [&](absl::string_view name, absl::string_view value) {
        if (name == "time") {
          raw[kCount] = value;
          seen[kCount] = true;
          return;
        }
        for (size_t i = 0; i < kCount; ++i) {
          if (name == kColumns[i]) {
            raw[i] = value;
            seen[i] = true;
          }
        }
      });
  if (!scanned.ok()) {
    return absl::DataLossError(
        absl::StrCat("receipt ", n, " has a malformed leaf: ", scanned.message()));
  }
  if (!seen[kCount] || raw[kCount] != LeafTimeLiteral(time)) {
    return absl::DataLossError(
        absl::StrCat("receipt ", n, "'s time column does not match its leaf: the row was edited"));
  }
  for (size_t i = 0; i < kCount; ++i) {
    const std::string column = q->ColumnText(static_cast<int>(4 + i));
    bool same = seen[i] && raw[i] == LeafStringLiteral(column);
    if (!same && seen[i]) {
      // Releases before invalid UTF-8 was replaced in leaves kept its bytes
      // as they came, in the leaf as in the column.
      std::string as_is;
      common::AppendJcsString(column, as_is);
      same = raw[i] == as_is;
    }
    if (!same) {
      return absl::DataLossError(absl::StrCat("receipt ", n, "'s ", kColumns[i],
                                              " column does not match its leaf: the row was "
                                              "edited"));
    }
  }
  return absl::OkStatus();
}

}  // namespace

// DataLoss for anything that shows the stored log is not the log we signed.
absl::Status ReceiptLog::Verify() {
  NoteVerifier verifier = *NoteVerifier::FromVerifierKey(verifier_key_);
  std::optional<Checkpoint> signed_cp;
  std::string signed_note;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * q,
        c.Prepare("SELECT size, note FROM checkpoints ORDER BY size DESC LIMIT 1"));
    absl::StatusOr<bool> row = q->Step();
    if (row.ok() && *row) signed_note = q->ColumnText(1);
    int64_t size = row.ok() && *row ? q->ColumnInt64(0) : -1;
    q->Reset();
    if (!row.ok()) return row.status();
    if (size < 0) return absl::OkStatus();
    auto body = verifier.Open(signed_note);
    if (!body.ok()) {
      return absl::DataLossError(
          absl::StrCat("the latest checkpoint (size ", size,
                       ") does not verify under the log's key: ", body.status().message()));
    }
    auto cp = ParseCheckpointBody(*body);
    if (!cp.ok() || cp->size != static_cast<uint64_t>(size) || cp->origin != options_.origin) {
      return absl::DataLossError(
          absl::StrCat("the latest checkpoint (size ", size, ") is malformed or not this log's"));
    }
    signed_cp = *cp;
    // Auditors can read the last good checkpoint even if the log halts.
    checkpoint_size_ = cp->size;
    checkpoint_note_ = signed_note;
    return absl::OkStatus();
  }));
  // The copy kept outside the database wins when it is newer.
  if (!options_.checkpoint_file.empty() && common::FileExists(options_.checkpoint_file)) {
    KBS_ASSIGN_OR_RETURN(std::string note, common::ReadFile(options_.checkpoint_file, 1 << 16));
    auto body = verifier.Open(note);
    auto cp = body.ok() ? ParseCheckpointBody(*body) : absl::StatusOr<Checkpoint>(body.status());
    if (!cp.ok() || cp->origin != options_.origin) {
      return absl::DataLossError(absl::StrCat("the checkpoint kept in ", options_.checkpoint_file,
                                              " does not verify under the log's key"));
    }
    if (!signed_cp.has_value() || cp->size > signed_cp->size) {
      if (signed_cp.has_value() || cp->size > 0) {
        KBS_LOG(kWarning,
                "receipt log: the database's latest checkpoint is older than the one "
                "kept in ",
                options_.checkpoint_file);
      }
      signed_cp = *cp;
      signed_note = note;
      checkpoint_size_ = cp->size;
      checkpoint_note_ = note;
    }
  }
  // What is stored, for auditors' reads and proofs even when halted.
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q, c.Prepare("SELECT COUNT(*) FROM receipts"));
    absl::StatusOr<bool> row = q->Step();
    if (row.ok() && *row) size_ = static_cast<uint64_t>(q->ColumnInt64(0));
    q->Reset();
    return row.status();
  }));

  if (!signed_cp.has_value() && size_ > 0 && !options_.checkpoint_file.empty()) {
    // The first checkpoint is signed as soon as the log starts.
    return absl::DataLossError(absl::StrCat(
        "the log holds ", size_, " receipts but no signed checkpoint: checkpoints were deleted"));
  }
  std::vector<std::optional<Hash>> frontier(64);
  uint64_t n = 0;
  absl::Time last = absl::UnixEpoch();
  std::optional<Hash> root_at_checkpoint;
  if (signed_cp.has_value() && signed_cp->size == 0) root_at_checkpoint = EmptyRoot();
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * q,
        c.Prepare("SELECT r.idx, r.time, r.leaf, n.hash, r.decision, r.resource, r.key_version, "
                  "r.tee, r.policy_version, r.rule, r.chip_id, r.evidence_sha256 FROM receipts r "
                  "LEFT JOIN tree_nodes n ON n.last = r.idx AND n.level = 0 ORDER BY r.idx"));
    return ForEachRow(q, [&]() -> absl::Status {
      int64_t idx = q->ColumnInt64(0);
      if (idx != static_cast<int64_t>(n)) {
        return absl::DataLossError(absl::StrCat("receipt ", n, " is missing (the next stored is ",
                                                idx, "): rows were deleted"));
      }
      Hash h = LeafHash(q->ColumnBlob(2));
      if (q->ColumnBlob(3) != HashBytes(h)) {
        return absl::DataLossError(
            absl::StrCat("receipt ", n, " does not match its leaf hash: the row was edited"));
      }
      AddLeaf(n, h, frontier, nullptr);
      const absl::Time time = absl::FromUnixMicros(q->ColumnInt64(1));
      // The columns queries filter on (and the time the next receipt starts
      // from) must say what the leaf says: an edited column would hide a
      // receipt from an auditor's query, or date new receipts falsely.
      KBS_RETURN_IF_ERROR(CheckColumns(n, q, time));
      // Times never decrease with the index (the writer guarantees it, and
      // time-range queries rely on it).
      if (time < last) {
        return absl::DataLossError(absl::StrCat("receipt ", n, " is dated before receipt ", n - 1,
                                                ": the time column was edited"));
      }
      last = time;
      ++n;
      if (signed_cp.has_value() && n == signed_cp->size) root_at_checkpoint = RootOf(frontier);
      return absl::OkStatus();
    });
  }));
  if (signed_cp.has_value()) {
    if (n < signed_cp->size) {
      return absl::DataLossError(absl::StrCat("the log holds ", n,
                                              " receipts but a checkpoint was signed at size ",
                                              signed_cp->size, ": receipts were lost"));
    }
    if (root_at_checkpoint != signed_cp->root) {
      return absl::DataLossError(
          absl::StrCat("the stored receipts do not reproduce the checkpoint signed at size ",
                       signed_cp->size, ": the log was altered"));
    }
    // The stored interior nodes (used for proofs) must agree too.
    DbNodes nodes(db_);
    auto root = RootAt(nodes, signed_cp->size);
    if (!root.ok() || *root != signed_cp->root) {
      return absl::DataLossError(
          absl::StrCat("the stored tree nodes do not reproduce the checkpoint signed at size ",
                       signed_cp->size));
    }
  }
  size_ = n;
  frontier_ = std::move(frontier);
  last_time_ = last;
  return absl::OkStatus();
}

absl::StatusOr<Receipt> ReceiptLog::Append(Receipt receipt) {
  // Serialization happens here, on the appender's thread; the writer only
  // splices in index and time.
  auto p = std::make_shared<Pending>(LeafTemplate(receipt));
  p->keys = QueryKeys(receipt);
  p->receipt = std::move(receipt);
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!halted_.empty()) return Halted(halted_);
    if (stop_) return absl::UnavailableError("receipt log is shutting down");
    queue_.push_back(p);
    // Under mu_: the log outlives every queued append.
    if (queue_.size() >= wake_at_) cv_.notify_one();
  }
  p->done.Wait();
  for (const std::shared_ptr<Pending>& w : p->wake) w->done.Notify();
  p->wake.clear();
  if (!p->status.ok()) return p->status;
  Receipt out = std::move(p->receipt);
  out.index = p->index;
  out.time = p->time;
  return out;
}

void ReceiptLog::WriterLoop() {
  pthread_setname_np(pthread_self(), "kbs-receipts");  // visible in top -H and perf
  std::vector<PendingEvidence> evidence;
  size_t last_batch = 0;
  while (true) {
    std::vector<std::shared_ptr<Pending>> batch;
    {
      std::unique_lock<std::mutex> lock(mu_);
      const absl::Duration idle = std::min(
          options_.checkpoint_interval, std::max(options_.index_interval, absl::Milliseconds(100)));
      cv_.wait_for(lock, absl::ToChronoMilliseconds(idle) + std::chrono::milliseconds(1),
                   [&] { return stop_ || !queue_.empty() || !evidence_queue_.empty(); });
      if (stop_ && queue_.empty() && evidence_queue_.empty()) {
        lock.unlock();
        // A clean stop leaves every receipt indexed.
        MaybeFlushPostings(/*force=*/true);
        return;
      }
      // Group commit: while appends are arriving concurrently (the last
      // batch held more than one), give a small batch a moment to grow, so
      // one fsync and the shared pages (page 1, the tree's right edge) serve
      // more receipts. After a batch of one (a quiet log), the next receipt
      // is committed at once.
      if (last_batch > 1 && !stop_ && !queue_.empty() && queue_.size() < options_.commit_batch &&
          options_.commit_delay > absl::ZeroDuration()) {
        wake_at_ = options_.commit_batch;
        cv_.wait_for(lock, absl::ToChronoMicroseconds(options_.commit_delay),
                     [&] { return stop_ || queue_.size() >= options_.commit_batch; });
        wake_at_ = 1;
      }
      while (!queue_.empty() && batch.size() < options_.max_batch) {
        batch.push_back(std::move(queue_.front()));
        queue_.pop_front();
      }
      evidence.swap(evidence_queue_);
    }
    last_batch = batch.size();
    if (!batch.empty() || !evidence.empty()) {
      CommitBatch(batch, evidence);
      evidence.clear();
      // A suspended fiber costs a post to its thread: notified here. Blocked
      // threads cost a futex wake each: the first two here, and a tree.
      std::vector<size_t> threads;
      threads.reserve(batch.size());
      for (size_t i = 0; i < batch.size(); ++i) {
        if (batch[i]->done.fiber_waiting()) {
          batch[i]->done.Notify();
        } else {
          threads.push_back(i);
        }
      }
      for (size_t i = 2; i < threads.size(); ++i) {
        batch[threads[(i - 2) / 2]]->wake.push_back(batch[threads[i]]);
      }
      for (size_t i = 0; i < std::min<size_t>(2, threads.size()); ++i) {
        batch[threads[i]]->done.Notify();
      }
    }
    // After the wakeups: a flush (its rows about 1 ms for 4,096 receipts,
    // then its fsync) or a WAL restart delays the next batch, never this one.
    db_->RestartWalIfDue();
    MaybeFlushPostings(/*force=*/false);
    MaybeCheckpoint();
    MaybeExpireEvidence();
  }
}

void ReceiptLog::CommitBatch(const std::vector<std::shared_ptr<Pending>>& batch,
                             std::vector<PendingEvidence>& evidence) {
  uint64_t n;
  std::vector<std::optional<Hash>> frontier;
  absl::Time last;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!halted_.empty()) {
      for (const auto& p : batch) p->status = Halted(halted_);
      return;
    }
    n = size_;
    frontier = frontier_;
    last = last_time_;
  }
  struct Row {
    Pending* pending;
    std::string leaf;
  };
  std::vector<Row> rows;
  rows.reserve(batch.size());
  std::vector<std::pair<NodeId, Hash>> nodes;
  for (const std::shared_ptr<Pending>& p : batch) {
    // Microsecond resolution (what the leaf states), never going back.
    absl::Time time = std::max(last, absl::FromUnixMicros(absl::ToUnixMicros(clock_->Now())));
    auto leaf = p->leaf.Fill(n, time);
    if (!leaf.ok()) {
      p->status = leaf.status();
      continue;
    }
    p->index = n;
    p->time = last = time;
    AddLeaf(n, LeafHash(*leaf), frontier, &nodes);
    rows.push_back({p.get(), *std::move(leaf)});
    ++n;
  }
  if (rows.empty() && evidence.empty()) return;
  absl::Status s = db_->Run([&](storage::SqliteConnection& c) {
    return c.Transaction([&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * ev,
                           c.Prepare("INSERT INTO token_evidence(token_id, sha256, size, data, "
                                     "stored_at) VALUES(?1, ?2, ?3, ?4, ?5) "
                                     "ON CONFLICT(token_id) DO NOTHING"));
      for (const PendingEvidence& e : evidence) {
        ev->BindText(1, e.token_id);
        ev->BindText(2, e.sha256);
        ev->BindInt64(3, e.size);
        ev->BindBlob(4, e.packed);
        ev->BindInt64(5, absl::ToUnixMicros(e.at));
        absl::Status st = ev->Run();
        ev->Reset();
        KBS_RETURN_IF_ERROR(st);
      }
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * ins,
          c.Prepare("INSERT INTO receipts(idx, time, decision, resource, key_version, tee, "
                    "policy_version, rule, chip_id, evidence_sha256, leaf) "
                    "VALUES(?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8, ?9, ?10, ?11)"));
      KBS_ASSIGN_OR_RETURN(
          storage::SqliteStatement * node,
          c.Prepare("INSERT INTO tree_nodes(last, level, hash) VALUES(?1, ?2, ?3)"));
      for (const Row& row : rows) {
        const Pending& p = *row.pending;
        const Receipt& r = p.receipt;
        ins->BindInt64(1, static_cast<int64_t>(p.index));
        ins->BindInt64(2, absl::ToUnixMicros(p.time));
        ins->BindText(3, r.decision);
        ins->BindText(4, r.resource);
        ins->BindText(5, r.key_version);
        ins->BindText(6, r.tee);
        ins->BindText(7, r.policy_version);
        ins->BindText(8, r.rule);
        ins->BindText(9, r.chip_id);
        ins->BindText(10, r.evidence_sha256);
        ins->BindBlob(11, row.leaf);
        absl::Status st = ins->Run();
        ins->Reset();
        KBS_RETURN_IF_ERROR(st);
      }
      for (const auto& [id, hash] : nodes) {
        node->BindInt64(1, LastLeaf(id));
        node->BindInt64(2, id.level);
        node->BindBlob(3, HashBytes(hash));
        absl::Status st = node->Run();
        node->Reset();
        KBS_RETURN_IF_ERROR(st);
      }
      return absl::OkStatus();
    });
  });
  if (!s.ok()) {
    KBS_LOG(kError, "receipt log: append of ", rows.size(), " receipts and ", evidence.size(),
            " evidence records failed: ", s.message());
    absl::Status err =
        absl::UnavailableError(absl::StrCat("the receipt log cannot be written: ", s.message()));
    for (Row& row : rows) row.pending->status = err;
    return;
  }
  // The committed receipts' query keys wait for MaybeFlushPostings.
  for (const Row& row : rows) {
    for (int64_t k : row.pending->keys) {
      index_backlog_.Add(k, static_cast<int64_t>(row.pending->index));
    }
  }
  std::lock_guard<std::mutex> lock(mu_);
  size_ = n;
  frontier_ = std::move(frontier);
  last_time_ = last;
}

absl::StatusOr<std::string> ReceiptLog::SignCheckpointLocked() {
  uint64_t size;
  Hash root;
  {
    std::lock_guard<std::mutex> lock(mu_);
    if (!halted_.empty()) return Halted(halted_);
    size = size_;
    root = RootOf(frontier_);
  }
  if (!checkpoint_note_.empty() && size == checkpoint_size_) return checkpoint_note_;
  // Never sign a checkpoint that is not consistent with the last one.
  if (!checkpoint_note_.empty() && checkpoint_size_ > 0) {
    NoteVerifier verifier = *NoteVerifier::FromVerifierKey(verifier_key_);
    KBS_ASSIGN_OR_RETURN(std::string body, verifier.Open(checkpoint_note_));
    KBS_ASSIGN_OR_RETURN(Checkpoint previous, ParseCheckpointBody(body));
    DbNodes nodes(db_);
    // A failed read is retried at the next interval; only a proof that
    // does not verify halts the log.
    absl::StatusOr<std::vector<Hash>> proof =
        receipts::ConsistencyProof(nodes, previous.size, size);
    if (!proof.ok() && proof.status().code() != absl::StatusCode::kDataLoss) {
      return absl::UnavailableError(
          absl::StrCat("cannot read the tree to sign a checkpoint: ", proof.status().message()));
    }
    absl::Status consistent =
        proof.ok() ? VerifyConsistency(previous.size, size, *proof, previous.root, root)
                   : proof.status();
    if (!consistent.ok()) {
      std::string why =
          absl::StrCat("the tree at size ", size, " is not consistent with the checkpoint at size ",
                       previous.size, ": ", consistent.message());
      std::lock_guard<std::mutex> lock(mu_);
      halted_ = why;
      KBS_LOG(kError, "receipt log halted: ", why);
      return Halted(why);
    }
  }
  Checkpoint cp{options_.origin, size, root, {}};
  KBS_ASSIGN_OR_RETURN(std::string note, signer_->Sign(CheckpointBody(cp)));
  absl::Time now = clock_->Now();
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("INSERT INTO checkpoints(size, note, signed_at) "
                                   "VALUES(?1, ?2, ?3) ON CONFLICT(size) DO NOTHING"));
    q->BindInt64(1, static_cast<int64_t>(size));
    q->BindText(2, note);
    q->BindInt64(3, absl::ToUnixMicros(now));
    absl::Status s = q->Run();
    q->Reset();
    return s;
  }));
  if (!options_.checkpoint_file.empty()) {
    KBS_RETURN_IF_ERROR(common::WriteFileAtomic(options_.checkpoint_file, note, 0600));
  }
  checkpoint_size_ = size;
  checkpoint_note_ = note;
  checkpoint_at_ = now;
  return note;
}

void ReceiptLog::MaybeCheckpoint() {
  std::lock_guard<std::mutex> lock(checkpoint_mu_);
  absl::Time now = clock_->Now();
  if (now - checkpoint_at_ < options_.checkpoint_interval) return;
  uint64_t size;
  {
    std::lock_guard<std::mutex> state(mu_);
    if (!halted_.empty()) return;
    size = size_;
  }
  if (size > checkpoint_size_ || checkpoint_note_.empty()) {
    if (auto s = SignCheckpointLocked(); !s.ok()) {
      KBS_LOG(kError, "receipt log: checkpoint: ", s.status().message());
    }
  }
  checkpoint_at_ = now;
}

void ReceiptLog::MaybeExpireEvidence() {
  const absl::Time now = clock_->Now();
  if (options_.evidence_retention <= absl::ZeroDuration() ||
      now - retention_at_ < absl::Seconds(1)) {
    return;
  }
  retention_at_ = now;
  {
    // A halted log keeps everything for the investigation.
    std::lock_guard<std::mutex> lock(mu_);
    if (!halted_.empty()) return;
  }
  // Rows are inserted as evidence arrives, so the oldest come first:
  // delete from the front up to the first one still kept (reading
  // O(deleted) rows, not the table; `stored_at` of a large row lies in
  // its overflow pages). A pass a second, of at most kRetentionRows: more
  // than the KBS attests per second, and a first pass over a large table
  // does not stall the writer.
  constexpr int64_t kRetentionRows = 4096;
  const int64_t cutoff = absl::ToUnixMicros(now - options_.evidence_retention);
  absl::Status s = db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    for (absl::string_view table : {"token_evidence", "evidence"}) {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * oldest,
                           c.Prepare(absl::StrCat("SELECT rowid, stored_at FROM ", table,
                                                  " ORDER BY rowid LIMIT ?1")));
      oldest->BindInt64(1, kRetentionRows);
      std::optional<int64_t> last_expired;
      absl::Status st = ForEachRow(oldest, [&]() -> absl::Status {
        if (oldest->ColumnInt64(1) >= cutoff) return absl::CancelledError();  // kept: stop
        last_expired = oldest->ColumnInt64(0);
        return absl::OkStatus();
      });
      if (!st.ok() && !absl::IsCancelled(st)) return st;
      if (!last_expired.has_value()) continue;
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * del,
                           c.Prepare(absl::StrCat("DELETE FROM ", table, " WHERE rowid <= ?1")));
      del->BindInt64(1, *last_expired);
      st = del->Run();
      del->Reset();
      KBS_RETURN_IF_ERROR(st);
    }
    return absl::OkStatus();
  });
  if (!s.ok()) KBS_LOG(kWarning, "receipt log: evidence retention: ", s.message());
}

absl::StatusOr<std::string> ReceiptLog::LatestCheckpoint(bool fresh) {
  std::lock_guard<std::mutex> lock(checkpoint_mu_);
  uint64_t size = this->size();
  if (checkpoint_note_.empty() || (fresh && size > checkpoint_size_)) {
    return SignCheckpointLocked();
  }
  return checkpoint_note_;
}

uint64_t ReceiptLog::size() const {
  std::lock_guard<std::mutex> lock(mu_);
  return size_;
}

std::string ReceiptLog::halted_reason() const {
  std::lock_guard<std::mutex> lock(mu_);
  return halted_;
}

absl::Status ReceiptLog::StoreEvidence(absl::string_view token_id, absl::string_view evidence,
                                       absl::string_view sha256_hex) {
  if (token_id.empty() || token_id.size() > 256) {
    return absl::InvalidArgumentError("evidence is kept under a token id of 1 to 256 characters");
  }
  if (evidence.size() > kMaxEvidenceBytes) {
    return absl::InvalidArgumentError("evidence larger than 16 MiB");
  }
  if (sha256_hex.size() != 64) {
    return absl::InvalidArgumentError("evidence is kept with its hex SHA-256");
  }
  KBS_ASSIGN_OR_RETURN(std::string packed, Deflate(evidence));
  std::lock_guard<std::mutex> lock(mu_);
  evidence_queue_.push_back({std::string(token_id), std::string(sha256_hex),
                             static_cast<int64_t>(evidence.size()), std::move(packed),
                             clock_->Now()});
  // A writer growing a batch takes the evidence with it.
  if (wake_at_ == 1) cv_.notify_one();
  return absl::OkStatus();
}

absl::StatusOr<std::string> ReceiptLog::Evidence(absl::string_view token_id,
                                                 absl::string_view sha256_hex) {
  std::string packed;
  int64_t size = -1;
  KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(
        storage::SqliteStatement * by_token,
        c.Prepare("SELECT size, data FROM token_evidence WHERE token_id = ?1 AND sha256 = ?2"));
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * by_digest,
                         c.Prepare("SELECT size, data FROM evidence WHERE sha256 = ?1"));
    by_token->BindText(1, token_id);
    by_token->BindText(2, sha256_hex);
    by_digest->BindText(1, sha256_hex);
    for (storage::SqliteStatement* q : {by_token, by_digest}) {
      absl::StatusOr<bool> row = q->Step();
      if (row.ok() && *row) {
        size = q->ColumnInt64(0);
        packed = q->ColumnBlob(1);
      }
      q->Reset();
      KBS_RETURN_IF_ERROR(row.status());
      if (size >= 0) break;
    }
    return absl::OkStatus();
  }));
  if (size < 0) {
    return absl::NotFoundError(absl::StrCat("no stored evidence ", sha256_hex.substr(0, 64),
                                            " (none was kept, or retention deleted it)"));
  }
  if (static_cast<uint64_t>(size) > kMaxEvidenceBytes) {
    return absl::DataLossError("stored evidence has an impossible size");
  }
  std::string out(static_cast<size_t>(size), '\0');
  uLongf out_size = out.size();
  if (uncompress(reinterpret_cast<Bytef*>(out.data()), &out_size,
                 reinterpret_cast<const Bytef*>(packed.data()), packed.size()) != Z_OK ||
      out_size != out.size() || common::HexEncode(common::Sha256(out)) != sha256_hex) {
    return absl::DataLossError("stored evidence is corrupt");
  }
  return out;
}

absl::StatusOr<std::vector<StoredReceipt>> ReceiptLog::Range(uint64_t start, uint64_t end) {
  std::vector<StoredReceipt> out;
  KBS_RETURN_IF_ERROR(
      ForEachInRange(start, end, kMaxRangeRead, [&](uint64_t index, absl::string_view leaf) {
        out.push_back({index, std::string(leaf)});
        return true;
      }));
  return out;
}

absl::Status ReceiptLog::AppendLeafLines(uint64_t start, uint64_t end, std::string& out,
                                         size_t max_bytes) {
  const size_t base = out.size();
  return ForEachInRange(start, end, kMaxRange, [&](uint64_t, absl::string_view leaf) {
    out.append(leaf.data(), leaf.size());
    out.push_back('\n');
    return out.size() - base < max_bytes;
  });
}

absl::Status ReceiptLog::ForEachInRange(
    uint64_t start, uint64_t end, uint64_t max,
    const std::function<bool(uint64_t, absl::string_view)>& fn) {
  if (end < start || end - start > max) {
    return absl::InvalidArgumentError(
        absl::StrCat("a range is [start, end) with at most ", max, " receipts"));
  }
  // Past the end there is nothing (and no index beyond int64 reaches SQL).
  end = std::min(end, size());
  if (start >= end) return absl::OkStatus();
  return db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                         c.Prepare("SELECT idx, leaf FROM receipts WHERE idx >= ?1 AND idx < ?2 "
                                   "ORDER BY idx"));
    q->BindInt64(1, static_cast<int64_t>(start));
    q->BindInt64(2, static_cast<int64_t>(end));
    while (true) {
      absl::StatusOr<bool> row = q->Step();
      if (!row.ok() || !*row ||
          !fn(static_cast<uint64_t>(q->ColumnInt64(0)), q->ColumnBlobView(1))) {
        q->Reset();
        return row.status();
      }
    }
  });
}

absl::StatusOr<std::vector<StoredReceipt>> ReceiptLog::Query(const ReceiptQuery& query) {
  // Receipt times never decrease with the index, so a time range is an
  // index range: two binary searches over idx (O(log^2 n) page reads).
  const uint64_t size_now = size();
  uint64_t first = query.after_index, end = size_now;
  auto first_at_or_after = [&](absl::Time t) -> absl::StatusOr<uint64_t> {
    const int64_t micros = absl::ToUnixMicros(t);
    uint64_t lo = 0, hi = size_now;  // the answer lies in [lo, hi]
    KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q,
                           c.Prepare("SELECT time FROM receipts WHERE idx = ?1"));
      while (lo < hi) {
        const uint64_t mid = lo + (hi - lo) / 2;
        q->BindInt64(1, static_cast<int64_t>(mid));
        absl::StatusOr<bool> row = q->Step();
        const int64_t time = row.ok() && *row ? q->ColumnInt64(0) : 0;
        q->Reset();
        KBS_RETURN_IF_ERROR(row.status());
        if (!*row) {
          return absl::DataLossError(absl::StrCat("receipt ", mid, " is missing"));
        }
        if (time >= micros) {
          hi = mid;
        } else {
          lo = mid + 1;
        }
      }
      return absl::OkStatus();
    }));
    return lo;
  };
  if (query.from.has_value()) {
    KBS_ASSIGN_OR_RETURN(uint64_t from, first_at_or_after(*query.from));
    first = std::max(first, from);
  }
  if (query.to.has_value()) {
    KBS_ASSIGN_OR_RETURN(end, first_at_or_after(*query.to));
  }
  // Driven by the posting list of the first keyed filter when there is one
  // (for the receipts it covers, [0, indexed)), otherwise (and past that)
  // by the receipts themselves, with the column filters in SQL and image and
  // measurement matches re-checked against the leaf.
  uint64_t indexed;
  {
    std::lock_guard<std::mutex> lock(mu_);
    indexed = indexed_;
  }
  std::string where = "r.idx >= ?1 AND r.idx < ?3";
  std::vector<std::string> texts;  // bound from ?4 on
  auto eq = [&](absl::string_view column, const std::string& value) {
    if (value.empty()) return;
    texts.push_back(value);
    absl::StrAppend(&where, " AND r.", column, " = ?", texts.size() + 3);
  };
  eq("decision", query.decision);
  eq("resource", query.resource);
  eq("key_version", query.key_version);
  eq("tee", query.tee);
  eq("policy_version", query.policy_version);
  eq("rule", query.rule);
  eq("chip_id", query.chip_id);
  const std::string sql = absl::StrCat("SELECT r.idx, r.leaf FROM receipts r WHERE ", where,
                                       " ORDER BY r.idx LIMIT ?2");
  std::optional<int64_t> key;
  if (!query.resource.empty()) {
    key = QueryKey("resource", query.resource);
  } else if (!query.image.empty()) {
    key = QueryKey("image", query.image);
  } else if (!query.measurement.empty()) {
    key = QueryKey("measurement", query.measurement);
  }
  const bool recheck = !query.image.empty() || !query.measurement.empty();
  const size_t limit = std::clamp<size_t>(query.limit, 1, kMaxQueryLimit);
  std::vector<StoredReceipt> out;
  uint64_t after = first;
  // Receipts [after, to) matching the SQL filters, at most `asked`, in
  // index order; returns how many rows SQL gave (before the re-check).
  auto read = [&](storage::SqliteConnection& c, uint64_t to,
                  size_t asked) -> absl::StatusOr<size_t> {
    KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * q, c.Prepare(sql));
    q->BindInt64(1, static_cast<int64_t>(std::min<uint64_t>(after, INT64_MAX)));
    q->BindInt64(2, static_cast<int64_t>(asked));
    q->BindInt64(3, static_cast<int64_t>(std::min<uint64_t>(to, INT64_MAX)));
    for (size_t i = 0; i < texts.size(); ++i) q->BindText(static_cast<int>(i + 4), texts[i]);
    size_t got = 0;
    KBS_RETURN_IF_ERROR(ForEachRow(q, [&] {
      ++got;
      StoredReceipt row{static_cast<uint64_t>(q->ColumnInt64(0)), q->ColumnBlob(1)};
      after = row.index + 1;
      if (recheck) {
        auto r = ParseReceiptLeaf(row.leaf);
        if (!r.ok() || !MatchesTerms(*r, query)) return absl::OkStatus();
      }
      out.push_back(std::move(row));
      return absl::OkStatus();
    }));
    return got;
  };
  if (key.has_value() && after < std::min(end, indexed)) {
    const uint64_t keyed_end = std::min(end, indexed);
    KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      KBS_ASSIGN_OR_RETURN(storage::SqliteStatement * postings,
                           c.Prepare("SELECT idxs FROM receipt_postings WHERE key = ?1 AND "
                                     "last >= ?2 ORDER BY last"));
      postings->BindInt64(1, *key);
      postings->BindInt64(2, static_cast<int64_t>(after));
      absl::Status status;
      while (status.ok() && out.size() < limit && after < keyed_end) {
        absl::StatusOr<bool> more = postings->Step();
        if (!more.ok() || !*more) {
          status = more.status();
          break;
        }
        absl::string_view idxs = postings->ColumnBlobView(0);
        common::ByteReader reader(common::AsSpan(idxs));
        if (idxs.size() % 8 != 0) status = absl::DataLossError("a posting list is malformed");
        while (status.ok() && reader.remaining() > 0 && out.size() < limit) {
          absl::StatusOr<uint64_t> idx = reader.U64("posting list");
          if (!idx.ok()) {
            status = idx.status();
          } else if (*idx >= keyed_end) {
            after = keyed_end;
          } else if (*idx >= after) {
            // One receipt, if it passes the column filters.
            after = *idx;
            absl::StatusOr<size_t> got = read(c, *idx + 1, 1);
            status = got.status();
            after = *idx + 1;
          }
          if (after >= keyed_end) break;
        }
      }
      postings->Reset();
      return status;
    }));
    if (out.size() < limit) after = std::max(after, keyed_end);
  }
  // The rest, receipt by receipt. A re-check can drop rows from a page:
  // read until the page is full or the rows run out.
  while (out.size() < limit && after < end) {
    const size_t asked = limit - out.size();
    absl::StatusOr<size_t> got;
    KBS_RETURN_IF_ERROR(db_->Run([&](storage::SqliteConnection& c) -> absl::Status {
      got = read(c, end, asked);
      return got.status();
    }));
    if (*got < asked) break;
  }
  return out;
}

absl::StatusOr<std::vector<Hash>> ReceiptLog::InclusionProof(uint64_t index, uint64_t size) {
  if (size > this->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree size ", size, " is larger than the log (", this->size(), ")"));
  }
  DbNodes nodes(db_);
  return receipts::InclusionProof(nodes, index, size);
}

absl::StatusOr<std::vector<Hash>> ReceiptLog::ConsistencyProof(uint64_t size1, uint64_t size2) {
  if (size2 > this->size()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tree size ", size2, " is larger than the log (", this->size(), ")"));
  }
  DbNodes nodes(db_);
  return receipts::ConsistencyProof(nodes, size1, size2);
}

absl::StatusOr<TlogProof> ReceiptLog::Prove(uint64_t index) {
  if (index >= size()) {
    return absl::NotFoundError(absl::StrCat("no receipt ", index, " (the log has ", size(), ")"));
  }
  std::string note;
  uint64_t cp_size;
  {
    std::lock_guard<std::mutex> lock(checkpoint_mu_);
    if (checkpoint_note_.empty() || index >= checkpoint_size_) {
      KBS_ASSIGN_OR_RETURN(note, SignCheckpointLocked());
    } else {
      note = checkpoint_note_;
    }
    cp_size = checkpoint_size_;
  }
  DbNodes nodes(db_);
  KBS_ASSIGN_OR_RETURN(std::vector<Hash> path, receipts::InclusionProof(nodes, index, cp_size));
  TlogProof proof;
  proof.index = index;
  proof.path = std::move(path);
  proof.checkpoint_note = std::move(note);
  return proof;
}

}  // namespace kbs::receipts
