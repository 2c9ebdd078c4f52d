#include "common/jose/tee_key.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs::jose {
namespace {

using common::Json;

absl::StatusOr<std::string> DecodeMember(const Json& jwk, absl::string_view name,
                                         std::string& raw_out) {
  KBS_ASSIGN_OR_RETURN(std::string value, common::GetStringMember(jwk, name, "tee-pubkey"));
  auto decoded = common::Base64UrlDecode(value);
  if (!decoded.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("tee-pubkey member `", name, "` is not unpadded base64url"));
  }
  raw_out = *std::move(decoded);
  return value;
}

}  // namespace

absl::string_view KeyManagementName(KeyManagement alg) {
  switch (alg) {
    case KeyManagement::kRsaOaep256:
      return "RSA-OAEP-256";
    case KeyManagement::kRsa1_5:
      return "RSA1_5";
    case KeyManagement::kEcdhEsA256Kw:
      return "ECDH-ES+A256KW";
  }
  return "";
}

absl::StatusOr<TeePublicKey> TeePublicKey::FromJson(const Json& jwk) {
  if (!jwk.is_object()) {
    return absl::InvalidArgumentError("tee-pubkey must be a JSON object (JWK)");
  }
  KBS_ASSIGN_OR_RETURN(std::string kty, common::GetStringMember(jwk, "kty", "tee-pubkey"));
  KBS_ASSIGN_OR_RETURN(std::string alg, common::GetStringMember(jwk, "alg", "tee-pubkey"));
  TeePublicKey key;
  std::string n_raw, e_raw, x_raw, y_raw;
  if (kty == "RSA") {
    if (alg == "RSA-OAEP-256") {
      key.alg_ = KeyManagement::kRsaOaep256;
    } else if (alg == "RSA1_5") {
      key.alg_ = KeyManagement::kRsa1_5;
    } else {
      return absl::InvalidArgumentError(absl::StrCat("tee-pubkey: RSA key algorithm \"", alg,
                                                     "\" is not supported (use RSA-OAEP-256)"));
    }
    KBS_ASSIGN_OR_RETURN(key.n_, DecodeMember(jwk, "n", n_raw));
    KBS_ASSIGN_OR_RETURN(key.e_, DecodeMember(jwk, "e", e_raw));
    if (n_raw.empty() || n_raw[0] == '\0' || n_raw.size() < 256 || n_raw.size() > 1024) {
      return absl::InvalidArgumentError(
          "tee-pubkey: RSA modulus must be 2048 to 8192 bits without leading zeros");
    }
    if (e_raw.empty() || e_raw.size() > 8 || (static_cast<unsigned char>(e_raw.back()) & 1) == 0) {
      return absl::InvalidArgumentError("tee-pubkey: invalid RSA public exponent");
    }
    auto pkey = common::RsaPublicKeyFromNumbers(n_raw, e_raw);
    if (!pkey.ok()) return absl::InvalidArgumentError("tee-pubkey: invalid RSA key");
    key.pkey_ = std::shared_ptr<EVP_PKEY>(pkey->release(), EVP_PKEY_free);
  } else if (kty == "EC") {
    if (alg != "ECDH-ES+A256KW") {
      return absl::InvalidArgumentError(absl::StrCat("tee-pubkey: EC key algorithm \"", alg,
                                                     "\" is not supported (use ECDH-ES+A256KW)"));
    }
    key.alg_ = KeyManagement::kEcdhEsA256Kw;
    KBS_ASSIGN_OR_RETURN(std::string crv, common::GetStringMember(jwk, "crv", "tee-pubkey"));
    if (crv == "P-256") {
      key.curve_ = common::EcCurve::kP256;
    } else if (crv == "P-521") {
      key.curve_ = common::EcCurve::kP521;
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("tee-pubkey: curve \"", crv, "\" is not supported (use P-256 or P-521)"));
    }
    KBS_ASSIGN_OR_RETURN(key.x_, DecodeMember(jwk, "x", x_raw));
    KBS_ASSIGN_OR_RETURN(key.y_, DecodeMember(jwk, "y", y_raw));
    size_t size = common::EcCoordinateSize(key.curve_);
    if (x_raw.size() != size || y_raw.size() != size) {
      return absl::InvalidArgumentError(
          absl::StrCat("tee-pubkey: ", crv, " coordinates must be ", size, " bytes"));
    }
    // Reject points off the curve now rather than at resource time.
    auto pkey = common::EcPublicKeyFromPoint(key.curve_, x_raw, y_raw);
    if (!pkey.ok()) {
      return absl::InvalidArgumentError("tee-pubkey: EC point is not on the curve");
    }
    key.pkey_ = std::shared_ptr<EVP_PKEY>(pkey->release(), EVP_PKEY_free);
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("tee-pubkey: key type \"", kty, "\" is not supported (use EC or RSA)"));
  }
  return key;
}

absl::StatusOr<TeePublicKey> TeePublicKey::FromPublicKey(const EVP_PKEY* pkey, KeyManagement alg) {
  TeePublicKey key;
  key.alg_ = alg;
  if (EVP_PKEY_up_ref(const_cast<EVP_PKEY*>(pkey)) != 1) {
    return absl::InternalError("EVP_PKEY_up_ref failed");
  }
  key.pkey_ = std::shared_ptr<EVP_PKEY>(const_cast<EVP_PKEY*>(pkey), EVP_PKEY_free);
  if (alg == KeyManagement::kEcdhEsA256Kw) {
    KBS_ASSIGN_OR_RETURN(key.curve_, common::GetEcCurve(pkey));
    KBS_ASSIGN_OR_RETURN(common::EcPoint point, common::GetEcPublicPoint(pkey));
    key.x_ = common::Base64UrlEncode(point.x);
    key.y_ = common::Base64UrlEncode(point.y);
  } else {
    KBS_ASSIGN_OR_RETURN(common::RsaPublicNumbers numbers, common::GetRsaPublicNumbers(pkey));
    key.n_ = common::Base64UrlEncode(numbers.n);
    key.e_ = common::Base64UrlEncode(numbers.e);
  }
  return key;
}

Json TeePublicKey::ToJson() const {
  Json out = Json::object();
  if (is_ec()) {
    out["kty"] = "EC";
    out["crv"] = std::string(common::EcCurveJoseName(curve_));
    out["alg"] = std::string(KeyManagementName(alg_));
    out["x"] = x_;
    out["y"] = y_;
  } else {
    out["kty"] = "RSA";
    out["alg"] = std::string(KeyManagementName(alg_));
    out["n"] = n_;
    out["e"] = e_;
  }
  return out;
}

}  // namespace kbs::jose
