#include "common/jose/jwt.h"

#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "common/status_macros.h"

namespace kbs::jose {
namespace {

using common::Json;

absl::StatusOr<JwsAlgorithm> AlgorithmForKey(const EVP_PKEY* key) {
  int id = EVP_PKEY_get_base_id(key);
  if (id == EVP_PKEY_ED25519) return JwsAlgorithm::kEdDsa;
  if (id == EVP_PKEY_EC) {
    KBS_ASSIGN_OR_RETURN(common::EcCurve curve, common::GetEcCurve(key));
    if (curve == common::EcCurve::kP256) return JwsAlgorithm::kEs256;
  }
  return absl::InvalidArgumentError("JWS keys must be EC P-256 (ES256) or Ed25519 (EdDSA)");
}

absl::StatusOr<Json> ThumbprintInput(const EVP_PKEY* key) {
  KBS_ASSIGN_OR_RETURN(JwsAlgorithm alg, AlgorithmForKey(key));
  Json jwk = Json::object();
  if (alg == JwsAlgorithm::kEs256) {
    KBS_ASSIGN_OR_RETURN(common::EcPoint point, common::GetEcPublicPoint(key));
    jwk["crv"] = "P-256";
    jwk["kty"] = "EC";
    jwk["x"] = common::Base64UrlEncode(point.x);
    jwk["y"] = common::Base64UrlEncode(point.y);
  } else {
    KBS_ASSIGN_OR_RETURN(std::string raw, common::GetEd25519PublicKey(key));
    jwk["crv"] = "Ed25519";
    jwk["kty"] = "OKP";
    jwk["x"] = common::Base64UrlEncode(raw);
  }
  return jwk;
}

// ECDSA signatures in JWS are r || s, each 32 bytes for P-256 (RFC 7518 §3.4).
absl::StatusOr<std::string> DerToRaw(absl::string_view der) {
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  common::EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(der.size())));
  if (!sig) return common::OpenSslError("decoding ECDSA signature");
  std::string raw(64, '\0');
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  if (BN_bn2binpad(r, reinterpret_cast<unsigned char*>(raw.data()), 32) != 32 ||
      BN_bn2binpad(s, reinterpret_cast<unsigned char*>(raw.data()) + 32, 32) != 32) {
    return common::OpenSslError("encoding ECDSA signature");
  }
  return raw;
}

absl::StatusOr<std::string> RawToDer(absl::string_view raw) {
  if (raw.size() != 64) {
    return absl::UnauthenticatedError("ES256 signature must be 64 bytes");
  }
  common::EcdsaSigPtr sig(ECDSA_SIG_new());
  BIGNUM* r = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()), 32, nullptr);
  BIGNUM* s = BN_bin2bn(reinterpret_cast<const unsigned char*>(raw.data()) + 32, 32, nullptr);
  if (!sig || r == nullptr || s == nullptr || ECDSA_SIG_set0(sig.get(), r, s) != 1) {
    BN_free(r);
    BN_free(s);
    return common::OpenSslError("building ECDSA signature");
  }
  unsigned char* der = nullptr;
  int len = i2d_ECDSA_SIG(sig.get(), &der);
  if (len <= 0) return common::OpenSslError("encoding ECDSA signature");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> SignBytes(EVP_PKEY* key, JwsAlgorithm alg, absl::string_view input) {
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md =
      alg == JwsAlgorithm::kEs256 ? common::FetchedDigest(common::HashAlgorithm::kSha256) : nullptr;
  size_t len = 0;
  const auto* data = reinterpret_cast<const unsigned char*>(input.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, md, nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, data, input.size()) != 1) {
    return common::OpenSslError("JWS signing failed");
  }
  std::string sig(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(sig.data()), &len, data,
                     input.size()) != 1) {
    return common::OpenSslError("JWS signing failed");
  }
  sig.resize(len);
  if (alg == JwsAlgorithm::kEs256) return DerToRaw(sig);
  return sig;
}

bool VerifyBytes(EVP_PKEY* key, JwsAlgorithm alg, absl::string_view input,
                 absl::string_view signature) {
  std::string der;
  if (alg == JwsAlgorithm::kEs256) {
    auto converted = RawToDer(signature);
    if (!converted.ok()) return false;
    der = *std::move(converted);
    signature = der;
  } else if (signature.size() != 64) {
    return false;
  }
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const EVP_MD* md =
      alg == JwsAlgorithm::kEs256 ? common::FetchedDigest(common::HashAlgorithm::kSha256) : nullptr;
  bool ok = ctx && EVP_DigestVerifyInit(ctx.get(), nullptr, md, nullptr, key) == 1 &&
            EVP_DigestVerify(ctx.get(), reinterpret_cast<const unsigned char*>(signature.data()),
                             signature.size(), reinterpret_cast<const unsigned char*>(input.data()),
                             input.size()) == 1;
  ERR_clear_error();
  return ok;
}

// Reads a NumericDate claim; absent -> nullopt; wrong type -> error.
absl::StatusOr<std::optional<absl::Time>> NumericDate(const Json& claims, absl::string_view name) {
  const Json* value = common::FindMember(claims, name);
  if (value == nullptr) return std::optional<absl::Time>();
  if (!value->is_number()) {
    return absl::InvalidArgumentError(absl::StrCat("JWT claim `", name, "` must be a number"));
  }
  double seconds = value->get<double>();
  if (!(seconds >= 0 && seconds < 1e11)) {
    return absl::InvalidArgumentError(absl::StrCat("JWT claim `", name, "` is out of range"));
  }
  return std::optional<absl::Time>(absl::FromUnixSeconds(static_cast<int64_t>(seconds)));
}

}  // namespace

absl::string_view JwsAlgorithmName(JwsAlgorithm alg) {
  return alg == JwsAlgorithm::kEs256 ? "ES256" : "EdDSA";
}

absl::StatusOr<std::string> JwkThumbprint(const EVP_PKEY* key) {
  KBS_ASSIGN_OR_RETURN(Json input, ThumbprintInput(key));
  // nlohmann's default object is a sorted map: RFC 7638 member order.
  return common::Base64UrlEncode(common::Sha256(input.dump()));
}

absl::StatusOr<Json> PublicJwk(const EVP_PKEY* key) {
  KBS_ASSIGN_OR_RETURN(Json jwk, ThumbprintInput(key));
  KBS_ASSIGN_OR_RETURN(JwsAlgorithm alg, AlgorithmForKey(key));
  jwk["kid"] = common::Base64UrlEncode(common::Sha256(jwk.dump()));
  jwk["alg"] = std::string(JwsAlgorithmName(alg));
  jwk["use"] = "sig";
  return jwk;
}

absl::StatusOr<std::unique_ptr<JwtSigner>> JwtSigner::Create(common::EvpPkeyPtr private_key) {
  if (!private_key) return absl::InvalidArgumentError("JwtSigner: no key");
  KBS_ASSIGN_OR_RETURN(JwsAlgorithm alg, AlgorithmForKey(private_key.get()));
  KBS_ASSIGN_OR_RETURN(Json jwk, PublicJwk(private_key.get()));
  std::string kid = jwk["kid"].get<std::string>();
  auto signer =
      std::unique_ptr<JwtSigner>(new JwtSigner(std::move(private_key), alg, kid, std::move(jwk)));
  Json header = {{"alg", std::string(JwsAlgorithmName(alg))}, {"typ", "JWT"}, {"kid", kid}};
  signer->header_b64_ = common::Base64UrlEncode(header.dump());
  return signer;
}

absl::StatusOr<std::string> JwtSigner::Sign(const Json& claims) const {
  return SignPayload(common::DumpJson(claims));
}

absl::StatusOr<std::string> JwtSigner::SignPayload(absl::string_view payload_json) const {
  std::string input = absl::StrCat(header_b64_, ".", common::Base64UrlEncode(payload_json));
  KBS_ASSIGN_OR_RETURN(std::string sig, SignBytes(key_.get(), alg_, input));
  return absl::StrCat(input, ".", common::Base64UrlEncode(sig));
}

absl::Status JwtVerifier::AddKey(common::EvpPkeyPtr public_key) {
  if (!public_key) return absl::InvalidArgumentError("JwtVerifier: no key");
  KBS_ASSIGN_OR_RETURN(JwsAlgorithm alg, AlgorithmForKey(public_key.get()));
  KBS_ASSIGN_OR_RETURN(std::string kid, JwkThumbprint(public_key.get()));
  keys_.push_back(TrustedKey{std::move(public_key), alg, std::move(kid)});
  return absl::OkStatus();
}

absl::StatusOr<VerifiedJwt> JwtVerifier::Verify(absl::string_view compact, absl::Time now,
                                                const JwtValidationOptions& options) const {
  std::vector<absl::string_view> parts = absl::StrSplit(compact, '.');
  if (parts.size() != 3 || parts[0].empty() || parts[1].empty() || parts[2].empty()) {
    return absl::InvalidArgumentError("JWT must have three non-empty dot-separated parts");
  }
  auto header_bytes = common::Base64UrlDecode(parts[0]);
  auto payload_bytes = common::Base64UrlDecode(parts[1]);
  auto signature = common::Base64UrlDecode(parts[2]);
  if (!header_bytes.ok() || !payload_bytes.ok() || !signature.ok()) {
    return absl::InvalidArgumentError("JWT parts must be unpadded base64url");
  }
  auto header = common::ParseJson(*header_bytes);
  if (!header.ok() || !header->is_object()) {
    return absl::InvalidArgumentError("JWT header is not a JSON object");
  }
  const Json* alg_member = common::FindMember(*header, "alg");
  if (alg_member == nullptr || !alg_member->is_string()) {
    return absl::InvalidArgumentError("JWT header has no `alg`");
  }
  std::string alg_name = alg_member->get<std::string>();
  JwsAlgorithm alg;
  if (alg_name == "ES256") {
    alg = JwsAlgorithm::kEs256;
  } else if (alg_name == "EdDSA") {
    alg = JwsAlgorithm::kEdDsa;
  } else {
    return absl::UnauthenticatedError(
        absl::StrCat("JWT algorithm \"", alg_name, "\" is not accepted (ES256 or EdDSA)"));
  }
  if (const Json* crit = common::FindMember(*header, "crit"); crit != nullptr) {
    return absl::UnauthenticatedError("JWT header `crit` is not supported");
  }
  std::string kid;
  if (const Json* kid_member = common::FindMember(*header, "kid"); kid_member != nullptr) {
    if (!kid_member->is_string()) return absl::InvalidArgumentError("JWT `kid` must be a string");
    kid = kid_member->get<std::string>();
  }

  absl::string_view signing_input(compact.data(), parts[0].size() + 1 + parts[1].size());
  bool verified = false;
  bool candidate = false;
  for (const TrustedKey& trusted : keys_) {
    if (trusted.alg != alg || (!kid.empty() && kid != trusted.kid)) continue;
    candidate = true;
    if (VerifyBytes(trusted.key.get(), alg, signing_input, *signature)) {
      verified = true;
      break;
    }
  }
  if (!candidate) {
    return absl::UnauthenticatedError(
        kid.empty() ? "JWT: no trusted key for its algorithm"
                    : absl::StrCat("JWT signed by an unknown key (kid ", kid.substr(0, 64), ")"));
  }
  if (!verified) return absl::UnauthenticatedError("JWT signature verification failed");

  auto claims = common::ParseJson(*payload_bytes);
  if (!claims.ok() || !claims->is_object()) {
    return absl::InvalidArgumentError("JWT payload is not a JSON object");
  }
  KBS_ASSIGN_OR_RETURN(std::optional<absl::Time> exp, NumericDate(*claims, "exp"));
  KBS_ASSIGN_OR_RETURN(std::optional<absl::Time> nbf, NumericDate(*claims, "nbf"));
  KBS_ASSIGN_OR_RETURN(std::optional<absl::Time> iat, NumericDate(*claims, "iat"));
  if (!exp.has_value()) {
    if (options.require_exp) return absl::UnauthenticatedError("JWT has no `exp` claim");
  } else if (now >= *exp + options.leeway) {
    return absl::UnauthenticatedError(absl::StrCat(
        "JWT expired at ", absl::FormatTime(absl::RFC3339_sec, *exp, absl::UTCTimeZone())));
  }
  if (nbf.has_value() && now + options.leeway < *nbf) {
    return absl::UnauthenticatedError("JWT is not valid yet (`nbf` in the future)");
  }
  if (iat.has_value() && now + options.leeway < *iat) {
    return absl::UnauthenticatedError("JWT was issued in the future (`iat`)");
  }
  if (options.max_lifetime.has_value() && exp.has_value()) {
    absl::Time start = iat.has_value() ? *iat : now;
    if (*exp - start > *options.max_lifetime + options.leeway) {
      return absl::UnauthenticatedError("JWT lifetime exceeds the accepted maximum");
    }
  }
  if (options.issuer.has_value()) {
    const Json* iss = common::FindMember(*claims, "iss");
    if (iss == nullptr || !iss->is_string() || iss->get<std::string>() != *options.issuer) {
      return absl::UnauthenticatedError("JWT issuer (`iss`) is not accepted");
    }
  }
  VerifiedJwt out;
  out.header_ = *std::move(header);
  out.claims_ = *std::move(claims);
  out.expiry_ = exp;
  return out;
}

}  // namespace kbs::jose
