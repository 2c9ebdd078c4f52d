// ECDSA P-256/SHA-256 with the raw encodings DCAP uses: signatures as r || s
// and public keys as X || Y (32 big-endian bytes each).
#ifndef KBS_VERIFIER_DCAP_SIGNATURE_H_
#define KBS_VERIFIER_DCAP_SIGNATURE_H_

#include <openssl/evp.h>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/openssl_util.h"

namespace kbs::verifier::dcap {

// The P-256 public key X || Y (64 bytes). InvalidArgument when the point is
// not on the curve.
absl::StatusOr<common::EvpPkeyPtr> P256PublicKey(absl::string_view xy);

// True when `signature` (r || s, 64 bytes) verifies over SHA-256(`data`).
bool VerifyP256Signature(EVP_PKEY* key, absl::string_view data, absl::string_view signature);

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_SIGNATURE_H_
