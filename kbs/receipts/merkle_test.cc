#include "kbs/receipts/merkle.h"

#include <cstdio>
#include <map>
#include <ostream>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::receipts {

void PrintTo(const NodeId& id, std::ostream* os) {
  *os << "(" << id.level << ", " << id.index << ")";
}

namespace {

using ::testing::ElementsAre;
using ::testing::IsEmpty;

Hash H(absl::string_view hex) {
  absl::StatusOr<std::string> raw = common::HexDecode(hex);
  Hash h{};
  if (!raw.ok() || raw->size() != h.size()) {
    ADD_FAILURE() << "bad test hash " << hex;
    return h;
  }
  std::copy(raw->begin(), raw->end(), h.begin());
  return h;
}

std::string Hex(const Hash& h) {
  return common::HexEncode(absl::string_view(reinterpret_cast<const char*>(h.data()), h.size()));
}

std::vector<std::string> Hexes(const std::vector<Hash>& hashes) {
  std::vector<std::string> out;
  for (const Hash& h : hashes) out.push_back(Hex(h));
  return out;
}

// ---------------------------------------------------------------------------
// Known answers. The eight leaves and their hashes are the reference tree of
// google/certificate-transparency cpp/merkletree/merkle_tree_test.cc
// (kInputs, kSHA256Roots, kSHA256Paths, kSHA256Proofs), repeated in
// transparency-dev/merkle testonly/constants.go (LeafInputs, NodeHashes,
// RootHashes). CT numbers leaves from 1 in its path vectors; the indices
// below are 0-based.

const std::vector<std::string>& CtLeaves() {
  static const auto* const kLeaves = new std::vector<std::string>{
      std::string(),
      std::string("\x00", 1),
      "\x10",
      "\x20\x21",
      "\x30\x31",
      "\x40\x41\x42\x43",
      "\x50\x51\x52\x53\x54\x55\x56\x57",
      "\x60\x61\x62\x63\x64\x65\x66\x67\x68\x69\x6a\x6b\x6c\x6d\x6e\x6f",
  };
  return *kLeaves;
}

// kSHA256Roots / RootHashes()[1..8]: the root after each leaf.
constexpr const char* kCtRoots[] = {
    "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
    "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125",
    "aeb6bcfe274b70a14fb067a5e5578264db0fa9b51af5e0ba159158f329e06e77",
    "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7",
    "4e3bbb1f7b478dcfe71fb631631519a3bca12c9aefca1612bfce4c13a86264d4",
    "76e67dadbcdf1e10e1b74ddc608abd2f98dfb16fbce75277b5232a127f2087ef",
    "ddb89be403809e325750d3d263cd78929c2942b7942a34b77e122c9594a74c8c",
    "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328",
};

MemoryTree CtTree() {
  MemoryTree tree;
  for (const std::string& leaf : CtLeaves()) tree.Append(leaf);
  return tree;
}

TEST(MerkleKnownAnswerTest, EmptyRootIsSha256OfNothing) {
  EXPECT_EQ(Hex(EmptyRoot()), "e3b0c44298fc1c149afbf4c8996fb92427ae41e4649b934ca495991b7852b855");
  EXPECT_EQ(MemoryTree().Root(), EmptyRoot());
  MemoryTree tree;
  EXPECT_EQ(*RootAt(tree, 0), EmptyRoot());
}

TEST(MerkleKnownAnswerTest, LeafAndNodeHashes) {
  // testonly/constants.go NodeHashes(): level 0, then levels 1-3.
  const char* kLevel0[] = {
      "6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
      "96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
      "0298d122906dcfc10892cb53a73992fc5b9f493ea4c9badb27b791b4127a7fe7",
      "07506a85fd9dd2f120eb694f86011e5bb4662e5c415a62917033d4a9624487e7",
      "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
      "4271a26be0d8a84f0bd54c8c302e7cb3a3b5d1fa6780a40bcce2873477dab658",
      "b08693ec2e721597130641e8211e7eedccb4c26413963eee6c1e2ed16ffb1a5f",
      "46f6ffadd3d06a09ff3c5860d2755c8b9819db7df44251788c7d8e3180de8eb1",
  };
  for (size_t i = 0; i < 8; ++i) EXPECT_EQ(Hex(LeafHash(CtLeaves()[i])), kLevel0[i]) << i;
  EXPECT_EQ(Hex(NodeHash(H(kLevel0[0]), H(kLevel0[1]))),
            "fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125");
  EXPECT_EQ(Hex(NodeHash(H(kLevel0[2]), H(kLevel0[3]))),
            "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e");

  MemoryTree tree = CtTree();
  std::vector<NodeId> ids = {{1, 2}, {1, 3}, {2, 1}, {3, 0}};
  absl::StatusOr<std::vector<Hash>> nodes = tree.ReadNodes(ids);
  ASSERT_TRUE(nodes.ok()) << nodes.status();
  EXPECT_THAT(Hexes(*nodes),
              ElementsAre("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4",
                          "5dc9da79a70659a9ad559cb701ded9a2ab9d823aad2f4960cfe370eff4604328"));
}

TEST(MerkleKnownAnswerTest, RootPerSize) {
  MemoryTree incremental;
  for (size_t n = 1; n <= 8; ++n) {
    incremental.Append(CtLeaves()[n - 1]);
    EXPECT_EQ(Hex(incremental.Root()), kCtRoots[n - 1]) << n;
  }
  MemoryTree tree = CtTree();
  for (uint64_t n = 1; n <= 8; ++n) {
    absl::StatusOr<Hash> root = RootAt(tree, n);
    ASSERT_TRUE(root.ok()) << root.status();
    EXPECT_EQ(Hex(*root), kCtRoots[n - 1]) << n;
  }
}

TEST(MerkleKnownAnswerTest, InclusionPaths) {
  // kSHA256Paths (leaf numbers 1, 6, 3, 2 there).
  MemoryTree tree = CtTree();
  EXPECT_THAT(Hexes(*InclusionProof(tree, 0, 8)),
              ElementsAre("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"));
  EXPECT_THAT(Hexes(*InclusionProof(tree, 5, 8)),
              ElementsAre("bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b",
                          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"));
  EXPECT_THAT(Hexes(*InclusionProof(tree, 2, 3)),
              ElementsAre("fac54203e7cc696cf0dfcb42c92a1d9dbaf70ad9e621f4bd8d98662f00e3c125"));
  EXPECT_THAT(Hexes(*InclusionProof(tree, 1, 5)),
              ElementsAre("6e340b9cffb37a989ca544e6bb780a2c78901d3fb33738768511a30617afa01d",
                          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"));
  EXPECT_THAT(*InclusionProof(tree, 0, 1), IsEmpty());

  EXPECT_TRUE(
      VerifyInclusion(LeafHash(CtLeaves()[5]), 5, 8, *InclusionProof(tree, 5, 8), H(kCtRoots[7]))
          .ok());
}

TEST(MerkleKnownAnswerTest, ConsistencyProofs) {
  // kSHA256Proofs.
  MemoryTree tree = CtTree();
  EXPECT_THAT(*ConsistencyProof(tree, 1, 1), IsEmpty());
  EXPECT_THAT(Hexes(*ConsistencyProof(tree, 1, 8)),
              ElementsAre("96a296d224f285c67bee93c30f8a309157f0daa35dc5b87e410b78630a09cfc7",
                          "5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                          "6b47aaf29ee3c2af9af889bc1fb9254dabd31177f16232dd6aab035ca39bf6e4"));
  EXPECT_THAT(Hexes(*ConsistencyProof(tree, 6, 8)),
              ElementsAre("0ebc5d3437fbe2db158b9f126a1d118e308181031d0a949f8dededebc558ef6a",
                          "ca854ea128ed050b41b35ffc1b87b8eb2bde461e9e3b5596ece6b9d5975a0ae0",
                          "d37ee418976dd95753c1c73862b9398fa2a2cf9b4ff0fdfe8b30cd95209614b7"));
  EXPECT_THAT(Hexes(*ConsistencyProof(tree, 2, 5)),
              ElementsAre("5f083f0a1a33ca076a95279832580db3e0ef4584bdff1f54c8a360f50de3031e",
                          "bc1a0643b12e4d2d7c77918f44e0f4f79a838b6cf9ec5b5c283e1f4d88599e6b"));
  for (auto [m, n] : {std::pair<int, int>{1, 8}, {6, 8}, {2, 5}}) {
    EXPECT_TRUE(VerifyConsistency(m, n, *ConsistencyProof(tree, m, n), H(kCtRoots[m - 1]),
                                  H(kCtRoots[n - 1]))
                    .ok())
        << m << " " << n;
  }
}

// ---------------------------------------------------------------------------
// An independent reference, written straight from the recursive definitions
// of RFC 6962 §2.1 (MTH), §2.1.1 (PATH) and §2.1.2 (PROOF/SUBPROOF) over a
// list of leaf hashes. Slow (O(n) per MTH) and obviously right.

uint64_t LargestPowerOfTwoBelow(uint64_t n) {
  uint64_t k = 1;
  while (k * 2 < n) k *= 2;
  return k;
}

using Leaves = absl::Span<const Hash>;

Hash RefMth(Leaves d) {
  if (d.empty()) return EmptyRoot();
  if (d.size() == 1) return d[0];
  uint64_t k = LargestPowerOfTwoBelow(d.size());
  return NodeHash(RefMth(d.subspan(0, k)), RefMth(d.subspan(k)));
}

std::vector<Hash> RefPath(uint64_t m, Leaves d) {
  if (d.size() <= 1) return {};
  uint64_t k = LargestPowerOfTwoBelow(d.size());
  std::vector<Hash> path;
  if (m < k) {
    path = RefPath(m, d.subspan(0, k));
    path.push_back(RefMth(d.subspan(k)));
  } else {
    path = RefPath(m - k, d.subspan(k));
    path.push_back(RefMth(d.subspan(0, k)));
  }
  return path;
}

std::vector<Hash> RefSubproof(uint64_t m, Leaves d, bool b) {
  if (m == d.size()) return b ? std::vector<Hash>{} : std::vector<Hash>{RefMth(d)};
  uint64_t k = LargestPowerOfTwoBelow(d.size());
  std::vector<Hash> proof;
  if (m <= k) {
    proof = RefSubproof(m, d.subspan(0, k), b);
    proof.push_back(RefMth(d.subspan(k)));
  } else {
    proof = RefSubproof(m - k, d.subspan(k), false);
    proof.push_back(RefMth(d.subspan(0, k)));
  }
  return proof;
}

std::vector<Hash> RefProof(uint64_t m, Leaves d) { return RefSubproof(m, d, true); }

constexpr uint64_t kMaxExhaustive = 70;    // every size 1..70, every index/size pair
constexpr uint64_t kAllBitFlipsUpTo = 16;  // sizes whose proofs get every bit flipped

Hash FlipBit(Hash h, size_t bit) {
  h[bit / 8] ^= static_cast<uint8_t>(1u << (bit % 8));
  return h;
}

// The bits to flip in a hash: all of them for small trees, a spread otherwise.
std::vector<size_t> BitsToFlip(uint64_t size, uint64_t salt) {
  std::vector<size_t> bits;
  if (size <= kAllBitFlipsUpTo) {
    for (size_t b = 0; b < 256; ++b) bits.push_back(b);
  } else {
    for (size_t b : {size_t{0}, size_t{255}, static_cast<size_t>((salt * 37 + 11) % 256)}) {
      bits.push_back(b);
    }
  }
  return bits;
}

class MerkleReferenceTest : public ::testing::Test {
 protected:
  void SetUp() override {
    for (uint64_t i = 0; i < kMaxExhaustive; ++i) {
      std::string leaf = absl::StrCat("receipt ", i);
      leaves_.push_back(LeafHash(leaf));
      tree_.Append(leaf);
    }
  }
  Leaves Prefix(uint64_t n) const { return Leaves(leaves_).subspan(0, n); }

  std::vector<Hash> leaves_;
  MemoryTree tree_;
};

TEST_F(MerkleReferenceTest, RootsMatchReference) {
  MemoryTree incremental;
  for (uint64_t n = 1; n <= kMaxExhaustive; ++n) {
    incremental.AppendLeafHash(leaves_[n - 1]);
    Hash want = RefMth(Prefix(n));
    EXPECT_EQ(incremental.Root(), want) << n;
    EXPECT_EQ(*RootAt(incremental, n), want) << n;
    EXPECT_EQ(*RootAt(tree_, n), want) << n;
  }
}

TEST_F(MerkleReferenceTest, InclusionProofsMatchReferenceAndVerify) {
  for (uint64_t n = 1; n <= kMaxExhaustive; ++n) {
    const Hash root = RefMth(Prefix(n));
    for (uint64_t i = 0; i < n; ++i) {
      SCOPED_TRACE(absl::StrCat("index ", i, " size ", n));
      absl::StatusOr<std::vector<Hash>> proof = InclusionProof(tree_, i, n);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(Hexes(*proof), Hexes(RefPath(i, Prefix(n))));
      const Hash& leaf = leaves_[i];
      ASSERT_TRUE(VerifyInclusion(leaf, i, n, *proof, root).ok());

      // Wrong index, wrong size.
      if (i > 0) {
        EXPECT_FALSE(VerifyInclusion(leaf, i - 1, n, *proof, root).ok());
      }
      EXPECT_FALSE(VerifyInclusion(leaf, i + 1, n, *proof, root).ok());
      EXPECT_FALSE(VerifyInclusion(leaf, i ^ 2, n, *proof, root).ok());
      EXPECT_FALSE(VerifyInclusion(leaf, i, n * 2, *proof, root).ok());
      EXPECT_FALSE(VerifyInclusion(leaf, i, n / 2, *proof, root).ok());
      // Wrong leaf, wrong root.
      if (n > 1) {
        EXPECT_FALSE(VerifyInclusion(leaves_[(i + 1) % n], i, n, *proof, root).ok());
      }
      EXPECT_FALSE(VerifyInclusion(LeafHash("not logged"), i, n, *proof, root).ok());
      EXPECT_FALSE(VerifyInclusion(leaf, i, n, *proof, EmptyRoot()).ok());
      // Every single flipped bit, in the leaf, the root and each proof hash.
      for (size_t bit : BitsToFlip(n, i)) {
        EXPECT_FALSE(VerifyInclusion(FlipBit(leaf, bit), i, n, *proof, root).ok());
        EXPECT_FALSE(VerifyInclusion(leaf, i, n, *proof, FlipBit(root, bit)).ok());
        for (size_t j = 0; j < proof->size(); ++j) {
          std::vector<Hash> bad = *proof;
          bad[j] = FlipBit(bad[j], bit);
          EXPECT_FALSE(VerifyInclusion(leaf, i, n, bad, root).ok()) << "hash " << j;
        }
      }
      // Truncated, extended, prefixed.
      std::vector<Hash> bad = *proof;
      bad.push_back(Hash{});
      EXPECT_FALSE(VerifyInclusion(leaf, i, n, bad, root).ok());
      bad.back() = root;
      EXPECT_FALSE(VerifyInclusion(leaf, i, n, bad, root).ok());
      if (!proof->empty()) {
        bad = *proof;
        bad.pop_back();
        EXPECT_FALSE(VerifyInclusion(leaf, i, n, bad, root).ok());
      }
      bad = *proof;
      bad.insert(bad.begin(), leaf);
      EXPECT_FALSE(VerifyInclusion(leaf, i, n, bad, root).ok());
    }
  }
}

TEST_F(MerkleReferenceTest, ConsistencyProofsMatchReferenceAndVerify) {
  for (uint64_t n = 1; n <= kMaxExhaustive; ++n) {
    const Hash root2 = RefMth(Prefix(n));
    for (uint64_t m = 1; m <= n; ++m) {
      SCOPED_TRACE(absl::StrCat("size1 ", m, " size2 ", n));
      const Hash root1 = RefMth(Prefix(m));
      absl::StatusOr<std::vector<Hash>> proof = ConsistencyProof(tree_, m, n);
      ASSERT_TRUE(proof.ok()) << proof.status();
      ASSERT_EQ(Hexes(*proof), Hexes(RefProof(m, Prefix(n))));
      ASSERT_TRUE(VerifyConsistency(m, n, *proof, root1, root2).ok());
      if (m == n) {
        EXPECT_THAT(*proof, IsEmpty());
        EXPECT_FALSE(VerifyConsistency(m, n, *proof, root1, EmptyRoot()).ok());
        EXPECT_FALSE(VerifyConsistency(m, n, {root1}, root1, root2).ok());
        continue;
      }
      // Wrong sizes.
      EXPECT_FALSE(VerifyConsistency(m - 1, n, *proof, root1, root2).ok());
      EXPECT_FALSE(VerifyConsistency(m + 1, n, *proof, root1, root2).ok());
      EXPECT_FALSE(VerifyConsistency(m ^ 2, n, *proof, root1, root2).ok());
      EXPECT_FALSE(VerifyConsistency(m, n * 2, *proof, root1, root2).ok());
      EXPECT_FALSE(VerifyConsistency(m, n / 2, *proof, root1, root2).ok());
      // Wrong or swapped roots.
      EXPECT_FALSE(VerifyConsistency(m, n, *proof, root2, root1).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, *proof, EmptyRoot(), root2).ok());
      EXPECT_FALSE(VerifyConsistency(m, n, *proof, root1, EmptyRoot()).ok());
      for (size_t bit : BitsToFlip(n, m)) {
        EXPECT_FALSE(VerifyConsistency(m, n, *proof, FlipBit(root1, bit), root2).ok());
        EXPECT_FALSE(VerifyConsistency(m, n, *proof, root1, FlipBit(root2, bit)).ok());
        for (size_t j = 0; j < proof->size(); ++j) {
          std::vector<Hash> bad = *proof;
          bad[j] = FlipBit(bad[j], bit);
          EXPECT_FALSE(VerifyConsistency(m, n, bad, root1, root2).ok()) << "hash " << j;
        }
      }
      // Empty, truncated, extended, prefixed.
      EXPECT_FALSE(VerifyConsistency(m, n, {}, root1, root2).ok());
      std::vector<Hash> bad = *proof;
      bad.pop_back();
      EXPECT_FALSE(VerifyConsistency(m, n, bad, root1, root2).ok());
      bad = *proof;
      bad.push_back(Hash{});
      EXPECT_FALSE(VerifyConsistency(m, n, bad, root1, root2).ok());
      bad.back() = proof->back();
      EXPECT_FALSE(VerifyConsistency(m, n, bad, root1, root2).ok());
      bad = *proof;
      bad.insert(bad.begin(), root1);
      EXPECT_FALSE(VerifyConsistency(m, n, bad, root1, root2).ok());
    }
  }
}

TEST_F(MerkleReferenceTest, ConsistencyFromEmptyTree) {
  EXPECT_TRUE(VerifyConsistency(0, 5, {}, EmptyRoot(), RefMth(Prefix(5))).ok());
  EXPECT_TRUE(VerifyConsistency(0, 0, {}, EmptyRoot(), EmptyRoot()).ok());
  EXPECT_FALSE(VerifyConsistency(0, 5, {}, leaves_[0], RefMth(Prefix(5))).ok());
  EXPECT_FALSE(VerifyConsistency(0, 5, {leaves_[0]}, EmptyRoot(), RefMth(Prefix(5))).ok());
}

// ---------------------------------------------------------------------------
// Argument checks.

TEST(MerkleArgumentsTest, ProofGenerationRejectsImpossibleRequests) {
  MemoryTree tree = CtTree();
  constexpr uint64_t kTooBig = kMaxTreeSize + 1;
  for (auto [index, size] : {std::pair<uint64_t, uint64_t>{0, 0}, {8, 8}, {9, 8}, {0, kTooBig}}) {
    absl::StatusOr<std::vector<Hash>> p = InclusionProof(tree, index, size);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << index << " " << size;
  }
  for (auto [m, n] : {std::pair<uint64_t, uint64_t>{0, 0}, {0, 5}, {6, 5}, {1, kTooBig}}) {
    absl::StatusOr<std::vector<Hash>> p = ConsistencyProof(tree, m, n);
    EXPECT_EQ(p.status().code(), absl::StatusCode::kInvalidArgument) << m << " " << n;
  }
  EXPECT_EQ(RootAt(tree, kTooBig).status().code(), absl::StatusCode::kInvalidArgument);
  // Beyond what the store holds: the reader's NotFound comes through.
  EXPECT_EQ(RootAt(tree, 9).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(InclusionProof(tree, 0, 9).status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(ConsistencyProof(tree, 3, 12).status().code(), absl::StatusCode::kNotFound);
}

TEST(MerkleArgumentsTest, VerificationRejectsImpossibleArguments) {
  const Hash h = LeafHash("x");
  EXPECT_EQ(VerifyInclusion(h, 0, 0, {}, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyInclusion(h, 1, 1, {}, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyInclusion(h, 0, kMaxTreeSize + 1, {}, h).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(VerifyInclusion(h, 0, 1, {}, h).ok());
  EXPECT_EQ(VerifyInclusion(h, 0, 1, {}, EmptyRoot()).code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(VerifyInclusion(h, 0, 1, {h}, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyInclusion(h, 0, 2, {}, h).code(), absl::StatusCode::kInvalidArgument);
  // The largest tree: index 2^63 - 1 needs 63 hashes.
  std::vector<Hash> long_proof(63, h);
  absl::Status s = VerifyInclusion(h, kMaxTreeSize - 1, kMaxTreeSize, long_proof, h);
  EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated) << s;
  long_proof.push_back(h);
  EXPECT_EQ(VerifyInclusion(h, kMaxTreeSize - 1, kMaxTreeSize, long_proof, h).code(),
            absl::StatusCode::kInvalidArgument);

  EXPECT_EQ(VerifyConsistency(2, 1, {h}, h, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyConsistency(1, kMaxTreeSize + 1, {h}, h, h).code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyConsistency(1, 2, {}, h, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyConsistency(3, 3, {h}, h, h).code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(VerifyConsistency(3, 3, {}, h, EmptyRoot()).code(), absl::StatusCode::kUnauthenticated);
}

// ---------------------------------------------------------------------------
// The writer's side and the reader seam.

TEST(NodesCompletedByTest, KnownValues) {
  EXPECT_THAT(NodesCompletedBy(0), IsEmpty());
  EXPECT_THAT(NodesCompletedBy(1), ElementsAre(NodeId{1, 0}));
  EXPECT_THAT(NodesCompletedBy(2), IsEmpty());
  EXPECT_THAT(NodesCompletedBy(3), ElementsAre(NodeId{1, 1}, NodeId{2, 0}));
  EXPECT_THAT(NodesCompletedBy(6), IsEmpty());
  EXPECT_THAT(NodesCompletedBy(7), ElementsAre(NodeId{1, 3}, NodeId{2, 1}, NodeId{3, 0}));
  EXPECT_THAT(NodesCompletedBy(11), ElementsAre(NodeId{1, 5}, NodeId{2, 2}));
  std::vector<NodeId> top = NodesCompletedBy(kMaxTreeSize - 1);
  ASSERT_EQ(top.size(), 63u);
  EXPECT_EQ(top.back(), (NodeId{63, 0}));
  EXPECT_THAT(NodesCompletedBy(kMaxTreeSize), IsEmpty());
  EXPECT_THAT(NodesCompletedBy(UINT64_MAX), IsEmpty());
}

// A store the way the receipt log writes one: the leaf hash at level 0, then
// NodesCompletedBy's nodes, each from its two children, in the order given.
class MapStore final : public NodeReader {
 public:
  void Append(absl::string_view leaf) {
    nodes_[{0, size_}] = LeafHash(leaf);
    for (const NodeId& id : NodesCompletedBy(size_)) {
      auto left = nodes_.find({id.level - 1, 2 * id.index});
      auto right = nodes_.find({id.level - 1, 2 * id.index + 1});
      ASSERT_NE(left, nodes_.end());
      ASSERT_NE(right, nodes_.end());
      nodes_[{id.level, id.index}] = NodeHash(left->second, right->second);
    }
    ++size_;
  }
  size_t stored() const { return nodes_.size(); }

  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) override {
    std::vector<Hash> out;
    for (const NodeId& id : ids) {
      auto it = nodes_.find({id.level, id.index});
      if (it == nodes_.end()) return absl::NotFoundError("no such node");
      out.push_back(it->second);
    }
    return out;
  }

 private:
  std::map<std::pair<int, uint64_t>, Hash> nodes_;
  uint64_t size_ = 0;
};

TEST(NodeReaderTest, WriterStoreAgreesWithMemoryTree) {
  MapStore store;
  MemoryTree tree;
  for (int i = 0; i < 45; ++i) {
    std::string leaf = absl::StrCat("leaf ", i);
    store.Append(leaf);
    tree.Append(leaf);
  }
  EXPECT_EQ(store.stored(), 45u + 22 + 11 + 5 + 2 + 1);
  for (uint64_t n = 1; n <= 45; ++n) {
    EXPECT_EQ(*RootAt(store, n), *RootAt(tree, n));
    for (uint64_t i = 0; i < n; ++i)
      EXPECT_EQ(*InclusionProof(store, i, n), *InclusionProof(tree, i, n));
    for (uint64_t m = 1; m <= n; ++m) {
      EXPECT_EQ(*ConsistencyProof(store, m, n), *ConsistencyProof(tree, m, n));
    }
  }
}

// Counts ReadNodes calls and the nodes asked for.
class CountingReader final : public NodeReader {
 public:
  explicit CountingReader(NodeReader* inner) : inner_(inner) {}
  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId> ids) override {
    ++calls;
    nodes += ids.size();
    return inner_->ReadNodes(ids);
  }
  void Reset() { calls = nodes = 0; }

  int calls = 0;
  size_t nodes = 0;

 private:
  NodeReader* inner_;
};

TEST(NodeReaderTest, ProofsInAMillionLeafTreeTakeOneBatchOfLogNodes) {
  constexpr uint64_t kSize = 1000000;  // log2 ~ 19.9
  MemoryTree tree;
  for (uint64_t i = 0; i < kSize; ++i) {
    Hash h{};
    for (int b = 0; b < 8; ++b) h[b] = static_cast<uint8_t>(i >> (8 * b));
    tree.AppendLeafHash(h);
  }
  const Hash root = tree.Root();
  CountingReader reader(&tree);
  // At most 2 * 20 nodes: a path's hashes plus the pieces of its one partial
  // right-edge subtree.
  constexpr size_t kMaxNodes = 40;

  for (uint64_t index : {uint64_t{0}, uint64_t{1}, uint64_t{524287}, uint64_t{524288},
                         uint64_t{999998}, kSize - 1}) {
    reader.Reset();
    absl::StatusOr<std::vector<Hash>> proof = InclusionProof(reader, index, kSize);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(reader.calls, 1) << index;
    EXPECT_LE(reader.nodes, kMaxNodes) << index;
    Hash leaf{};
    for (int b = 0; b < 8; ++b) leaf[b] = static_cast<uint8_t>(index >> (8 * b));
    EXPECT_TRUE(VerifyInclusion(leaf, index, kSize, *proof, root).ok()) << index;
  }
  for (uint64_t m : {uint64_t{1}, uint64_t{3}, uint64_t{524288}, uint64_t{777777}, kSize - 1}) {
    reader.Reset();
    absl::StatusOr<std::vector<Hash>> proof = ConsistencyProof(reader, m, kSize);
    ASSERT_TRUE(proof.ok()) << proof.status();
    EXPECT_EQ(reader.calls, 1) << m;
    EXPECT_LE(reader.nodes, kMaxNodes) << m;
    reader.Reset();
    Hash root1 = *RootAt(reader, m);
    EXPECT_EQ(reader.calls, 1);
    EXPECT_LE(reader.nodes, 20u);
    EXPECT_TRUE(VerifyConsistency(m, kSize, *proof, root1, root).ok()) << m;
  }
}

class BrokenReader final : public NodeReader {
 public:
  explicit BrokenReader(absl::StatusOr<std::vector<Hash>> answer) : answer_(std::move(answer)) {}
  absl::StatusOr<std::vector<Hash>> ReadNodes(absl::Span<const NodeId>) override { return answer_; }

 private:
  absl::StatusOr<std::vector<Hash>> answer_;
};

TEST(NodeReaderTest, ReaderFailuresComeThrough) {
  BrokenReader unavailable(absl::UnavailableError("database is locked"));
  EXPECT_EQ(InclusionProof(unavailable, 3, 10).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(ConsistencyProof(unavailable, 3, 10).status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(RootAt(unavailable, 10).status().code(), absl::StatusCode::kUnavailable);
  BrokenReader short_answer(std::vector<Hash>(1));
  EXPECT_EQ(InclusionProof(short_answer, 3, 10).status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(RootAt(short_answer, 10).status().code(), absl::StatusCode::kDataLoss);
}

TEST(MemoryTreeTest, ReadNodesRejectsIncompleteNodes) {
  MemoryTree tree = CtTree();  // 8 leaves
  EXPECT_TRUE(tree.ReadNodes(std::vector<NodeId>{{3, 0}, {0, 7}}).ok());
  for (NodeId id : {NodeId{0, 8}, NodeId{3, 1}, NodeId{4, 0}, NodeId{-1, 0}, NodeId{64, 0}}) {
    EXPECT_EQ(tree.ReadNodes(std::vector<NodeId>{id}).status().code(), absl::StatusCode::kNotFound)
        << id.level << "," << id.index;
  }
}

}  // namespace
}  // namespace kbs::receipts
