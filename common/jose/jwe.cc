#include "common/jose/jwe.h"

#include <openssl/core_names.h>
#include <openssl/rsa.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "common/openssl_util.h"
#include "common/status_macros.h"

namespace kbs::jose {
namespace {

using common::AsSpan;
using common::Json;
using common::SecretBytes;

constexpr size_t kCekSize = 32;
constexpr size_t kIvSize = 12;
constexpr absl::string_view kEcdhAlg = "ECDH-ES+A256KW";

// JWA §4.6.2: OtherInfo = AlgorithmID || PartyUInfo || PartyVInfo ||
// SuppPubInfo, each length-prefixed (32-bit big-endian); apu/apv empty,
// keydatalen 256 bits for A256KW.
std::string EcdhOtherInfo() {
  std::string info;
  auto be32 = [&info](uint32_t v) {
    for (int shift = 24; shift >= 0; shift -= 8) info.push_back(static_cast<char>(v >> shift));
  };
  be32(static_cast<uint32_t>(kEcdhAlg.size()));
  info.append(kEcdhAlg.data(), kEcdhAlg.size());
  be32(0);
  be32(0);
  be32(256);
  return info;
}

absl::StatusOr<SecretBytes> DeriveKek(EVP_PKEY* private_key, EVP_PKEY* peer) {
  KBS_ASSIGN_OR_RETURN(SecretBytes z, common::EcdhDerive(private_key, peer));
  static const std::string kOtherInfo = EcdhOtherInfo();
  return common::ConcatKdfSha256(z.span(), AsSpan(kOtherInfo), 32);
}

// RSA-OAEP-256 is OAEP with SHA-256 and MGF1-SHA-256 (RFC 7518 §4.3);
// RSA1_5 is PKCS#1 v1.5 padding.
absl::Status SetRsaPadding(EVP_PKEY_CTX* ctx, bool oaep256) {
  if (oaep256) {
    if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_OAEP_PADDING) != 1 ||
        EVP_PKEY_CTX_set_rsa_oaep_md_name(ctx, "SHA256", nullptr) != 1 ||
        EVP_PKEY_CTX_set_rsa_mgf1_md_name(ctx, "SHA256", nullptr) != 1) {
      return common::OpenSslError("RSA-OAEP-256 setup failed");
    }
  } else if (EVP_PKEY_CTX_set_rsa_padding(ctx, RSA_PKCS1_PADDING) != 1) {
    return common::OpenSslError("RSA1_5 setup failed");
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> RsaEncrypt(EVP_PKEY* key, bool oaep256, absl::Span<const uint8_t> cek) {
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!ctx || EVP_PKEY_encrypt_init(ctx.get()) != 1) {
    return common::OpenSslError("RSA encrypt init failed");
  }
  KBS_RETURN_IF_ERROR(SetRsaPadding(ctx.get(), oaep256));
  size_t len = 0;
  if (EVP_PKEY_encrypt(ctx.get(), nullptr, &len, cek.data(), cek.size()) != 1) {
    return common::OpenSslError("RSA encrypt failed");
  }
  std::string out(len, '\0');
  if (EVP_PKEY_encrypt(ctx.get(), reinterpret_cast<unsigned char*>(out.data()), &len, cek.data(),
                       cek.size()) != 1) {
    return common::OpenSslError("RSA encrypt failed");
  }
  out.resize(len);
  return out;
}

absl::StatusOr<SecretBytes> RsaDecrypt(EVP_PKEY* key, bool oaep256, absl::string_view wrapped) {
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!ctx || EVP_PKEY_decrypt_init(ctx.get()) != 1) {
    return common::OpenSslError("RSA decrypt init failed");
  }
  KBS_RETURN_IF_ERROR(SetRsaPadding(ctx.get(), oaep256));
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(wrapped.data());
  if (EVP_PKEY_decrypt(ctx.get(), nullptr, &len, in, wrapped.size()) != 1) {
    return common::OpenSslError("JWE: cannot decrypt the content key",
                                absl::StatusCode::kInvalidArgument);
  }
  SecretBytes out(len);
  if (EVP_PKEY_decrypt(ctx.get(), out.data(), &len, in, wrapped.size()) != 1) {
    return common::OpenSslError("JWE: cannot decrypt the content key",
                                absl::StatusCode::kInvalidArgument);
  }
  out.Truncate(len);
  return out;
}

}  // namespace

std::string FlattenedJwe::ToJsonString() const {
  // All members are base64url, so no escaping is needed.
  return absl::StrCat("{\"protected\":\"", protected_header, "\",\"encrypted_key\":\"",
                      encrypted_key, "\",\"iv\":\"", iv, "\",\"ciphertext\":\"", ciphertext,
                      "\",\"tag\":\"", tag, "\"}");
}

absl::StatusOr<FlattenedJwe> FlattenedJwe::FromJson(const Json& json) {
  FlattenedJwe jwe;
  KBS_ASSIGN_OR_RETURN(jwe.protected_header, common::GetStringMember(json, "protected", "JWE"));
  KBS_ASSIGN_OR_RETURN(jwe.encrypted_key, common::GetStringMember(json, "encrypted_key", "JWE"));
  KBS_ASSIGN_OR_RETURN(jwe.iv, common::GetStringMember(json, "iv", "JWE"));
  KBS_ASSIGN_OR_RETURN(jwe.ciphertext, common::GetStringMember(json, "ciphertext", "JWE"));
  KBS_ASSIGN_OR_RETURN(jwe.tag, common::GetStringMember(json, "tag", "JWE"));
  return jwe;
}

absl::StatusOr<FlattenedJwe> JweEncrypt(const TeePublicKey& recipient,
                                        absl::Span<const uint8_t> plaintext) {
  EVP_PKEY* recipient_key = recipient.evp_pkey();
  if (recipient_key == nullptr) return absl::InvalidArgumentError("JWE: no recipient key");
  KBS_ASSIGN_OR_RETURN(SecretBytes cek, common::RandomBytes(kCekSize));
  KBS_ASSIGN_OR_RETURN(std::string iv, common::RandomString(kIvSize));

  std::string header;
  std::string encrypted_key;
  switch (recipient.alg()) {
    case KeyManagement::kRsaOaep256:
    case KeyManagement::kRsa1_5: {
      bool oaep = recipient.alg() == KeyManagement::kRsaOaep256;
      header = absl::StrCat("{\"alg\":\"", KeyManagementName(recipient.alg()),
                            "\",\"enc\":\"A256GCM\"}");
      KBS_ASSIGN_OR_RETURN(encrypted_key, RsaEncrypt(recipient_key, oaep, cek.span()));
      break;
    }
    case KeyManagement::kEcdhEsA256Kw: {
      KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr ephemeral, common::GenerateEcKey(recipient.curve()));
      KBS_ASSIGN_OR_RETURN(common::EcPoint epk, common::GetEcPublicPoint(ephemeral.get()));
      KBS_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKek(ephemeral.get(), recipient_key));
      KBS_ASSIGN_OR_RETURN(encrypted_key, common::AesKeyWrap(kek.span(), cek.span()));
      // `epk` members in lexicographic order (RFC 7638 order), compact.
      header = absl::StrCat("{\"alg\":\"", kEcdhAlg, "\",\"enc\":\"A256GCM\",\"epk\":{\"crv\":\"",
                            common::EcCurveJoseName(recipient.curve()),
                            "\",\"kty\":\"EC\",\"x\":\"", common::Base64UrlEncode(epk.x),
                            "\",\"y\":\"", common::Base64UrlEncode(epk.y), "\"}}");
      break;
    }
  }

  FlattenedJwe jwe;
  jwe.protected_header = common::Base64UrlEncode(header);
  // RFC 7516 §5.1 step 14: AAD = ASCII(BASE64URL(UTF8(JWE Protected Header))).
  KBS_ASSIGN_OR_RETURN(
      common::AesGcmSealed sealed,
      common::AesGcmSeal(cek.span(), AsSpan(iv), AsSpan(jwe.protected_header), plaintext));
  jwe.encrypted_key = common::Base64UrlEncode(encrypted_key);
  jwe.iv = common::Base64UrlEncode(iv);
  jwe.ciphertext = common::Base64UrlEncode(sealed.ciphertext);
  jwe.tag = common::Base64UrlEncode(sealed.tag);
  return jwe;
}

absl::StatusOr<SecretBytes> JweDecrypt(const FlattenedJwe& jwe, EVP_PKEY* private_key) {
  auto decode = [](absl::string_view value, absl::string_view name) -> absl::StatusOr<std::string> {
    auto out = common::Base64UrlDecode(value);
    if (!out.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("JWE member `", name, "` is not base64url"));
    }
    return out;
  };
  KBS_ASSIGN_OR_RETURN(std::string header_bytes, decode(jwe.protected_header, "protected"));
  KBS_ASSIGN_OR_RETURN(std::string encrypted_key, decode(jwe.encrypted_key, "encrypted_key"));
  KBS_ASSIGN_OR_RETURN(std::string iv, decode(jwe.iv, "iv"));
  KBS_ASSIGN_OR_RETURN(std::string ciphertext, decode(jwe.ciphertext, "ciphertext"));
  KBS_ASSIGN_OR_RETURN(std::string tag, decode(jwe.tag, "tag"));
  KBS_ASSIGN_OR_RETURN(Json header, common::ParseJson(header_bytes));
  KBS_ASSIGN_OR_RETURN(std::string alg, common::GetStringMember(header, "alg", "JWE header"));
  KBS_ASSIGN_OR_RETURN(std::string enc, common::GetStringMember(header, "enc", "JWE header"));
  if (enc != "A256GCM") {
    return absl::InvalidArgumentError(absl::StrCat("JWE: unsupported enc \"", enc, "\""));
  }

  SecretBytes cek;
  if (alg == "RSA-OAEP-256" || alg == "RSA1_5") {
    KBS_ASSIGN_OR_RETURN(cek, RsaDecrypt(private_key, alg == "RSA-OAEP-256", encrypted_key));
  } else if (alg == kEcdhAlg) {
    KBS_ASSIGN_OR_RETURN(const Json* epk, common::GetObjectMember(header, "epk", "JWE header"));
    KBS_ASSIGN_OR_RETURN(std::string crv, common::GetStringMember(*epk, "crv", "epk"));
    KBS_ASSIGN_OR_RETURN(common::EcCurve curve, common::ParseEcCurve(crv));
    KBS_ASSIGN_OR_RETURN(common::EcCurve own_curve, common::GetEcCurve(private_key));
    if (curve != own_curve) {
      return absl::InvalidArgumentError("JWE: epk curve differs from the recipient key's curve");
    }
    KBS_ASSIGN_OR_RETURN(std::string x_b64, common::GetStringMember(*epk, "x", "epk"));
    KBS_ASSIGN_OR_RETURN(std::string y_b64, common::GetStringMember(*epk, "y", "epk"));
    KBS_ASSIGN_OR_RETURN(std::string x, decode(x_b64, "epk.x"));
    KBS_ASSIGN_OR_RETURN(std::string y, decode(y_b64, "epk.y"));
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr peer, common::EcPublicKeyFromPoint(curve, x, y));
    KBS_ASSIGN_OR_RETURN(SecretBytes kek, DeriveKek(private_key, peer.get()));
    KBS_ASSIGN_OR_RETURN(cek, common::AesKeyUnwrap(kek.span(), AsSpan(encrypted_key)));
  } else {
    return absl::InvalidArgumentError(absl::StrCat("JWE: unsupported alg \"", alg, "\""));
  }
  if (cek.size() != kCekSize) {
    return absl::InvalidArgumentError("JWE: content key is not 32 bytes");
  }
  return common::AesGcmOpen(cek.span(), AsSpan(iv), AsSpan(jwe.protected_header),
                            AsSpan(ciphertext), AsSpan(tag));
}

}  // namespace kbs::jose
