// RFC 6962 / RFC 9162 Merkle tree hashing, proofs and their verification, for
// the receipt log. The writer stores every complete subtree hash as leaves
// arrive (NodesCompletedBy); readers build any root or proof from O(log n) of
// them fetched in one batch (NodeReader). Verification needs no store at all.
//
// Sizes and indices are uint64_t; trees are limited to 2^63 leaves so every
// subtree bound fits. All functions here are thread-safe; MemoryTree is not
// (one writer, or external locking).
#ifndef KBS_KBS_RECEIPTS_MERKLE_H_
#define KBS_KBS_RECEIPTS_MERKLE_H_

#include <array>
#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kbs::receipts {

using Hash = std::array<uint8_t, 32>;

// Largest tree size any function here accepts.
inline constexpr uint64_t kMaxTreeSize = uint64_t{1} << 63;

// RFC 6962 §2.1: MTH({d}) = SHA-256(0x00 || d).
Hash LeafHash(absl::string_view leaf);
// RFC 6962 §2.1: SHA-256(0x01 || left || right).
Hash NodeHash(const Hash& left, const Hash& right);
// RFC 6962 §2.1: MTH({}) = SHA-256() (e3b0c442...).
Hash EmptyRoot();

// A complete subtree: level L, index i covers leaves [i << L, (i + 1) << L).
// Level 0 is the leaf hashes.
struct NodeId {
  int level;
  uint64_t index;
  bool operator==(const NodeId&) const = default;
};

// The writer's side: once leaf `leaf_index` is appended (the tree now has
// leaf_index + 1 leaves), these subtrees of level >= 1 become complete, lowest
// level first; each is NodeHash(node(level-1, 2i), node(level-1, 2i+1)), so a
// writer can compute them in order. Empty for leaf_index >= kMaxTreeSize.
std::vector<NodeId> NodesCompletedBy(uint64_t leaf_index);

// Reads stored complete-subtree hashes (level 0 included) in one batch.
class NodeReader {
 public:
  virtual ~NodeReader() = default;
  // Returns the hashes of `ids` in the order asked (ids may repeat). NotFound
  // or DataLoss if one is missing; other codes pass through to the caller.
  virtual absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) = 0;
};

// Proof generation for a tree of `size` leaves. Each call works out which
// complete subtrees it needs (O(log size) of them), reads them with ONE
// ReadNodes call and folds them. InvalidArgument for impossible arguments;
// the reader's status when a node is missing.
//
// RootAt: MTH(D[0:size]); EmptyRoot() for size 0 (no read).
absl::StatusOr<Hash> RootAt(NodeReader& nodes, uint64_t size);
// RFC 9162 §2.1.3.1 / RFC 6962 §2.1.1 PATH(index, D[0:size]), leaf sibling
// first. Needs index < size.
absl::StatusOr<std::vector<Hash>> InclusionProof(NodeReader& nodes, uint64_t index, uint64_t size);
// RFC 9162 §2.1.4.1 / RFC 6962 §2.1.2 PROOF(size1, D[0:size2]). Needs
// 0 < size1 <= size2; size1 == size2 gives an empty proof.
absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeReader& nodes, uint64_t size1,
                                                   uint64_t size2);

// Verification, for offline auditors; the message says what failed.
// InvalidArgument: the arguments cannot describe a valid proof (index >= size,
// sizes out of range, a proof of the wrong length for the sizes).
// Unauthenticated: the proof is well formed but the hashes do not match.
//
// RFC 9162 §2.1.3.2.
absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                             absl::Span<const Hash> proof, const Hash& root);
// RFC 9162 §2.1.4.2. Also accepts size1 == size2 (empty proof, equal roots)
// and size1 == 0 (empty proof, root1 == EmptyRoot()): every tree extends the
// empty one.
absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, absl::Span<const Hash> proof,
                               const Hash& root1, const Hash& root2);

// An in-memory tree that keeps every complete subtree hash (about 2 hashes
// per leaf), so Append is amortized O(1) and any proof costs O(log n). For
// tests, full-log verification in kbsctl, and as a NodeReader over memory.
// Copyable. Not thread-safe for concurrent Append.
class MemoryTree final : public NodeReader {
 public:
  MemoryTree() = default;

  // Appends LeafHash(leaf).
  void Append(absl::string_view leaf);
  void AppendLeafHash(const Hash& h);

  uint64_t size() const { return levels_.empty() ? 0 : levels_[0].size(); }
  // Root of all leaves (EmptyRoot() when empty).
  Hash Root() const;

  // NotFound for a node that is not complete in the current tree.
  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) override;

 private:
  // An append-only array in fixed-size chunks: growing it never copies what
  // is stored (a flat vector's reallocations dominated Append).
  class Column final {
   public:
    size_t size() const { return size_; }
    const Hash& operator[](size_t i) const { return chunks_[i >> kChunkBits][i & kChunkMask]; }
    const Hash& back() const { return (*this)[size_ - 1]; }
    void push_back(const Hash& h);

   private:
    static constexpr int kChunkBits = 14;  // 512 KiB chunks
    static constexpr size_t kChunkMask = (size_t{1} << kChunkBits) - 1;
    std::vector<std::vector<Hash>> chunks_;
    size_t size_ = 0;
  };

  // levels_[L][i] is node (L, i).
  std::vector<Column> levels_;
};

}  // namespace kbs::receipts

#endif  // KBS_KBS_RECEIPTS_MERKLE_H_
