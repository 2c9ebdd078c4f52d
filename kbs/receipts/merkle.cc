#include "kbs/receipts/merkle.h"

#include <openssl/evp.h>

#include <algorithm>
#include <bit>
#include <cstdio>
#include <cstdlib>
#include <string>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/openssl_util.h"

namespace kbs::receipts {
namespace {

constexpr uint8_t kLeafPrefix = 0x00;
constexpr uint8_t kNodePrefix = 0x01;

// SHA-256 over up to three pieces. One digest context per thread, reused:
// allocating a context per call costs more than hashing 65 bytes, and the
// tree hashes twice per appended leaf. SHA-256 failing means OpenSSL itself
// is broken; a made-up value could make two failures compare equal, so this
// fails closed by aborting instead.
Hash Sha256(absl::string_view a, absl::string_view b = {}, absl::string_view c = {}) {
  thread_local common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  Hash out;
  unsigned int len = 0;
  const EVP_MD* md = common::FetchedDigest(common::HashAlgorithm::kSha256);
  if (ctx == nullptr || EVP_DigestInit_ex2(ctx.get(), md, nullptr) != 1 ||
      EVP_DigestUpdate(ctx.get(), a.data(), a.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), b.data(), b.size()) != 1 ||
      EVP_DigestUpdate(ctx.get(), c.data(), c.size()) != 1 ||
      EVP_DigestFinal_ex(ctx.get(), out.data(), &len) != 1 || len != out.size()) {
    std::fputs("kbs::receipts: SHA-256 failed in OpenSSL\n", stderr);
    std::abort();
  }
  return out;
}

absl::string_view View(const Hash& h) {
  return absl::string_view(reinterpret_cast<const char*>(h.data()), h.size());
}

std::string Hex(const Hash& h) { return common::HexEncode(View(h)); }

// A range of leaves [begin, end).
struct Range {
  uint64_t begin;
  uint64_t end;
};

// The largest power of two strictly below n (n >= 2): RFC 6962 §2.1's k.
uint64_t SplitPoint(uint64_t n) { return std::bit_floor(n - 1); }

// Appends the maximal complete subtrees covering [begin, end), left to right.
// For every range an RFC 6962 recursion produces ([lo, hi) with lo a multiple
// of the largest power of two <= hi - lo), this greedy split is exactly the
// recursion's left spine, so folding the pieces right to left gives MTH.
void Decompose(Range r, std::vector<NodeId>& out) {
  uint64_t begin = r.begin;
  while (begin < r.end) {
    int level =
        std::min(std::countr_zero(begin), static_cast<int>(std::bit_width(r.end - begin)) - 1);
    out.push_back(NodeId{level, begin >> level});
    begin += uint64_t{1} << level;
  }
}

// MTH of a decomposed range: NodeHash(h0, NodeHash(h1, ... hn)).
Hash FoldRight(absl::Span<const Hash> pieces) {
  Hash acc = pieces.back();
  for (size_t i = pieces.size() - 1; i-- > 0;) acc = NodeHash(pieces[i], acc);
  return acc;
}

// RFC 6962 §2.1.1 PATH(m, D[0:n]) as the ranges whose MTH it lists, leaf
// sibling first. Precondition: m < n.
std::vector<Range> PathRanges(uint64_t m, uint64_t n) {
  std::vector<Range> top_down;
  uint64_t lo = 0;
  uint64_t hi = n;
  while (hi - lo > 1) {
    uint64_t k = SplitPoint(hi - lo);
    if (m < lo + k) {
      top_down.push_back({lo + k, hi});
      hi = lo + k;
    } else {
      top_down.push_back({lo, lo + k});
      lo += k;
    }
  }
  return std::vector<Range>(top_down.rbegin(), top_down.rend());
}

// RFC 6962 §2.1.2 PROOF(m, D[0:n]) = SUBPROOF(m, D[0:n], true) as ranges,
// deepest first. Precondition: 0 < m <= n. `m` stays absolute; the loop keeps
// lo < m <= hi.
std::vector<Range> ConsistencyRanges(uint64_t m, uint64_t n) {
  std::vector<Range> top_down;
  uint64_t lo = 0;
  uint64_t hi = n;
  bool whole_old_tree = true;  // SUBPROOF's b
  while (m != hi) {
    uint64_t k = SplitPoint(hi - lo);
    if (m <= lo + k) {
      top_down.push_back({lo + k, hi});
      hi = lo + k;
    } else {
      top_down.push_back({lo, lo + k});
      lo += k;
      whole_old_tree = false;
    }
  }
  if (!whole_old_tree) top_down.push_back({lo, hi});
  return std::vector<Range>(top_down.rbegin(), top_down.rend());
}

// MTH of each range, from one ReadNodes call.
absl::StatusOr<std::vector<Hash>> RangeHashes(NodeReader& nodes, absl::Span<const Range> ranges) {
  std::vector<NodeId> ids;
  std::vector<size_t> ends;  // ids of ranges[i] are [ends[i-1], ends[i])
  ends.reserve(ranges.size());
  for (const Range& r : ranges) {
    Decompose(r, ids);
    ends.push_back(ids.size());
  }
  std::vector<Hash> out;
  if (ids.empty()) return out;
  absl::StatusOr<std::vector<Hash>> read = nodes.ReadNodes(ids);
  if (!read.ok()) return read.status();
  if (read->size() != ids.size()) {
    return absl::DataLossError(
        absl::StrCat("node reader returned ", read->size(), " hashes for ", ids.size(), " nodes"));
  }
  out.reserve(ranges.size());
  size_t begin = 0;
  for (size_t end : ends) {
    out.push_back(FoldRight(absl::MakeConstSpan(*read).subspan(begin, end - begin)));
    begin = end;
  }
  return out;
}

absl::Status CheckSize(absl::string_view what, uint64_t size) {
  if (size > kMaxTreeSize) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " ", size, " exceeds the largest supported tree size 2^63"));
  }
  return absl::OkStatus();
}

}  // namespace

Hash LeafHash(absl::string_view leaf) {
  const char prefix = static_cast<char>(kLeafPrefix);
  return Sha256(absl::string_view(&prefix, 1), leaf);
}

Hash NodeHash(const Hash& left, const Hash& right) {
  const char prefix = static_cast<char>(kNodePrefix);
  return Sha256(absl::string_view(&prefix, 1), View(left), View(right));
}

Hash EmptyRoot() { return Sha256(absl::string_view()); }

std::vector<NodeId> NodesCompletedBy(uint64_t leaf_index) {
  std::vector<NodeId> out;
  if (leaf_index >= kMaxTreeSize) return out;
  // Node (L, i) completes when leaf (i + 1) * 2^L - 1 arrives: one node per
  // trailing one bit of leaf_index.
  int levels = std::countr_one(leaf_index);
  for (int level = 1; level <= levels; ++level) {
    out.push_back(NodeId{level, leaf_index >> level});
  }
  return out;
}

absl::StatusOr<Hash> RootAt(NodeReader& nodes, uint64_t size) {
  if (absl::Status s = CheckSize("tree size", size); !s.ok()) return s;
  if (size == 0) return EmptyRoot();
  const Range whole[] = {{0, size}};
  absl::StatusOr<std::vector<Hash>> hashes = RangeHashes(nodes, whole);
  if (!hashes.ok()) return hashes.status();
  return hashes->front();
}

absl::StatusOr<std::vector<Hash>> InclusionProof(NodeReader& nodes, uint64_t index, uint64_t size) {
  if (absl::Status s = CheckSize("tree size", size); !s.ok()) return s;
  if (index >= size) {
    return absl::InvalidArgumentError(absl::StrCat("inclusion proof for leaf index ", index,
                                                   " in a tree of size ", size,
                                                   ": the index must be below the size"));
  }
  return RangeHashes(nodes, PathRanges(index, size));
}

absl::StatusOr<std::vector<Hash>> ConsistencyProof(NodeReader& nodes, uint64_t size1,
                                                   uint64_t size2) {
  if (absl::Status s = CheckSize("tree size", size2); !s.ok()) return s;
  if (size1 == 0 || size1 > size2) {
    return absl::InvalidArgumentError(absl::StrCat(
        "consistency proof from size ", size1, " to size ", size2, ": needs 0 < size1 <= size2"));
  }
  if (size1 == size2) return std::vector<Hash>();
  return RangeHashes(nodes, ConsistencyRanges(size1, size2));
}

absl::Status VerifyInclusion(const Hash& leaf_hash, uint64_t index, uint64_t size,
                             absl::Span<const Hash> proof, const Hash& root) {
  if (absl::Status s = CheckSize("tree size", size); !s.ok()) return s;
  // RFC 9162 §2.1.3.2, step 1.
  if (index >= size) {
    return absl::InvalidArgumentError(
        absl::StrCat("inclusion proof: leaf index ", index, " is not below the tree size ", size));
  }
  // Steps 2-4.
  uint64_t fn = index;
  uint64_t sn = size - 1;
  Hash r = leaf_hash;
  for (const Hash& p : proof) {
    if (sn == 0) {
      return absl::InvalidArgumentError(absl::StrCat("inclusion proof has ", proof.size(),
                                                     " hashes, more than leaf ", index,
                                                     " in a tree of size ", size, " needs"));
    }
    if ((fn & 1) == 1 || fn == sn) {
      r = NodeHash(p, r);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      r = NodeHash(r, p);
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Step 5.
  if (sn != 0) {
    return absl::InvalidArgumentError(absl::StrCat("inclusion proof has ", proof.size(),
                                                   " hashes, fewer than leaf ", index,
                                                   " in a tree of size ", size, " needs"));
  }
  if (r != root) {
    return absl::UnauthenticatedError(absl::StrCat("inclusion proof for leaf ", index,
                                                   " in a tree of size ", size, " leads to root ",
                                                   Hex(r), ", not the expected ", Hex(root)));
  }
  return absl::OkStatus();
}

absl::Status VerifyConsistency(uint64_t size1, uint64_t size2, absl::Span<const Hash> proof,
                               const Hash& root1, const Hash& root2) {
  if (absl::Status s = CheckSize("tree size", size2); !s.ok()) return s;
  if (size1 > size2) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof from size ", size1, " to the smaller size ", size2));
  }
  if (size1 == 0 || size1 == size2) {
    if (!proof.empty()) {
      return absl::InvalidArgumentError(absl::StrCat("consistency proof from size ", size1,
                                                     " to size ", size2, " must be empty, has ",
                                                     proof.size(), " hashes"));
    }
    const Hash want = size1 == 0 ? EmptyRoot() : root2;
    if (root1 != want) {
      return absl::UnauthenticatedError(absl::StrCat("trees of size ", size1, " and ", size2,
                                                     " have roots ", Hex(root1), " and ", Hex(want),
                                                     "; they are not consistent"));
    }
    return absl::OkStatus();
  }
  // RFC 9162 §2.1.4.2, step 1.
  if (proof.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("consistency proof from size ", size1, " to size ", size2, " is empty"));
  }
  // Step 2: a power-of-two old tree is itself a node of the new one, so the
  // proof omits its hash.
  std::vector<Hash> path;
  path.reserve(proof.size() + 1);
  if (std::has_single_bit(size1)) path.push_back(root1);
  path.insert(path.end(), proof.begin(), proof.end());
  // Steps 3-5.
  uint64_t fn = size1 - 1;
  uint64_t sn = size2 - 1;
  while ((fn & 1) == 1) {
    fn >>= 1;
    sn >>= 1;
  }
  Hash fr = path[0];
  Hash sr = path[0];
  // Step 6.
  for (size_t i = 1; i < path.size(); ++i) {
    const Hash& c = path[i];
    if (sn == 0) {
      return absl::InvalidArgumentError(absl::StrCat("consistency proof has ", proof.size(),
                                                     " hashes, more than size ", size1, " to size ",
                                                     size2, " needs"));
    }
    if ((fn & 1) == 1 || fn == sn) {
      fr = NodeHash(c, fr);
      sr = NodeHash(c, sr);
      while ((fn & 1) == 0 && fn != 0) {
        fn >>= 1;
        sn >>= 1;
      }
    } else {
      sr = NodeHash(sr, c);
    }
    fn >>= 1;
    sn >>= 1;
  }
  // Step 7.
  if (sn != 0) {
    return absl::InvalidArgumentError(absl::StrCat("consistency proof has ", proof.size(),
                                                   " hashes, fewer than size ", size1, " to size ",
                                                   size2, " needs"));
  }
  if (fr != root1) {
    return absl::UnauthenticatedError(absl::StrCat("consistency proof from size ", size1,
                                                   " to size ", size2, " leads to old root ",
                                                   Hex(fr), ", not the expected ", Hex(root1)));
  }
  if (sr != root2) {
    return absl::UnauthenticatedError(absl::StrCat("consistency proof from size ", size1,
                                                   " to size ", size2, " leads to new root ",
                                                   Hex(sr), ", not the expected ", Hex(root2)));
  }
  return absl::OkStatus();
}

void MemoryTree::Column::push_back(const Hash& h) {
  if ((size_ & kChunkMask) == 0) {
    chunks_.emplace_back();
    // The first chunk grows as needed, so small trees stay small.
    if (size_ != 0) chunks_.back().reserve(kChunkMask + 1);
  }
  chunks_.back().push_back(h);
  ++size_;
}

void MemoryTree::Append(absl::string_view leaf) { AppendLeafHash(LeafHash(leaf)); }

void MemoryTree::AppendLeafHash(const Hash& h) {
  if (levels_.empty()) levels_.emplace_back();
  levels_[0].push_back(h);
  // Each completed pair makes one node a level up (NodesCompletedBy).
  for (size_t level = 0; levels_[level].size() % 2 == 0; ++level) {
    if (level + 1 == levels_.size()) levels_.emplace_back();
    const Column& row = levels_[level];
    Hash parent = NodeHash(row[row.size() - 2], row.back());
    levels_[level + 1].push_back(parent);
  }
}

Hash MemoryTree::Root() const {
  if (size() == 0) return EmptyRoot();
  std::vector<NodeId> ids;
  Decompose(Range{0, size()}, ids);
  std::vector<Hash> pieces;
  pieces.reserve(ids.size());
  for (const NodeId& id : ids) pieces.push_back(levels_[id.level][id.index]);
  return FoldRight(pieces);
}

absl::StatusOr<std::vector<Hash>> MemoryTree::ReadNodes(absl::Span<const NodeId> ids) {
  std::vector<Hash> out;
  out.reserve(ids.size());
  for (const NodeId& id : ids) {
    if (id.level < 0 || static_cast<size_t>(id.level) >= levels_.size() ||
        id.index >= levels_[id.level].size()) {
      return absl::NotFoundError(absl::StrCat("node (level ", id.level, ", index ", id.index,
                                              ") is not complete in a tree of size ", size()));
    }
    out.push_back(levels_[id.level][id.index]);
  }
  return out;
}

}  // namespace kbs::receipts
