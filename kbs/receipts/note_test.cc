#include "kbs/receipts/note.h"

#include <openssl/evp.h>

#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_replace.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::receipts {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::StartsWith;

constexpr absl::StatusCode kInvalid = absl::StatusCode::kInvalidArgument;
constexpr absl::StatusCode kUnauthenticated = absl::StatusCode::kUnauthenticated;

common::EvpPkeyPtr Ed25519FromSeed(absl::string_view seed) {
  EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(seed.data()), seed.size());
  EXPECT_NE(key, nullptr);
  return common::EvpPkeyPtr(key);
}

std::unique_ptr<NoteSigner> NewSigner(std::string name) {
  absl::StatusOr<std::unique_ptr<NoteSigner>> signer =
      NoteSigner::Create(std::move(name), *common::GenerateEd25519Key());
  EXPECT_TRUE(signer.ok()) << signer.status();
  return *std::move(signer);
}

NoteVerifier VerifierFor(const NoteSigner& signer) {
  absl::StatusOr<NoteVerifier> v = NoteVerifier::FromVerifierKey(signer.verifier_key());
  EXPECT_TRUE(v.ok()) << v.status();
  return *std::move(v);
}

// ---------------------------------------------------------------------------
// Known answers from golang.org/x/mod/sumdb/note, note_test.go (TestSign,
// TestOpen, TestNewVerifier): a signer key whose base64 part is
// 0x01 || Ed25519 seed, its verifier key, and the exact signed note it makes
// (Ed25519 is deterministic).

constexpr absl::string_view kPeterSignerKeyB64 = "AYEKFALVFGyNhPJEMzD1QIDr+Y7hfZx09iUvxdXHKDFz";
constexpr absl::string_view kPeterVkey =
    "PeterNeumann+c74f20a3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW";
constexpr absl::string_view kEnochVkey =
    "EnochRoot+af0cfe78+ATtqJ7zOtqQtYqOo0CpvDXNlMhV3HeJDpjrASKGLWdop";
constexpr absl::string_view kGoText =
    "If you think cryptography is the answer to your problem,\n"
    "then you don't know what your problem is.\n";
constexpr absl::string_view kPeterSig =
    "\xE2\x80\x94 PeterNeumann "
    "x08go/ZJkuBS9UG/"
    "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM=\n";
constexpr absl::string_view kEnochSig =
    "\xE2\x80\x94 EnochRoot "
    "rwz+eBzmZa0SO3NbfRGzPCpDckykFXSdeX+MNtCOXm2/"
    "5n2tiOHp+vAF1aGrQ5ovTG01oOTGwnWLox33WWd1RvMc+QQ=\n";

std::unique_ptr<NoteSigner> PeterSigner() {
  std::string raw = *common::Base64Decode(kPeterSignerKeyB64);
  EXPECT_EQ(raw.size(), 33u);
  EXPECT_EQ(raw[0], '\x01');
  absl::StatusOr<std::unique_ptr<NoteSigner>> signer =
      NoteSigner::Create("PeterNeumann", Ed25519FromSeed(raw.substr(1)));
  EXPECT_TRUE(signer.ok()) << signer.status();
  return *std::move(signer);
}

TEST(SignedNoteKnownAnswerTest, GoSumdbNoteSignerAndVerifierKey) {
  std::unique_ptr<NoteSigner> signer = PeterSigner();
  EXPECT_EQ(signer->verifier_key(), kPeterVkey);
  EXPECT_EQ(signer->key_id(), 0xc74f20a3u);
  EXPECT_EQ(signer->name(), "PeterNeumann");
  absl::StatusOr<std::string> note = signer->Sign(kGoText);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_EQ(*note, absl::StrCat(kGoText, "\n", kPeterSig));
}

TEST(SignedNoteKnownAnswerTest, GoSumdbNoteOpen) {
  NoteVerifier peter = *NoteVerifier::FromVerifierKey(kPeterVkey);
  NoteVerifier enoch = *NoteVerifier::FromVerifierKey(kEnochVkey);
  EXPECT_EQ(peter.name(), "PeterNeumann");
  EXPECT_EQ(peter.key_id(), 0xc74f20a3u);
  const std::string both = absl::StrCat(kGoText, "\n", kPeterSig, kEnochSig);
  EXPECT_EQ(*peter.Open(both), kGoText);
  EXPECT_EQ(*enoch.Open(both), kGoText);

  // Go's malformed notes.
  const std::vector<std::string> bad = {
      std::string(kGoText),
      absl::StrCat(kGoText, "\n"),
      absl::StrCat(kGoText, "\n", kPeterSig.substr(0, kPeterSig.size() - 1)),
      absl::StrCat("\x01", kGoText, "\n", kPeterSig),
      absl::StrCat("\xff", kGoText, "\n", kPeterSig),
      absl::StrCat(kGoText, "\n",
                   "\xE2\x80\x94 Bad Name "
                   "x08go/ZJkuBS9UG/"
                   "SffcvIAQxVBtiFupLLr8pAcElZInNIuGUgYN1FFYC2pZSNXgKvqfqdngotpRZb6KE6RyyBwJnAM="),
      absl::StrCat(kGoText, "\n", kPeterSig, "Unexpected line.\n"),
  };
  for (const std::string& note : bad) {
    EXPECT_EQ(peter.Open(note).status().code(), kInvalid) << note;
  }
  // Too many signature lines.
  std::string many = absl::StrCat(kGoText, "\n");
  for (int i = 0; i < 101; ++i) absl::StrAppend(&many, kPeterSig);
  EXPECT_EQ(peter.Open(many).status().code(), kInvalid);
  // 16 signatures must be accepted (signed-note.md).
  std::string sixteen = absl::StrCat(kGoText, "\n");
  for (int i = 0; i < 16; ++i) absl::StrAppend(&sixteen, i % 2 ? kPeterSig : kEnochSig);
  EXPECT_TRUE(peter.Open(sixteen).ok());

  // A signature of our key that does not verify rejects the note.
  std::string corrupted =
      absl::StrCat(kGoText, "\n", kPeterSig.substr(0, 60), "ABCD", kPeterSig.substr(60), kEnochSig);
  absl::StatusOr<std::string> opened = peter.Open(corrupted);
  EXPECT_EQ(opened.status().code(), kUnauthenticated);
  EXPECT_THAT(opened.status().message(), HasSubstr("PeterNeumann+c74f20a3"));
  EXPECT_TRUE(enoch.Open(corrupted).ok());  // not Enoch's business

  // Another name, or another key ID: not our signature.
  std::string misnamed = absl::StrReplaceAll(kPeterSig, {{"PeterNeumann", "CarmenSandiego"}});
  EXPECT_EQ(peter.Open(absl::StrCat(kGoText, "\n", misnamed)).status().code(), kUnauthenticated);
  std::string wrong_id = absl::StrReplaceAll(kPeterSig, {{"x08g", "xxxx"}});
  EXPECT_EQ(peter.Open(absl::StrCat(kGoText, "\n", wrong_id)).status().code(), kUnauthenticated);
  EXPECT_EQ(peter.Open(absl::StrCat(kGoText, "\n", kEnochSig)).status().code(), kUnauthenticated);
}

TEST(SignedNoteKnownAnswerTest, C2spSignedNoteExample) {
  // c2sp.org/signed-note, "Verifier keys" / "Example".
  absl::StatusOr<NoteVerifier> v = NoteVerifier::FromVerifierKey(
      "example.com/foo+530d903a+AekyeRrm56hApGFkyQR4ZCbV54Id2LKaANYcrnKv3U2k");
  ASSERT_TRUE(v.ok()) << v.status();
  absl::StatusOr<std::string> body = v->Open(
      "This is an example message.\n"
      "\n"
      "\xE2\x80\x94 example.com/foo "
      "Uw2QOkn8srV1yJGh2VYRlL1Tnagv1YEq6TfXppzi2ONncAlTgK7Ztg1ERYNZXsYjOBH3mFXmRKuwHjG1Yu72IneyaQM="
      "\n");
  ASSERT_TRUE(body.ok()) << body.status();
  EXPECT_EQ(*body, "This is an example message.\n");
}

TEST(VerifierKeyTest, GoManglingsAreRejected) {
  // TestNewVerifier: every proper substring and every single-byte increment
  // of a valid vkey fails, as do a wrong-length key and an unknown algorithm
  // (each with a key ID adjusted to match).
  std::string vkey(kPeterVkey);
  for (size_t i = 0; i <= vkey.size(); ++i) {
    for (size_t j = i + 1; j <= vkey.size(); ++j) {
      if (i == 0 && j == vkey.size()) continue;
      EXPECT_FALSE(NoteVerifier::FromVerifierKey(vkey.substr(i, j - i)).ok())
          << vkey.substr(i, j - i);
    }
  }
  for (size_t i = 0; i < vkey.size(); ++i) {
    std::string bad = vkey;
    ++bad[i];
    EXPECT_FALSE(NoteVerifier::FromVerifierKey(bad).ok()) << bad;
  }
  EXPECT_EQ(NoteVerifier::FromVerifierKey(
                "PeterNeumann+cc469956+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TWBADKEY==")
                .status()
                .code(),
            kInvalid);
  EXPECT_EQ(NoteVerifier::FromVerifierKey(
                "PeterNeumann+173116ae+ZRpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .status()
                .code(),
            kInvalid);
  // Upper-case hex is not the canonical spelling.
  EXPECT_EQ(NoteVerifier::FromVerifierKey(
                "PeterNeumann+C74F20A3+ARpc2QcUPDhMQegwxbzhKqiBfsVkmqq/LDE4izWy10TW")
                .status()
                .code(),
            kInvalid);
  EXPECT_EQ(NoteVerifier::FromVerifierKey(std::string(4096, 'a')).status().code(), kInvalid);
}

TEST(VerifierKeyTest, FormatAndKeyIdFollowTheSpec) {
  auto key = common::GenerateEd25519Key();
  ASSERT_TRUE(key.ok());
  std::string pub = *common::GetEd25519PublicKey(key->get());
  auto signer = NoteSigner::Create("log.example/receipts", std::move(*key));
  ASSERT_TRUE(signer.ok()) << signer.status();
  // key ID = SHA-256(name || 0x0A || 0x01 || public key)[:4], big-endian.
  std::string digest = common::Sha256(absl::StrCat("log.example/receipts\n\x01", pub));
  std::string id_hex = common::HexEncode(digest.substr(0, 4));
  EXPECT_EQ((*signer)->verifier_key(),
            absl::StrCat("log.example/receipts+", id_hex, "+",
                         common::Base64Encode(absl::StrCat("\x01", pub))));
  EXPECT_EQ(absl::StrFormat("%08x", (*signer)->key_id()), id_hex);
  NoteVerifier v = VerifierFor(**signer);
  EXPECT_EQ(v.name(), "log.example/receipts");
  EXPECT_EQ(v.key_id(), (*signer)->key_id());
}

// ---------------------------------------------------------------------------
// Round trips and rejections with fresh keys.

TEST(SignedNoteTest, RoundTripAndCopies) {
  auto signer = NewSigner("log.example/a");
  NoteVerifier v = VerifierFor(*signer);
  const std::string body = "line one\n\nline three, after an empty line\n";
  absl::StatusOr<std::string> note = signer->Sign(body);
  ASSERT_TRUE(note.ok()) << note.status();
  EXPECT_THAT(*note, StartsWith(body + "\n\xE2\x80\x94 log.example/a "));
  EXPECT_EQ(*v.Open(*note), body);
  NoteVerifier copy = v;
  NoteVerifier assigned = VerifierFor(*NewSigner("other"));
  assigned = copy;
  EXPECT_EQ(*copy.Open(*note), body);
  EXPECT_EQ(*assigned.Open(*note), body);
  // A body of just a newline is a text ending in newline.
  EXPECT_EQ(*v.Open(*signer->Sign("\n")), "\n");
  // Cosignatures by others are ignored.
  std::string witness_line = NewSigner("witness.example")->Sign(body)->substr(body.size() + 1);
  EXPECT_EQ(*v.Open(absl::StrCat(*note, witness_line)), body);
  EXPECT_EQ(*v.Open(absl::StrCat(body, "\n", witness_line, note->substr(body.size() + 1))), body);
}

TEST(SignedNoteTest, Rejections) {
  auto signer = NewSigner("log.example/a");
  NoteVerifier v = VerifierFor(*signer);
  const std::string body = "log.example/a\n5\nAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA=\n";
  const std::string note = *signer->Sign(body);
  const std::string sig_line = note.substr(body.size() + 1);

  // Wrong key, same name (so a different key ID).
  NoteVerifier impostor = VerifierFor(*NewSigner("log.example/a"));
  EXPECT_EQ(impostor.Open(note).status().code(), kUnauthenticated);
  // Wrong key ID in the signature line.
  std::string raw = *common::Base64Decode(
      sig_line.substr(sig_line.rfind(' ') + 1, sig_line.size() - sig_line.rfind(' ') - 2));
  raw[3] ^= 1;
  EXPECT_EQ(
      v.Open(absl::StrCat(body, "\n\xE2\x80\x94 log.example/a ", common::Base64Encode(raw), "\n"))
          .status()
          .code(),
      kUnauthenticated);
  // Altered body.
  std::string altered = note;
  altered[body.find('5')] = '6';
  EXPECT_EQ(v.Open(altered).status().code(), kUnauthenticated);
  // Extra newline between body and signatures: a different text.
  EXPECT_EQ(v.Open(absl::StrCat(body, "\n\n", sig_line)).status().code(), kUnauthenticated);
  // Missing blank line, missing or extra final newline.
  EXPECT_EQ(v.Open(absl::StrCat(body, sig_line)).status().code(), kInvalid);
  EXPECT_EQ(v.Open(note.substr(0, note.size() - 1)).status().code(), kInvalid);
  EXPECT_EQ(v.Open(note + "\n").status().code(), kInvalid);
  // The signature line of another name.
  EXPECT_EQ(v.Open(absl::StrReplaceAll(
                       note, {{"\xE2\x80\x94 log.example/a ", "\xE2\x80\x94 log.example/b "}}))
                .status()
                .code(),
            kUnauthenticated);
  // Signature line syntax.
  for (absl::string_view line : {
           "- log.example/a AAAA\n",                       // hyphen, not em dash
           "\xE2\x80\x94log.example/a AAAAAAAA\n",         // no space after the dash
           "\xE2\x80\x94 log.example/a\n",                 // no signature
           "\xE2\x80\x94 log.example/a AAAA\n",            // 3 bytes: shorter than a key ID
           "\xE2\x80\x94 log.example/a AAAAAAB=\n",        // non-canonical base64
           "\xE2\x80\x94 log+example AAAAAAAA\n",          // '+' in the name
           "\xE2\x80\x94 log\xC2\xA0.example AAAAAAAA\n",  // NBSP in the name
           "\xE2\x80\x94  AAAAAAAA\n",                     // empty name
       }) {
    EXPECT_EQ(v.Open(absl::StrCat(note, line)).status().code(), kInvalid) << line;
  }
  // Control characters and invalid UTF-8 anywhere.
  EXPECT_EQ(v.Open(absl::StrCat("a\tb\n\n", sig_line)).status().code(), kInvalid);
  EXPECT_EQ(v.Open(absl::StrCat("a\rb\n\n", sig_line)).status().code(), kInvalid);
  EXPECT_EQ(v.Open(absl::StrCat("\xC0\xAF\n\n", sig_line)).status().code(), kInvalid);  // overlong
  EXPECT_EQ(v.Open(absl::StrCat("\xED\xA0\x80\n\n", sig_line)).status().code(),
            kInvalid);  // surrogate
  EXPECT_EQ(v.Open(absl::StrCat("\xE2\x80\n\n", sig_line)).status().code(), kInvalid);
  // Size bound.
  EXPECT_EQ(v.Open(std::string(kMaxNoteBytes + 1, 'a')).status().code(), kInvalid);
  EXPECT_EQ(v.Open("").status().code(), kInvalid);
}

TEST(SignedNoteTest, SignerRejectsBadNamesKeysAndBodies) {
  for (absl::string_view name : {"", "a+b", "a b", "a\tb", "a\xE3\x80\x80z", "a\x01", "\xff"}) {
    EXPECT_EQ(NoteSigner::Create(std::string(name), *common::GenerateEd25519Key()).status().code(),
              kInvalid)
        << name;
  }
  EXPECT_EQ(
      NoteSigner::Create(std::string(kMaxKeyNameBytes + 1, 'a'), *common::GenerateEd25519Key())
          .status()
          .code(),
      kInvalid);
  EXPECT_EQ(
      NoteSigner::Create("ok", *common::GenerateEcKey(common::EcCurve::kP256)).status().code(),
      kInvalid);
  EXPECT_EQ(NoteSigner::Create("ok", nullptr).status().code(), kInvalid);
  auto ed = *common::GenerateEd25519Key();
  std::string pub = *common::GetEd25519PublicKey(ed.get());
  common::EvpPkeyPtr public_only(EVP_PKEY_new_raw_public_key(
      EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(pub.data()), pub.size()));
  EXPECT_EQ(NoteSigner::Create("ok", std::move(public_only)).status().code(), kInvalid);

  auto signer = NewSigner("ok");
  for (absl::string_view body : {"", "no newline", "tab\there\n", "\xff\n"}) {
    EXPECT_EQ(signer->Sign(body).status().code(), kInvalid) << body;
  }
  EXPECT_EQ(signer->Sign(std::string(kMaxNoteBytes, '\n')).status().code(), kInvalid);
  EXPECT_TRUE(signer->Sign(std::string(kMaxNoteBytes - 200, '\n')).ok());
}

// ---------------------------------------------------------------------------
// Checkpoints.

Hash TestRoot(uint8_t seed) {
  Hash h;
  for (size_t i = 0; i < h.size(); ++i) h[i] = static_cast<uint8_t>(seed + i);
  return h;
}

TEST(CheckpointTest, BodyFormatAndRoundTrip) {
  Checkpoint c{"log.example/receipts", 42, TestRoot(7), {"ext one", "ext\xE2\x80\x94two"}};
  std::string body = CheckpointBody(c);
  EXPECT_EQ(body, absl::StrCat("log.example/receipts\n42\n",
                               common::Base64Encode(absl::MakeConstSpan(c.root)),
                               "\next one\next\xE2\x80\x94two\n"));
  absl::StatusOr<Checkpoint> parsed = ParseCheckpointBody(body);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->origin, c.origin);
  EXPECT_EQ(parsed->size, 42u);
  EXPECT_EQ(parsed->root, c.root);
  EXPECT_THAT(parsed->extensions, ElementsAre("ext one", "ext\xE2\x80\x94two"));

  // Signed and opened.
  auto signer = NewSigner("log.example/receipts");
  absl::StatusOr<std::string> opened = VerifierFor(*signer).Open(*signer->Sign(body));
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(ParseCheckpointBody(*opened)->extensions.size(), 2u);

  // The empty tree.
  Checkpoint empty{"o", 0, EmptyRoot(), {}};
  EXPECT_EQ(ParseCheckpointBody(CheckpointBody(empty))->size, 0u);
}

TEST(CheckpointTest, C2spExampleBodyParses) {
  // c2sp.org/tlog-checkpoint, the example's note text.
  absl::StatusOr<Checkpoint> c = ParseCheckpointBody(
      "example.com/behind-the-sofa\n20852163\nCsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=\n");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->origin, "example.com/behind-the-sofa");
  EXPECT_EQ(c->size, 20852163u);
  EXPECT_EQ(common::Base64Encode(absl::MakeConstSpan(c->root)),
            "CsUYapGGPo4dkMgIAUqom/Xajj7h2fB2MPA3j2jxq2I=");
  EXPECT_TRUE(c->extensions.empty());
}

TEST(CheckpointTest, StrictParsing) {
  const std::string root = common::Base64Encode(absl::MakeConstSpan(TestRoot(1)));
  const std::string root31 = common::Base64Encode(std::string(31, 'x'));
  std::vector<std::string> bad = {
      "",
      "o\n",
      "o\n5\n",
      absl::StrCat("o\n5\n", root),                           // no final newline
      absl::StrCat("\n5\n", root, "\n"),                      // empty origin
      absl::StrCat("o\n05\n", root, "\n"),                    // leading zero
      absl::StrCat("o\n+5\n", root, "\n"),                    // sign
      absl::StrCat("o\n-5\n", root, "\n"),                    // sign
      absl::StrCat("o\n 5\n", root, "\n"),                    // space
      absl::StrCat("o\n5 \n", root, "\n"),                    // space
      absl::StrCat("o\n\n", root, "\n"),                      // empty size
      absl::StrCat("o\n0x5\n", root, "\n"),                   // hex
      absl::StrCat("o\n18446744073709551616\n", root, "\n"),  // 2^64
      absl::StrCat("o\n9223372036854775809\n", root, "\n"),   // 2^63 + 1
      absl::StrCat("o\n5\n", root31, "\n"),                   // 31-byte root
      absl::StrCat("o\n5\n", root.substr(0, 43), "\n"),       // unpadded
      absl::StrCat("o\n5\n", root, "\n\n"),                   // empty extension line
      absl::StrCat("o\n5\n", root, "\next\n\n"),              // empty extension line
      absl::StrCat("o\n5\n", root, "\next"),                  // extension without newline
      absl::StrCat("o\tx\n5\n", root, "\n"),                  // control character
      absl::StrCat("o\n5\n", root, "\n\xff\n"),               // invalid UTF-8
      absl::StrCat("o\r\n5\n", root, "\n"),                   // CRLF
  };
  for (const std::string& body : bad) {
    absl::StatusOr<Checkpoint> c = ParseCheckpointBody(body);
    EXPECT_EQ(c.status().code(), kInvalid) << body;
  }
  EXPECT_EQ(ParseCheckpointBody(absl::StrCat("o\n9223372036854775808\n", root, "\n"))->size,
            kMaxTreeSize);
  std::string many = absl::StrCat("o\n5\n", root, "\n");
  for (size_t i = 0; i < kMaxCheckpointExtensions; ++i) absl::StrAppend(&many, "e\n");
  EXPECT_TRUE(ParseCheckpointBody(many).ok());
  absl::StrAppend(&many, "e\n");
  EXPECT_EQ(ParseCheckpointBody(many).status().code(), kInvalid);
}

// ---------------------------------------------------------------------------
// tlog-proof.

TEST(TlogProofTest, C2spExampleParsesAndReencodes) {
  // c2sp.org/tlog-proof, the example (its signatures are elided with "[...]",
  // so only the proof layer is checked here).
  const std::string example =
      "c2sp.org/tlog-proof@v1\n"
      "extra YWdlLXYxLjIuMS1kYXJ3aW4tYXJtNjQudGFyLmd6kYXJ3aW4tYXJ\n"
      "index 73894\n"
      "gSKyXoYZUgZ6jduWYrkDOARinOMGJveXjgMkBTcdPlQ=\n"
      "B95lDa8R83lS8n0eG+o0buTxRKQTYFi//1U8anccXmA=\n"
      "EKNzoDWG8LGC0Yp9o+sv3qllpMP9uHQ9B20KNL+Q1zs=\n"
      "RoopEkOdqkYqMB4MJXrbt/hMjOxsVn0IrWjpz1ZMMes=\n"
      "AHCioX9nLjsrse6YhjRRmk1WUEirVOLLRoOQ6vfO5vk=\n"
      "\n"
      "example.com/fancylog\n"
      "109482\n"
      "sFodV/vSp5O8n9a8QpW6PRY97tfOSW5bsc2Xl/EQi08=\n"
      "\n"
      "\xE2\x80\x94 example.com/fancylog hI2DJw[...]1roloI=\n"
      "\xE2\x80\x94 witness1.example mJirIklj[...]qY9v2B/5bg==\n";
  absl::StatusOr<TlogProof> p = ParseTlogProof(example);
  ASSERT_TRUE(p.ok()) << p.status();
  EXPECT_EQ(p->index, 73894u);
  EXPECT_EQ(p->path.size(), 5u);
  EXPECT_THAT(p->extra, StartsWith("age-v1.2.1-darwin-arm64.tar.gz"));
  EXPECT_THAT(p->checkpoint_note, StartsWith("example.com/fancylog\n109482\n"));
  EXPECT_EQ(EncodeTlogProof(*p), example);
}

class TlogProofFixture : public ::testing::Test {
 protected:
  static constexpr absl::string_view kOrigin = "kbs.example/receipts";

  void SetUp() override {
    signer_ = NewSigner(std::string(kOrigin));
    for (int i = 0; i < 13; ++i) tree_.Append(Leaf(i));
    Checkpoint c{std::string(kOrigin), tree_.size(), tree_.Root(), {}};
    checkpoint_note_ = *signer_->Sign(CheckpointBody(c));
  }
  static std::string Leaf(int i) { return absl::StrCat("{\"receipt\":", i, "}"); }
  TlogProof ProofFor(uint64_t index) {
    return TlogProof{index, *InclusionProof(tree_, index, tree_.size()), checkpoint_note_,
                     "app context"};
  }

  std::unique_ptr<NoteSigner> signer_;
  MemoryTree tree_;
  std::string checkpoint_note_;
};

TEST_F(TlogProofFixture, EncodeParseVerify) {
  NoteVerifier v = VerifierFor(*signer_);
  for (uint64_t i = 0; i < tree_.size(); ++i) {
    TlogProof p = ProofFor(i);
    if (i % 2) p.extra.clear();
    std::string text = EncodeTlogProof(p);
    absl::StatusOr<TlogProof> parsed = ParseTlogProof(text);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << text;
    EXPECT_EQ(parsed->index, p.index);
    EXPECT_EQ(parsed->path, p.path);
    EXPECT_EQ(parsed->checkpoint_note, p.checkpoint_note);
    EXPECT_EQ(parsed->extra, p.extra);
    absl::StatusOr<Checkpoint> c = VerifyTlogProof(*parsed, Leaf(i), v, kOrigin);
    ASSERT_TRUE(c.ok()) << c.status();
    EXPECT_EQ(c->size, 13u);
    EXPECT_EQ(c->root, tree_.Root());
  }
  // The exact text.
  TlogProof p = ProofFor(12);
  ASSERT_EQ(p.path.size(), 2u);
  EXPECT_EQ(
      EncodeTlogProof(p),
      absl::StrCat("c2sp.org/tlog-proof@v1\nextra ", common::Base64Encode("app context"),
                   "\nindex 12\n", common::Base64Encode(absl::MakeConstSpan(p.path[0])), "\n",
                   common::Base64Encode(absl::MakeConstSpan(p.path[1])), "\n\n", checkpoint_note_));
}

TEST_F(TlogProofFixture, TamperingIsDetected) {
  NoteVerifier v = VerifierFor(*signer_);
  const TlogProof good = ProofFor(5);
  ASSERT_TRUE(VerifyTlogProof(good, Leaf(5), v, kOrigin).ok());

  TlogProof p = good;
  p.index = 4;
  EXPECT_FALSE(VerifyTlogProof(p, Leaf(5), v, kOrigin).ok());
  p.index = 13;
  EXPECT_EQ(VerifyTlogProof(p, Leaf(5), v, kOrigin).status().code(), kInvalid);
  for (size_t j = 0; j < good.path.size(); ++j) {
    p = good;
    p.path[j][j] ^= 0x80;
    EXPECT_EQ(VerifyTlogProof(p, Leaf(5), v, kOrigin).status().code(), kUnauthenticated);
  }
  p = good;
  p.path.pop_back();
  EXPECT_FALSE(VerifyTlogProof(p, Leaf(5), v, kOrigin).ok());
  // Another leaf.
  EXPECT_EQ(VerifyTlogProof(good, Leaf(6), v, kOrigin).status().code(), kUnauthenticated);
  // The checkpoint's size or root changed after signing.
  p = good;
  p.checkpoint_note = absl::StrReplaceAll(p.checkpoint_note, {{"\n13\n", "\n14\n"}});
  ASSERT_NE(p.checkpoint_note, good.checkpoint_note);
  EXPECT_EQ(VerifyTlogProof(p, Leaf(5), v, kOrigin).status().code(), kUnauthenticated);
  // A checkpoint signed by another key, or for another origin.
  auto other = NewSigner(std::string(kOrigin));
  p = good;
  p.checkpoint_note = *other->Sign(CheckpointBody({std::string(kOrigin), 13, tree_.Root(), {}}));
  EXPECT_EQ(VerifyTlogProof(p, Leaf(5), v, kOrigin).status().code(), kUnauthenticated);
  p.checkpoint_note = *signer_->Sign(CheckpointBody({"elsewhere.example", 13, tree_.Root(), {}}));
  absl::StatusOr<Checkpoint> c = VerifyTlogProof(p, Leaf(5), v, kOrigin);
  EXPECT_EQ(c.status().code(), kUnauthenticated);
  EXPECT_THAT(c.status().message(), HasSubstr("origin"));
  // The text: a changed index line or proof line.
  std::string text = EncodeTlogProof(good);
  std::string moved = absl::StrReplaceAll(text, {{"index 5\n", "index 7\n"}});
  EXPECT_FALSE(VerifyTlogProof(*ParseTlogProof(moved), Leaf(5), v, kOrigin).ok());
}

TEST_F(TlogProofFixture, StrictParsing) {
  const std::string hash = common::Base64Encode(absl::MakeConstSpan(TestRoot(3)));
  const std::string tail = absl::StrCat("\n", checkpoint_note_);
  std::vector<std::string> bad = {
      "",
      "c2sp.org/tlog-proof@v1",
      "c2sp.org/tlog-proof@v2\nindex 0\n" + tail,
      "c2sp.org/tlog-proof@v1\r\nindex 0\n" + tail,
      "c2sp.org/tlog-proof@v1\nindex 0\n",    // no blank line
      "c2sp.org/tlog-proof@v1\nindex 0\n\n",  // no checkpoint
      "c2sp.org/tlog-proof@v1\n" + tail,      // no index
      "c2sp.org/tlog-proof@v1\nindex \n" + tail,
      "c2sp.org/tlog-proof@v1\nindex 01\n" + tail,
      "c2sp.org/tlog-proof@v1\nindex -1\n" + tail,
      "c2sp.org/tlog-proof@v1\nindex 9223372036854775808\n" + tail,
      "c2sp.org/tlog-proof@v1\nindex  1\n" + tail,
      "c2sp.org/tlog-proof@v1\nIndex 1\n" + tail,
      "c2sp.org/tlog-proof@v1\nextra \nindex 1\n" + tail,      // empty extra
      "c2sp.org/tlog-proof@v1\nextra !!!!\nindex 1\n" + tail,  // bad base64
      "c2sp.org/tlog-proof@v1\nextra YQ\nindex 1\n" + tail,    // unpadded
      "c2sp.org/tlog-proof@v1\nindex 1\nextra YQ==\n" + tail,  // extra after index
      "c2sp.org/tlog-proof@v1\nindex 1\n" + hash.substr(0, 40) + "\n" + tail,
      "c2sp.org/tlog-proof@v1\nindex 1\n" + common::Base64Encode(std::string(33, 'h')) + "\n" +
          tail,
      "c2sp.org/tlog-proof@v1\nindex 1\n" + hash + " \n" + tail,
  };
  std::string too_many = "c2sp.org/tlog-proof@v1\nindex 1\n";
  for (size_t i = 0; i <= kMaxTlogProofHashes; ++i) absl::StrAppend(&too_many, hash, "\n");
  bad.push_back(too_many + tail);
  bad.push_back(absl::StrCat("c2sp.org/tlog-proof@v1\nextra ",
                             common::Base64Encode(std::string(kMaxTlogProofExtraBytes + 1, 'x')),
                             "\nindex 1\n", tail));
  bad.push_back(
      absl::StrCat("c2sp.org/tlog-proof@v1\nindex 1\n\n", std::string(kMaxTlogProofBytes, 'a')));
  for (const std::string& text : bad) {
    EXPECT_EQ(ParseTlogProof(text).status().code(), kInvalid) << text;
  }
  // The limits themselves are fine.
  std::string max_hashes = "c2sp.org/tlog-proof@v1\nindex 1\n";
  for (size_t i = 0; i < kMaxTlogProofHashes; ++i) absl::StrAppend(&max_hashes, hash, "\n");
  EXPECT_EQ(ParseTlogProof(max_hashes + tail)->path.size(), kMaxTlogProofHashes);
  EXPECT_TRUE(
      ParseTlogProof(absl::StrCat("c2sp.org/tlog-proof@v1\nextra ",
                                  common::Base64Encode(std::string(kMaxTlogProofExtraBytes, 'x')),
                                  "\nindex 9223372036854775807\n", tail))
          .ok());
}

}  // namespace
}  // namespace kbs::receipts
