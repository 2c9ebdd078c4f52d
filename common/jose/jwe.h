// JWE (RFC 7516) in the flattened JSON serialization the KBS protocol uses
// for resources (kbs-protocol.md §3.3): `enc` A256GCM, `alg` from the TEE
// key (RSA-OAEP-256, RSA1_5, ECDH-ES+A256KW on P-256/P-521 with the JWA
// Concat KDF and no apu/apv). The protected header is emitted as compact
// JSON with `alg`, `enc`, then `epk` (members sorted), which is byte-for-byte
// what the CoCo client rebuilds for its AAD.
#ifndef KBS_COMMON_JOSE_JWE_H_
#define KBS_COMMON_JOSE_JWE_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "common/bytes.h"
#include "common/jose/tee_key.h"
#include "common/json.h"

namespace kbs::jose {

// All members are base64url without padding, as on the wire.
struct FlattenedJwe {
  std::string protected_header;
  std::string encrypted_key;
  std::string iv;
  std::string ciphertext;
  std::string tag;

  // {"protected","encrypted_key","iv","ciphertext","tag"}; no `aad`.
  std::string ToJsonString() const;
  // InvalidArgument when a member is missing or not a string.
  static absl::StatusOr<FlattenedJwe> FromJson(const common::Json& json);
};

// Encrypts `plaintext` to the TEE key with a fresh CEK and IV.
absl::StatusOr<FlattenedJwe> JweEncrypt(const TeePublicKey& recipient,
                                        absl::Span<const uint8_t> plaintext);

// Decrypts with the recipient's private key (the guest side; used by the
// reference attester and tests). InvalidArgument for malformed input or a
// failed authentication.
absl::StatusOr<common::SecretBytes> JweDecrypt(const FlattenedJwe& jwe, EVP_PKEY* private_key);

}  // namespace kbs::jose

#endif  // KBS_COMMON_JOSE_JWE_H_
