#include "common/crypto.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/rand.h>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/openssl_util.h"

namespace kbs::common {
namespace {

// Algorithm objects fetched once; they are immutable and shareable.
const EVP_MD* FetchedMdImpl(HashAlgorithm alg) {
  static const EVP_MD* const kSha256 = EVP_MD_fetch(nullptr, "SHA256", nullptr);
  static const EVP_MD* const kSha384 = EVP_MD_fetch(nullptr, "SHA384", nullptr);
  static const EVP_MD* const kSha512 = EVP_MD_fetch(nullptr, "SHA512", nullptr);
  switch (alg) {
    case HashAlgorithm::kSha256:
      return kSha256;
    case HashAlgorithm::kSha384:
      return kSha384;
    case HashAlgorithm::kSha512:
      return kSha512;
  }
  return kSha384;
}

const EVP_CIPHER* Aes256Gcm() {
  static const EVP_CIPHER* const kCipher = EVP_CIPHER_fetch(nullptr, "AES-256-GCM", nullptr);
  return kCipher;
}

const EVP_CIPHER* Aes256Wrap() {
  static const EVP_CIPHER* const kCipher = EVP_CIPHER_fetch(nullptr, "AES-256-WRAP", nullptr);
  return kCipher;
}

EVP_KDF* SskdfKdf() {
  static EVP_KDF* const kKdf = EVP_KDF_fetch(nullptr, "SSKDF", nullptr);
  return kKdf;
}

}  // namespace

const EVP_MD* FetchedDigest(HashAlgorithm alg) { return FetchedMdImpl(alg); }

absl::StatusOr<HashAlgorithm> ParseHashAlgorithm(absl::string_view name) {
  std::string lower = absl::AsciiStrToLower(name);
  if (lower == "sha256") return HashAlgorithm::kSha256;
  if (lower == "sha384") return HashAlgorithm::kSha384;
  if (lower == "sha512") return HashAlgorithm::kSha512;
  return absl::InvalidArgumentError(absl::StrCat("unsupported hash algorithm \"", name,
                                                 "\" (expected sha256, sha384 or sha512)"));
}

absl::string_view HashAlgorithmName(HashAlgorithm alg) {
  switch (alg) {
    case HashAlgorithm::kSha256:
      return "sha256";
    case HashAlgorithm::kSha384:
      return "sha384";
    case HashAlgorithm::kSha512:
      return "sha512";
  }
  return "sha384";
}

size_t DigestSize(HashAlgorithm alg) {
  switch (alg) {
    case HashAlgorithm::kSha256:
      return 32;
    case HashAlgorithm::kSha384:
      return 48;
    case HashAlgorithm::kSha512:
      return 64;
  }
  return 48;
}

std::string Digest(HashAlgorithm alg, absl::Span<const uint8_t> data) {
  std::string out(DigestSize(alg), '\0');
  unsigned int len = 0;
  // EVP_Digest only fails on allocation failure; an empty result is then
  // returned, which never equals a real digest.
  if (EVP_Digest(data.data(), data.size(), reinterpret_cast<unsigned char*>(out.data()), &len,
                 FetchedDigest(alg), nullptr) != 1) {
    return std::string();
  }
  return out;
}

absl::StatusOr<SecretBytes> RandomBytes(size_t n) {
  SecretBytes out(n);
  if (n > 0 && RAND_bytes(out.data(), static_cast<int>(n)) != 1) {
    return OpenSslError("RAND_bytes failed");
  }
  return out;
}

absl::StatusOr<std::string> RandomString(size_t n) {
  std::string out(n, '\0');
  if (n > 0 && RAND_bytes(reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(n)) != 1) {
    return OpenSslError("RAND_bytes failed");
  }
  return out;
}

absl::StatusOr<AesGcmSealed> AesGcmSeal(absl::Span<const uint8_t> key, absl::Span<const uint8_t> iv,
                                        absl::Span<const uint8_t> aad,
                                        absl::Span<const uint8_t> plaintext) {
  if (key.size() != 32 || iv.size() != 12) {
    return absl::InvalidArgumentError("AES-256-GCM needs a 32-byte key and a 12-byte IV");
  }
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  int len = 0;
  AesGcmSealed out;
  out.ciphertext.resize(plaintext.size());
  out.tag.resize(16);
  if (!ctx || EVP_EncryptInit_ex2(ctx.get(), Aes256Gcm(), key.data(), iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_EncryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.ciphertext.data()), &len,
                        plaintext.data(), static_cast<int>(plaintext.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.ciphertext.data()) + len,
                          &len) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_GET_TAG, 16, out.tag.data()) != 1) {
    return OpenSslError("AES-256-GCM encryption failed");
  }
  return out;
}

absl::StatusOr<SecretBytes> AesGcmOpen(absl::Span<const uint8_t> key, absl::Span<const uint8_t> iv,
                                       absl::Span<const uint8_t> aad,
                                       absl::Span<const uint8_t> ciphertext,
                                       absl::Span<const uint8_t> tag) {
  if (key.size() != 32 || iv.size() != 12 || tag.size() != 16) {
    return absl::InvalidArgumentError(
        "AES-256-GCM needs a 32-byte key, a 12-byte IV and a 16-byte tag");
  }
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  SecretBytes out(ciphertext.size());
  int len = 0;
  if (!ctx || EVP_DecryptInit_ex2(ctx.get(), Aes256Gcm(), key.data(), iv.data(), nullptr) != 1 ||
      (!aad.empty() && EVP_DecryptUpdate(ctx.get(), nullptr, &len, aad.data(),
                                         static_cast<int>(aad.size())) != 1) ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, ciphertext.data(),
                        static_cast<int>(ciphertext.size())) != 1 ||
      EVP_CIPHER_CTX_ctrl(ctx.get(), EVP_CTRL_GCM_SET_TAG, 16, const_cast<uint8_t*>(tag.data())) !=
          1) {
    return OpenSslError("AES-256-GCM decryption failed");
  }
  int final_len = 0;
  if (EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("AES-256-GCM authentication failed");
  }
  return out;
}

absl::StatusOr<std::string> AesKeyWrap(absl::Span<const uint8_t> kek,
                                       absl::Span<const uint8_t> key) {
  if (kek.size() != 32 || key.size() < 16 || key.size() % 8 != 0) {
    return absl::InvalidArgumentError("AES key wrap needs a 32-byte KEK and a key of 8n bytes");
  }
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  std::string out(key.size() + 8, '\0');
  int len = 0, final_len = 0;
  if (!ctx) return OpenSslError("EVP_CIPHER_CTX_new failed");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_EncryptInit_ex2(ctx.get(), Aes256Wrap(), kek.data(), nullptr, nullptr) != 1 ||
      EVP_EncryptUpdate(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, key.data(),
                        static_cast<int>(key.size())) != 1 ||
      EVP_EncryptFinal_ex(ctx.get(), reinterpret_cast<unsigned char*>(out.data()) + len,
                          &final_len) != 1) {
    return OpenSslError("AES key wrap failed");
  }
  out.resize(len + final_len);
  return out;
}

absl::StatusOr<SecretBytes> AesKeyUnwrap(absl::Span<const uint8_t> kek,
                                         absl::Span<const uint8_t> wrapped) {
  if (kek.size() != 32 || wrapped.size() < 24 || wrapped.size() % 8 != 0) {
    return absl::InvalidArgumentError("AES key unwrap needs a 32-byte KEK and 8n wrapped bytes");
  }
  EvpCipherCtxPtr ctx(EVP_CIPHER_CTX_new());
  SecretBytes out(wrapped.size());
  int len = 0, final_len = 0;
  if (!ctx) return OpenSslError("EVP_CIPHER_CTX_new failed");
  EVP_CIPHER_CTX_set_flags(ctx.get(), EVP_CIPHER_CTX_FLAG_WRAP_ALLOW);
  if (EVP_DecryptInit_ex2(ctx.get(), Aes256Wrap(), kek.data(), nullptr, nullptr) != 1 ||
      EVP_DecryptUpdate(ctx.get(), out.data(), &len, wrapped.data(),
                        static_cast<int>(wrapped.size())) != 1 ||
      EVP_DecryptFinal_ex(ctx.get(), out.data() + len, &final_len) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("AES key unwrap failed (wrong key or corrupted data)");
  }
  out.Truncate(len + final_len);
  return out;
}

absl::StatusOr<SecretBytes> ConcatKdfSha256(absl::Span<const uint8_t> z,
                                            absl::Span<const uint8_t> other_info, size_t out_len) {
  EvpKdfCtxPtr ctx(EVP_KDF_CTX_new(SskdfKdf()));
  if (!ctx) return OpenSslError("SSKDF unavailable");
  char digest[] = "SHA256";
  OSSL_PARAM params[] = {
      OSSL_PARAM_construct_utf8_string(OSSL_KDF_PARAM_DIGEST, digest, 0),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_KEY, const_cast<uint8_t*>(z.data()),
                                        z.size()),
      OSSL_PARAM_construct_octet_string(OSSL_KDF_PARAM_INFO,
                                        const_cast<uint8_t*>(other_info.data()), other_info.size()),
      OSSL_PARAM_construct_end()};
  SecretBytes out(out_len);
  if (EVP_KDF_derive(ctx.get(), out.data(), out_len, params) != 1) {
    return OpenSslError("Concat KDF failed");
  }
  return out;
}

}  // namespace kbs::common
