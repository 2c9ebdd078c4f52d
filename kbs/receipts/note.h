// Signed notes (c2sp.org/signed-note) with Ed25519 keys, log checkpoints
// (c2sp.org/tlog-checkpoint) and offline inclusion proofs
// (c2sp.org/tlog-proof) for the receipt log.
//
// Every parser here is bounded (the limits below), checks its input strictly
// (one accepted spelling per value) and says in its error what was wrong:
// InvalidArgument for malformed text, Unauthenticated for a signature or
// proof that does not verify. All types are immutable after construction and
// thread-safe.
#ifndef KBS_KBS_RECEIPTS_NOTE_H_
#define KBS_KBS_RECEIPTS_NOTE_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_util.h"
#include "kbs/receipts/merkle.h"

namespace kbs::receipts {

// Largest signed note accepted: room for the 16 signatures signed-note.md
// says verifiers must accept even at post-quantum sizes (~5 kB each).
inline constexpr size_t kMaxNoteBytes = 128 * 1024;
// Most signature lines in one note (the spec's minimum is 16).
inline constexpr size_t kMaxNoteSignatures = 100;
// Longest key name (signers, verifier keys and signature lines).
inline constexpr size_t kMaxKeyNameBytes = 256;
// Most extension lines in a checkpoint.
inline constexpr size_t kMaxCheckpointExtensions = 32;
// Most hashes in a tlog-proof: a tree of at most 2^63 leaves needs <= 63.
inline constexpr size_t kMaxTlogProofHashes = 64;
// Largest decoded `extra` data in a tlog-proof.
inline constexpr size_t kMaxTlogProofExtraBytes = 16 * 1024;
// Largest tlog-proof text.
inline constexpr size_t kMaxTlogProofBytes = kMaxNoteBytes + 32 * 1024;

// tlog-checkpoint.md "Note text".
struct Checkpoint {
  std::string origin;
  uint64_t size = 0;
  Hash root{};
  std::vector<std::string> extensions;  // each non-empty, without "\n"
};

// "<origin>\n<size>\n<base64(root)>\n" then one line per extension. Formats
// what it is given; ParseCheckpointBody(CheckpointBody(c)) == c for every
// checkpoint that parser accepts.
std::string CheckpointBody(const Checkpoint& c);
// Strict tlog-checkpoint.md: at least three non-empty lines each ending in
// "\n"; non-empty origin; decimal size without leading zeros (at most
// kMaxTreeSize); canonical base64 of a 32-byte root; non-empty extension
// lines. No control characters, valid UTF-8. InvalidArgument naming the line.
absl::StatusOr<Checkpoint> ParseCheckpointBody(absl::string_view body);

// Signs notes with an Ed25519 key (signed-note.md "Ed25519 signatures").
class NoteSigner final {
 public:
  // `name`: non-empty, no Unicode spaces or '+', no control characters, at
  // most kMaxKeyNameBytes. `private_key`: an Ed25519 private key
  // (common::GenerateEd25519Key, common::PrivateKeyFromPem). InvalidArgument
  // otherwise.
  static absl::StatusOr<std::unique_ptr<NoteSigner>> Create(std::string name,
                                                            common::EvpPkeyPtr private_key);

  // The whole signed note: body + "\n" + "— <name> <base64(key ID ||
  // signature)>\n". `body` must be non-empty, end in "\n", be valid UTF-8
  // without control characters other than "\n", and leave room for the
  // signature within kMaxNoteBytes: InvalidArgument otherwise. Internal if
  // OpenSSL fails.
  absl::StatusOr<std::string> Sign(absl::string_view body) const;

  // "<name>+<8 hex digits of the key ID>+<base64(0x01 || public key)>".
  const std::string& verifier_key() const { return verifier_key_; }
  const std::string& name() const { return name_; }
  // SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.
  uint32_t key_id() const { return key_id_; }

 private:
  NoteSigner(std::string name, common::EvpPkeyPtr key, uint32_t key_id, std::string vkey)
      : name_(std::move(name)),
        key_(std::move(key)),
        key_id_(key_id),
        verifier_key_(std::move(vkey)) {}

  std::string name_;
  common::EvpPkeyPtr key_;
  uint32_t key_id_;
  std::string verifier_key_;
};

// Verifies notes against one trusted Ed25519 verifier key. Copyable (the
// copies share the immutable OpenSSL key); a moved-from verifier's Open
// fails with FailedPrecondition.
class NoteVerifier final {
 public:
  // Parses "<name>+<hex key ID>+<base64(0x01 || 32-byte key)>"; the key ID
  // must be 8 lowercase hex digits and match the name and key.
  // InvalidArgument otherwise (other signature types included).
  static absl::StatusOr<NoteVerifier> FromVerifierKey(absl::string_view vkey);

  NoteVerifier(const NoteVerifier& other);
  NoteVerifier& operator=(const NoteVerifier& other);
  NoteVerifier(NoteVerifier&&) noexcept = default;
  NoteVerifier& operator=(NoteVerifier&&) noexcept = default;

  // Checks that `note` carries a valid signature by this key and returns the
  // note text (the body, with its final "\n"). Signature lines of other keys
  // (another name or key ID) are ignored, as signed-note.md requires.
  // InvalidArgument: not a well-formed signed note (size, UTF-8, control
  // characters, blank line, signature line syntax, signature count).
  // Unauthenticated: no signature line of this key, or one that fails to
  // verify (the whole note is then rejected).
  absl::StatusOr<std::string> Open(absl::string_view note) const;

  const std::string& name() const { return name_; }
  uint32_t key_id() const { return key_id_; }

 private:
  NoteVerifier(std::string name, uint32_t key_id, common::EvpPkeyPtr key)
      : name_(std::move(name)), key_id_(key_id), key_(std::move(key)) {}

  std::string name_;
  uint32_t key_id_;
  common::EvpPkeyPtr key_;
};

// c2sp.org/tlog-proof@v1.
struct TlogProof {
  uint64_t index = 0;
  std::vector<Hash> path;       // leaf sibling first (RFC 6962 §2.1.1)
  std::string checkpoint_note;  // the signed checkpoint, verbatim
  std::string extra;            // raw bytes; empty: no "extra" line
};

// "c2sp.org/tlog-proof@v1\n" ["extra <base64>\n"] "index <n>\n"
// <base64 hash>"\n"... "\n" <checkpoint_note>.
std::string EncodeTlogProof(const TlogProof& p);
// Strict and bounded: at most kMaxTlogProofBytes, kMaxTlogProofHashes hashes,
// kMaxTlogProofExtraBytes of extra data (present means non-empty), index
// below kMaxTreeSize without leading zeros, canonical base64 everywhere, a
// non-empty checkpoint after the blank line. The checkpoint itself is checked
// by VerifyTlogProof. InvalidArgument naming the line.
absl::StatusOr<TlogProof> ParseTlogProof(absl::string_view text);

// Checks a tlog-proof offline (tlog-proof.md "Verifying a tlog proof"):
// the checkpoint is signed by `verifier` (NoteVerifier::Open's errors), its
// origin is `origin` (Unauthenticated otherwise), and LeafHash(leaf) is
// included at p.index (VerifyInclusion's errors). Returns the checkpoint.
// The `extra` data is not looked at; it is not authenticated.
absl::StatusOr<Checkpoint> VerifyTlogProof(const TlogProof& p, absl::string_view leaf,
                                           const NoteVerifier& verifier, absl::string_view origin);

}  // namespace kbs::receipts

#endif  // KBS_KBS_RECEIPTS_NOTE_H_
