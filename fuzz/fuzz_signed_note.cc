// Fuzz target: signed-note opening with a fixed Ed25519 key (the seeds are
// notes signed by it) and checkpoint parsing. Invariants: an opened note's
// text is the input up to its blank line, and a checkpoint that parses
// re-encodes to exactly its text (one spelling per value).
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "kbs/receipts/note.h"

namespace {

// The key name and Ed25519 seed the corpus was signed with (test-only).
constexpr absl::string_view kName = "fuzz.example/log";
constexpr absl::string_view kSeed = "kbs-receipts-fuzz-signing-key-01";

const kbs::receipts::NoteVerifier& Verifier() {
  static const kbs::receipts::NoteVerifier* const kVerifier = [] {
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(kSeed.data()),
        kSeed.size());
    auto signer =
        kbs::receipts::NoteSigner::Create(std::string(kName), kbs::common::EvpPkeyPtr(key));
    if (!signer.ok()) std::abort();
    auto verifier = kbs::receipts::NoteVerifier::FromVerifierKey((*signer)->verifier_key());
    if (!verifier.ok()) std::abort();
    return new kbs::receipts::NoteVerifier(*std::move(verifier));
  }();
  return *kVerifier;
}

void CheckCheckpoint(absl::string_view body) {
  auto checkpoint = kbs::receipts::ParseCheckpointBody(body);
  if (checkpoint.ok() && kbs::receipts::CheckpointBody(*checkpoint) != body) std::abort();
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  CheckCheckpoint(text);
  auto body = Verifier().Open(text);
  if (body.ok()) {
    if (body->empty() || body->back() != '\n' || body->size() >= text.size() ||
        text.substr(0, body->size()) != *body || text[body->size()] != '\n') {
      std::abort();
    }
    CheckCheckpoint(*body);
  }
  return 0;
}
