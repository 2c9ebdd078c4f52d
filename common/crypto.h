// Thin, typed wrappers over OpenSSL EVP for the primitives the KBS uses:
// digests, randomness, AES-256-GCM and AES key wrap. Algorithms are fetched
// once per process (the fetch dominates small operations in OpenSSL 3).
// All functions are thread-safe.
#ifndef KBS_COMMON_CRYPTO_H_
#define KBS_COMMON_CRYPTO_H_

#include <openssl/evp.h>

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/bytes.h"

namespace kbs::common {

enum class HashAlgorithm { kSha256, kSha384, kSha512 };

// Accepts "sha256", "sha384", "sha512" in any case (kbs-types names).
absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name);
absl::string_view HashAlgorithmName(HashAlgorithm alg);
size_t DigestSize(HashAlgorithm alg);

// The process-wide fetched EVP_MD for `alg` (never null).
const EVP_MD* FetchedDigest(HashAlgorithm alg);

// One-shot digest; returns raw bytes.
std::string Digest(HashAlgorithm alg, absl::Span<const uint8_t> data);
inline std::string Digest(HashAlgorithm alg, absl::string_view data) {
  return Digest(alg, AsSpan(data));
}
inline std::string Sha256(absl::string_view data) { return Digest(HashAlgorithm::kSha256, data); }

// Cryptographically secure random bytes (OpenSSL's DRBG seeded by the OS).
absl::StatusOr<SecretBytes> RandomBytes(size_t n);
absl::StatusOr<std::string> RandomString(size_t n);

struct AesGcmSealed {
  std::string ciphertext;
  std::string tag;  // 16 bytes
};

// AES-256-GCM with a 12-byte IV. `key` must be 32 bytes.
absl::StatusOr<AesGcmSealed> AesGcmSeal(absl::Span<const uint8_t> key, absl::Span<const uint8_t> iv,
                                        absl::Span<const uint8_t> aad,
                                        absl::Span<const uint8_t> plaintext);
// DataLoss-free by design: a tag mismatch is InvalidArgument
// ("authentication failed"); the caller decides what it means.
absl::StatusOr<SecretBytes> AesGcmOpen(absl::Span<const uint8_t> key, absl::Span<const uint8_t> iv,
                                       absl::Span<const uint8_t> aad,
                                       absl::Span<const uint8_t> ciphertext,
                                       absl::Span<const uint8_t> tag);

// AES key wrap, RFC 3394 (JWA A256KW). `kek` must be 32 bytes, `key` a
// multiple of 8 bytes (at least 16).
absl::StatusOr<std::string> AesKeyWrap(absl::Span<const uint8_t> kek,
                                       absl::Span<const uint8_t> key);
absl::StatusOr<SecretBytes> AesKeyUnwrap(absl::Span<const uint8_t> kek,
                                         absl::Span<const uint8_t> wrapped);

// NIST SP 800-56A Concat KDF with SHA-256 (OpenSSL's SSKDF), as JWA §4.6.2
// uses it for ECDH-ES: derives `out_len` bytes from `z` and `other_info`.
absl::StatusOr<SecretBytes> ConcatKdfSha256(absl::Span<const uint8_t> z,
                                            absl::Span<const uint8_t> other_info, size_t out_len);

}  // namespace kbs::common

#endif  // KBS_COMMON_CRYPTO_H_
