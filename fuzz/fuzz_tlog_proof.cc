// Fuzz target: tlog-proof parsing and offline verification against a fixed
// log key (the seeds are proofs signed by it, with the leaf in `extra`).
// Invariants: what parses re-encodes to exactly the input, and a proof that
// verifies for one leaf does not verify for another.
#include <openssl/evp.h>

#include <cstdint>
#include <cstdlib>
#include <memory>
#include <string>

#include "kbs/receipts/note.h"

namespace {

constexpr absl::string_view kOrigin = "fuzz.example/log";
// The Ed25519 seed the corpus was signed with (test-only, public).
constexpr absl::string_view kSeed = "kbs-receipts-fuzz-signing-key-01";

const kbs::receipts::NoteVerifier& Verifier() {
  static const kbs::receipts::NoteVerifier* const kVerifier = [] {
    EVP_PKEY* key = EVP_PKEY_new_raw_private_key(
        EVP_PKEY_ED25519, nullptr, reinterpret_cast<const unsigned char*>(kSeed.data()),
        kSeed.size());
    auto signer =
        kbs::receipts::NoteSigner::Create(std::string(kOrigin), kbs::common::EvpPkeyPtr(key));
    if (!signer.ok()) std::abort();
    auto verifier = kbs::receipts::NoteVerifier::FromVerifierKey((*signer)->verifier_key());
    if (!verifier.ok()) std::abort();
    return new kbs::receipts::NoteVerifier(*std::move(verifier));
  }();
  return *kVerifier;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto proof = kbs::receipts::ParseTlogProof(text);
  if (!proof.ok()) return 0;
  if (kbs::receipts::EncodeTlogProof(*proof) != text) std::abort();
  auto checkpoint = kbs::receipts::VerifyTlogProof(*proof, proof->extra, Verifier(), kOrigin);
  if (checkpoint.ok()) {
    if (proof->index >= checkpoint->size || checkpoint->origin != kOrigin) std::abort();
    std::string other = proof->extra + "!";
    if (kbs::receipts::VerifyTlogProof(*proof, other, Verifier(), kOrigin).ok()) std::abort();
  }
  return 0;
}
