#include "kbs/receipts/note.h"

#include <openssl/err.h>
#include <openssl/evp.h>

#include <algorithm>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"

namespace kbs::receipts {
namespace {

// signed-note.md "Format": em dash (U+2014) and a space open a signature line.
constexpr absl::string_view kSignaturePrefix = "\xE2\x80\x94 ";
// signed-note.md "Signature types".
constexpr uint8_t kSigTypeEd25519 = 0x01;
constexpr size_t kEd25519PublicKeySize = 32;
constexpr size_t kEd25519SignatureSize = 64;
constexpr size_t kKeyIdSize = 4;
// tlog-proof.md "Format".
constexpr absl::string_view kTlogProofHeader = "c2sp.org/tlog-proof@v1";
constexpr absl::string_view kExtraPrefix = "extra ";
constexpr absl::string_view kIndexPrefix = "index ";
// A vkey is a name, 8 hex digits and base64 of 33 bytes, plus separators.
constexpr size_t kMaxVerifierKeyBytes = kMaxKeyNameBytes + 64;

// Decodes the UTF-8 sequence at text[*i], advancing *i past it. Returns -1 for
// anything but the shortest encoding of a scalar value (no overlongs, no
// surrogates, nothing above U+10FFFF, no truncated sequence).
int32_t NextCodePoint(absl::string_view text, size_t* i) {
  const auto byte = [&](size_t k) { return static_cast<uint8_t>(text[k]); };
  uint8_t b0 = byte(*i);
  if (b0 < 0x80) {
    ++*i;
    return b0;
  }
  size_t len;
  int32_t cp;
  int32_t min;
  if (b0 >= 0xC2 && b0 <= 0xDF) {
    len = 2, cp = b0 & 0x1F, min = 0x80;
  } else if (b0 >= 0xE0 && b0 <= 0xEF) {
    len = 3, cp = b0 & 0x0F, min = 0x800;
  } else if (b0 >= 0xF0 && b0 <= 0xF4) {
    len = 4, cp = b0 & 0x07, min = 0x10000;
  } else {
    return -1;
  }
  if (text.size() - *i < len) return -1;
  for (size_t k = 1; k < len; ++k) {
    uint8_t b = byte(*i + k);
    if ((b & 0xC0) != 0x80) return -1;
    cp = (cp << 6) | (b & 0x3F);
  }
  if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return -1;
  *i += len;
  return cp;
}

// What Go's unicode.IsSpace calls a space: the ASCII whitespace, NEL, NBSP
// and the Unicode Z category. signed-note.md forbids them in key names.
bool IsUnicodeSpace(int32_t cp) {
  return (cp >= 0x09 && cp <= 0x0D) || cp == 0x20 || cp == 0x85 || cp == 0xA0 || cp == 0x1680 ||
         (cp >= 0x2000 && cp <= 0x200A) || cp == 0x2028 || cp == 0x2029 || cp == 0x202F ||
         cp == 0x205F || cp == 0x3000;
}

// signed-note.md: valid UTF-8 and no ASCII control characters but newline.
absl::Status CheckNoteText(absl::string_view text, absl::string_view what) {
  for (size_t i = 0; i < text.size();) {
    size_t at = i;
    int32_t cp = NextCodePoint(text, &i);
    if (cp < 0) {
      return absl::InvalidArgumentError(absl::StrCat(what, ": invalid UTF-8 at byte ", at));
    }
    if (cp < 0x20 && cp != '\n') {
      return absl::InvalidArgumentError(
          absl::StrFormat("%s: control character 0x%02x at byte %d", what, cp, at));
    }
  }
  return absl::OkStatus();
}

// signed-note.md: key names are non-empty, without Unicode spaces or '+'.
absl::Status CheckKeyName(absl::string_view name) {
  if (name.empty()) return absl::InvalidArgumentError("key name is empty");
  if (name.size() > kMaxKeyNameBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("key name is ", name.size(), " bytes, more than ", kMaxKeyNameBytes));
  }
  for (size_t i = 0; i < name.size();) {
    size_t at = i;
    int32_t cp = NextCodePoint(name, &i);
    if (cp < 0) {
      return absl::InvalidArgumentError(absl::StrCat("key name: invalid UTF-8 at byte ", at));
    }
    if (cp < 0x20 || IsUnicodeSpace(cp)) {
      return absl::InvalidArgumentError(
          absl::StrCat("key name must not contain spaces or control characters (byte ", at, ")"));
    }
    if (cp == '+') return absl::InvalidArgumentError("key name must not contain '+'");
  }
  return absl::OkStatus();
}

// signed-note.md "Ed25519 signatures":
// key ID = SHA-256(key name || 0x0A || 0x01 || 32-byte public key)[:4].
uint32_t Ed25519KeyId(absl::string_view name, absl::string_view public_key) {
  std::string digest = common::Sha256(absl::StrCat(
      name, "\n", absl::string_view(reinterpret_cast<const char*>(&kSigTypeEd25519), 1),
      public_key));
  uint32_t id = 0;
  for (size_t i = 0; i < kKeyIdSize; ++i) id = (id << 8) | static_cast<uint8_t>(digest[i]);
  return id;
}

std::string KeyIdBytes(uint32_t id) {
  std::string out(kKeyIdSize, '\0');
  for (size_t i = 0; i < kKeyIdSize; ++i) {
    out[i] = static_cast<char>(id >> (8 * (kKeyIdSize - 1 - i)));
  }
  return out;
}

std::string KeyLabel(absl::string_view name, uint32_t id) {
  return absl::StrFormat("%s+%08x", name, id);
}

absl::StatusOr<std::string> Ed25519Sign(EVP_PKEY* key, absl::string_view message) {
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  std::string sig(kEd25519SignatureSize, '\0');
  size_t len = sig.size();
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, nullptr, nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len,
                     reinterpret_cast<const unsigned char*>(message.data()), message.size()) != 1 ||
      len != kEd25519SignatureSize) {
    return common::OpenSslError("Ed25519 note signing failed");
  }
  return sig;
}

bool Ed25519Verify(EVP_PKEY* key, absl::string_view message, absl::string_view sig) {
  if (sig.size() != kEd25519SignatureSize) return false;
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  bool ok =
      ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, nullptr, nullptr, key) == 1 &&
      EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(sig.data()), sig.size(),
                       reinterpret_cast<const unsigned char*>(message.data()), message.size()) == 1;
  ERR_clear_error();
  return ok;
}

// Strict ASCII decimal (no sign, no leading zeros but "0"), fitting uint64_t.
absl::StatusOr<uint64_t> ParseDecimal(absl::string_view s, absl::string_view what) {
  if (s.empty()) return absl::InvalidArgumentError(absl::StrCat(what, " is empty"));
  if (s.size() > 1 && s[0] == '0') {
    return absl::InvalidArgumentError(absl::StrCat(what, " has a leading zero"));
  }
  uint64_t value = 0;
  for (char c : s) {
    if (c < '0' || c > '9') {
      return absl::InvalidArgumentError(absl::StrCat(what, " is not a decimal number"));
    }
    uint64_t digit = static_cast<uint64_t>(c - '0');
    if (value > (UINT64_MAX - digit) / 10) {
      return absl::InvalidArgumentError(absl::StrCat(what, " is too large"));
    }
    value = value * 10 + digit;
  }
  return value;
}

absl::StatusOr<Hash> DecodeHash(absl::string_view b64, absl::string_view what) {
  absl::StatusOr<std::string> raw = common::Base64Decode(b64);
  if (!raw.ok() || raw->size() != Hash().size()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " is not the canonical base64 of a 32-byte hash"));
  }
  Hash h;
  std::copy(raw->begin(), raw->end(), h.begin());
  return h;
}

std::string EncodeHash(const Hash& h) { return common::Base64Encode(absl::MakeConstSpan(h)); }

// Reads "\n"-terminated lines off the front of a text.
class LineReader final {
 public:
  explicit LineReader(absl::string_view text) : rest_(text) {}
  bool done() const { return rest_.empty(); }
  int line_number() const { return line_; }  // of the line last read
  absl::string_view rest() const { return rest_; }

  // The next line without its "\n"; InvalidArgument when no "\n" ends it.
  absl::StatusOr<absl::string_view> Next(absl::string_view what) {
    size_t nl = rest_.find('\n');
    if (nl == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat(what, ": line ", line_ + 1, " is missing or has no final newline"));
    }
    absl::string_view line = rest_.substr(0, nl);
    rest_.remove_prefix(nl + 1);
    ++line_;
    return line;
  }

 private:
  absl::string_view rest_;
  int line_ = 0;
};

}  // namespace

std::string CheckpointBody(const Checkpoint& c) {
  std::string out = absl::StrCat(c.origin, "\n", c.size, "\n", EncodeHash(c.root), "\n");
  for (const std::string& ext : c.extensions) absl::StrAppend(&out, ext, "\n");
  return out;
}

absl::StatusOr<Checkpoint> ParseCheckpointBody(absl::string_view body) {
  constexpr absl::string_view kWhat = "checkpoint";
  if (body.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint is ", body.size(), " bytes, more than ", kMaxNoteBytes));
  }
  if (absl::Status s = CheckNoteText(body, kWhat); !s.ok()) return s;
  if (body.empty() || body.back() != '\n') {
    return absl::InvalidArgumentError("checkpoint does not end in a newline");
  }
  LineReader lines(body);
  Checkpoint c;
  absl::StatusOr<absl::string_view> origin = lines.Next(kWhat);
  if (!origin.ok()) return origin.status();
  if (origin->empty()) return absl::InvalidArgumentError("checkpoint origin (line 1) is empty");
  c.origin = std::string(*origin);

  absl::StatusOr<absl::string_view> size_line = lines.Next(kWhat);
  if (!size_line.ok()) return size_line.status();
  absl::StatusOr<uint64_t> size = ParseDecimal(*size_line, "checkpoint tree size (line 2)");
  if (!size.ok()) return size.status();
  if (*size > kMaxTreeSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("checkpoint tree size ", *size, " exceeds 2^63"));
  }
  c.size = *size;

  absl::StatusOr<absl::string_view> root_line = lines.Next(kWhat);
  if (!root_line.ok()) return root_line.status();
  absl::StatusOr<Hash> root = DecodeHash(*root_line, "checkpoint root hash (line 3)");
  if (!root.ok()) return root.status();
  c.root = *root;

  while (!lines.done()) {
    absl::StatusOr<absl::string_view> ext = lines.Next(kWhat);
    if (!ext.ok()) return ext.status();
    if (ext->empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint extension line ", lines.line_number(), " is empty"));
    }
    if (c.extensions.size() == kMaxCheckpointExtensions) {
      return absl::InvalidArgumentError(
          absl::StrCat("checkpoint has more than ", kMaxCheckpointExtensions, " extension lines"));
    }
    c.extensions.emplace_back(*ext);
  }
  return c;
}

absl::StatusOr<std::unique_ptr<NoteSigner>> NoteSigner::Create(std::string name,
                                                               common::EvpPkeyPtr private_key) {
  if (absl::Status s = CheckKeyName(name); !s.ok()) return s;
  if (private_key == nullptr || EVP_PKEY_get_base_id(private_key.get()) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError("note signing key must be an Ed25519 private key");
  }
  size_t private_len = 0;
  if (EVP_PKEY_get_raw_private_key(private_key.get(), nullptr, &private_len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("note signing key has no private part");
  }
  absl::StatusOr<std::string> public_key = common::GetEd25519PublicKey(private_key.get());
  if (!public_key.ok()) return public_key.status();
  uint32_t id = Ed25519KeyId(name, *public_key);
  std::string vkey = absl::StrCat(
      KeyLabel(name, id), "+",
      common::Base64Encode(absl::StrCat(
          absl::string_view(reinterpret_cast<const char*>(&kSigTypeEd25519), 1), *public_key)));
  return std::unique_ptr<NoteSigner>(
      new NoteSigner(std::move(name), std::move(private_key), id, std::move(vkey)));
}

absl::StatusOr<std::string> NoteSigner::Sign(absl::string_view body) const {
  if (body.empty() || body.back() != '\n') {
    return absl::InvalidArgumentError("note text must be non-empty and end in a newline");
  }
  // The signature line: prefix, name, space, base64 of 68 bytes, newline.
  const size_t line_size = kSignaturePrefix.size() + name_.size() + 1 +
                           4 * ((kKeyIdSize + kEd25519SignatureSize + 2) / 3) + 1;
  if (body.size() + 1 + line_size > kMaxNoteBytes) {
    return absl::InvalidArgumentError(absl::StrCat(
        "note text of ", body.size(), " bytes would make a note over ", kMaxNoteBytes, " bytes"));
  }
  if (absl::Status s = CheckNoteText(body, "note text"); !s.ok()) return s;
  absl::StatusOr<std::string> sig = Ed25519Sign(key_.get(), body);
  if (!sig.ok()) return sig.status();
  return absl::StrCat(body, "\n", kSignaturePrefix, name_, " ",
                      common::Base64Encode(absl::StrCat(KeyIdBytes(key_id_), *sig)), "\n");
}

absl::StatusOr<NoteVerifier> NoteVerifier::FromVerifierKey(absl::string_view vkey) {
  if (vkey.size() > kMaxVerifierKeyBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("verifier key is ", vkey.size(), " bytes, more than ", kMaxVerifierKeyBytes));
  }
  // <name>+<hex key ID>+<base64>; the base64 may itself contain '+'.
  size_t plus1 = vkey.find('+');
  size_t plus2 = plus1 == absl::string_view::npos ? plus1 : vkey.find('+', plus1 + 1);
  if (plus2 == absl::string_view::npos) {
    return absl::InvalidArgumentError(
        "verifier key is not of the form <name>+<hex key ID>+<base64 key>");
  }
  absl::string_view name = vkey.substr(0, plus1);
  absl::string_view id_hex = vkey.substr(plus1 + 1, plus2 - plus1 - 1);
  absl::string_view key_b64 = vkey.substr(plus2 + 1);
  if (absl::Status s = CheckKeyName(name); !s.ok()) {
    return absl::InvalidArgumentError(absl::StrCat("verifier key: ", s.message()));
  }
  absl::StatusOr<std::string> id_bytes = common::HexDecode(id_hex);
  if (id_hex.size() != 2 * kKeyIdSize || !id_bytes.ok() || common::HexEncode(*id_bytes) != id_hex) {
    return absl::InvalidArgumentError("verifier key: key ID is not 8 lowercase hex digits");
  }
  absl::StatusOr<std::string> key = common::Base64Decode(key_b64);
  if (!key.ok()) {
    return absl::InvalidArgumentError("verifier key: key is not canonical standard base64");
  }
  if (key->empty() || static_cast<uint8_t>((*key)[0]) != kSigTypeEd25519) {
    return absl::InvalidArgumentError(
        "verifier key: unsupported signature type (only 0x01, Ed25519, is accepted)");
  }
  if (key->size() != 1 + kEd25519PublicKeySize) {
    return absl::InvalidArgumentError(
        absl::StrCat("verifier key: Ed25519 key is ", key->size() - 1, " bytes, not 32"));
  }
  absl::string_view public_key = absl::string_view(*key).substr(1);
  uint32_t id = Ed25519KeyId(name, public_key);
  if (KeyIdBytes(id) != *id_bytes) {
    return absl::InvalidArgumentError(absl::StrFormat(
        "verifier key: key ID %s does not match the name and key (expected %08x)", id_hex, id));
  }
  EVP_PKEY* raw = EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(public_key.data()),
      public_key.size());
  if (raw == nullptr) {
    return common::OpenSslError("verifier key: Ed25519 key rejected",
                                absl::StatusCode::kInvalidArgument);
  }
  return NoteVerifier(std::string(name), id, common::EvpPkeyPtr(raw));
}

NoteVerifier::NoteVerifier(const NoteVerifier& other) : name_(other.name_), key_id_(other.key_id_) {
  if (other.key_ != nullptr) key_ = common::ShareKey(other.key_.get());
}

NoteVerifier& NoteVerifier::operator=(const NoteVerifier& other) {
  if (this != &other) *this = NoteVerifier(other);
  return *this;
}

absl::StatusOr<std::string> NoteVerifier::Open(absl::string_view note) const {
  if (key_ == nullptr) return absl::FailedPreconditionError("note verifier has no key");
  if (note.size() > kMaxNoteBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("note is ", note.size(), " bytes, more than ", kMaxNoteBytes));
  }
  if (absl::Status s = CheckNoteText(note, "note"); !s.ok()) return s;
  if (note.empty() || note.back() != '\n') {
    return absl::InvalidArgumentError("note does not end in a newline");
  }
  // signed-note.md: the text is separated from the signatures by the last
  // empty line; the text keeps its final newline.
  size_t blank = note.rfind("\n\n");
  if (blank == absl::string_view::npos) {
    return absl::InvalidArgumentError("note has no blank line before its signatures");
  }
  absl::string_view body = note.substr(0, blank + 1);
  absl::string_view signatures = note.substr(blank + 2);
  if (signatures.empty()) return absl::InvalidArgumentError("note has no signature lines");

  // Parse every line before verifying anything, so a malformed note is
  // rejected as such whatever its signatures.
  std::vector<std::string> ours;
  LineReader lines(signatures);
  size_t count = 0;
  while (!lines.done()) {
    absl::StatusOr<absl::string_view> line = lines.Next("note signatures");
    if (!line.ok()) return line.status();
    if (++count > kMaxNoteSignatures) {
      return absl::InvalidArgumentError(
          absl::StrCat("note has more than ", kMaxNoteSignatures, " signature lines"));
    }
    if (!absl::ConsumePrefix(&*line, kSignaturePrefix)) {
      return absl::InvalidArgumentError(absl::StrCat("note signature line ", lines.line_number(),
                                                     " does not start with an em dash and space"));
    }
    size_t space = line->find(' ');
    if (space == absl::string_view::npos) {
      return absl::InvalidArgumentError(absl::StrCat("note signature line ", lines.line_number(),
                                                     " has no space between name and signature"));
    }
    absl::string_view name = line->substr(0, space);
    if (absl::Status s = CheckKeyName(name); !s.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("note signature line ", lines.line_number(), ": ", s.message()));
    }
    absl::StatusOr<std::string> sig = common::Base64Decode(line->substr(space + 1));
    if (!sig.ok() || sig->size() <= kKeyIdSize) {
      return absl::InvalidArgumentError(
          absl::StrCat("note signature line ", lines.line_number(),
                       ": signature is not canonical base64 of a key ID and signature"));
    }
    if (name == name_ && absl::string_view(*sig).substr(0, kKeyIdSize) == KeyIdBytes(key_id_)) {
      ours.push_back(sig->substr(kKeyIdSize));
    }
  }
  if (ours.empty()) {
    return absl::UnauthenticatedError(
        absl::StrCat("note has no signature by key ", KeyLabel(name_, key_id_)));
  }
  // A known key's signature that fails rejects the whole note.
  for (const std::string& sig : ours) {
    if (!Ed25519Verify(key_.get(), body, sig)) {
      return absl::UnauthenticatedError(
          absl::StrCat("note signature by key ", KeyLabel(name_, key_id_), " is invalid"));
    }
  }
  return std::string(body);
}

std::string EncodeTlogProof(const TlogProof& p) {
  std::string out = absl::StrCat(kTlogProofHeader, "\n");
  if (!p.extra.empty()) absl::StrAppend(&out, kExtraPrefix, common::Base64Encode(p.extra), "\n");
  absl::StrAppend(&out, kIndexPrefix, p.index, "\n");
  for (const Hash& h : p.path) absl::StrAppend(&out, EncodeHash(h), "\n");
  absl::StrAppend(&out, "\n", p.checkpoint_note);
  return out;
}

absl::StatusOr<TlogProof> ParseTlogProof(absl::string_view text) {
  constexpr absl::string_view kWhat = "tlog-proof";
  if (text.size() > kMaxTlogProofBytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("tlog-proof is ", text.size(), " bytes, more than ", kMaxTlogProofBytes));
  }
  LineReader lines(text);
  TlogProof p;
  absl::StatusOr<absl::string_view> line = lines.Next(kWhat);
  if (!line.ok()) return line.status();
  if (*line != kTlogProofHeader) {
    return absl::InvalidArgumentError(
        absl::StrCat("tlog-proof line 1 is not \"", kTlogProofHeader, "\""));
  }
  line = lines.Next(kWhat);
  if (!line.ok()) return line.status();
  if (absl::ConsumePrefix(&*line, kExtraPrefix)) {
    if (line->size() > 4 * ((kMaxTlogProofExtraBytes + 2) / 3)) {
      return absl::InvalidArgumentError(
          absl::StrCat("tlog-proof extra data is over ", kMaxTlogProofExtraBytes, " bytes"));
    }
    absl::StatusOr<std::string> extra = common::Base64Decode(*line);
    if (!extra.ok() || extra->empty()) {
      return absl::InvalidArgumentError(
          "tlog-proof extra data (line 2) is not non-empty canonical base64");
    }
    if (extra->size() > kMaxTlogProofExtraBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("tlog-proof extra data is over ", kMaxTlogProofExtraBytes, " bytes"));
    }
    p.extra = *std::move(extra);
    line = lines.Next(kWhat);
    if (!line.ok()) return line.status();
  }
  if (!absl::ConsumePrefix(&*line, kIndexPrefix)) {
    return absl::InvalidArgumentError(
        absl::StrCat("tlog-proof line ", lines.line_number(), " is not \"index <n>\""));
  }
  absl::StatusOr<uint64_t> index = ParseDecimal(*line, "tlog-proof index");
  if (!index.ok()) return index.status();
  if (*index >= kMaxTreeSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("tlog-proof index ", *index, " is not below 2^63"));
  }
  p.index = *index;
  while (true) {
    line = lines.Next(kWhat);
    if (!line.ok()) {
      return absl::InvalidArgumentError(
          "tlog-proof ends before the blank line that precedes its checkpoint");
    }
    if (line->empty()) break;
    if (p.path.size() == kMaxTlogProofHashes) {
      return absl::InvalidArgumentError(
          absl::StrCat("tlog-proof has more than ", kMaxTlogProofHashes, " proof hashes"));
    }
    absl::StatusOr<Hash> h =
        DecodeHash(*line, absl::StrCat("tlog-proof line ", lines.line_number()));
    if (!h.ok()) return h.status();
    p.path.push_back(*h);
  }
  if (lines.rest().empty()) return absl::InvalidArgumentError("tlog-proof has no checkpoint");
  p.checkpoint_note = std::string(lines.rest());
  return p;
}

absl::StatusOr<Checkpoint> VerifyTlogProof(const TlogProof& p, absl::string_view leaf,
                                           const NoteVerifier& verifier, absl::string_view origin) {
  absl::StatusOr<std::string> body = verifier.Open(p.checkpoint_note);
  if (!body.ok()) {
    return absl::Status(body.status().code(),
                        absl::StrCat("tlog-proof checkpoint: ", body.status().message()));
  }
  absl::StatusOr<Checkpoint> checkpoint = ParseCheckpointBody(*body);
  if (!checkpoint.ok()) return checkpoint.status();
  if (checkpoint->origin != origin) {
    return absl::UnauthenticatedError(absl::StrCat("tlog-proof checkpoint is for origin \"",
                                                   checkpoint->origin, "\", not \"", origin, "\""));
  }
  absl::Status included =
      VerifyInclusion(LeafHash(leaf), p.index, checkpoint->size, p.path, checkpoint->root);
  if (!included.ok()) {
    return absl::Status(included.code(), absl::StrCat("tlog-proof: ", included.message()));
  }
  return checkpoint;
}

}  // namespace kbs::receipts
