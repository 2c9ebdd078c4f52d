#include "common/keys.h"

#include <openssl/core_names.h>
#include <openssl/err.h>
#include <openssl/pem.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kbs::common {
namespace {

const char* GroupName(EcCurve curve) {
  switch (curve) {
    case EcCurve::kP256:
      return "P-256";
    case EcCurve::kP384:
      return "P-384";
    case EcCurve::kP521:
      return "P-521";
  }
  return "P-256";
}

absl::StatusOr<std::string> BnParam(const EVP_PKEY* key, const char* name, size_t pad_to) {
  BIGNUM* raw = nullptr;
  if (EVP_PKEY_get_bn_param(key, name, &raw) != 1) {
    return OpenSslError(absl::StrCat("reading key parameter ", name));
  }
  BignumPtr bn(raw);
  size_t len = pad_to != 0 ? pad_to : static_cast<size_t>(BN_num_bytes(bn.get()));
  std::string out(len, '\0');
  if (BN_bn2binpad(bn.get(), reinterpret_cast<unsigned char*>(out.data()), static_cast<int>(len)) <
      0) {
    return OpenSslError("BN_bn2binpad failed");
  }
  return out;
}

// Domain parameters per curve, built once. Deriving keys from a parameter
// template avoids rebuilding the EC group (and its precomputation) by name
// on every operation, which costs more than the scalar multiplication.
const EVP_PKEY* CurveParameters(EcCurve curve) {
  auto make = [](const char* group) -> EVP_PKEY* {
    EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
    EVP_PKEY* params = nullptr;
    if (!ctx || EVP_PKEY_paramgen_init(ctx.get()) != 1 ||
        EVP_PKEY_CTX_set_group_name(ctx.get(), group) != 1 ||
        EVP_PKEY_paramgen(ctx.get(), &params) != 1) {
      return nullptr;
    }
    return params;
  };
  static const EVP_PKEY* const kP256 = make("P-256");
  static const EVP_PKEY* const kP384 = make("P-384");
  static const EVP_PKEY* const kP521 = make("P-521");
  switch (curve) {
    case EcCurve::kP256:
      return kP256;
    case EcCurve::kP384:
      return kP384;
    case EcCurve::kP521:
      return kP521;
  }
  return kP256;
}

absl::StatusOr<EvpPkeyPtr> FromData(const char* type, OSSL_PARAM* params, int selection) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, type, nullptr));
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &raw, selection, params) != 1) {
    return OpenSslError(absl::StrCat("invalid ", type, " public key"),
                        absl::StatusCode::kInvalidArgument);
  }
  return EvpPkeyPtr(raw);
}

}  // namespace

absl::StatusOr<EcCurve> ParseEcCurve(absl::string_view jose_name) {
  if (jose_name == "P-256") return EcCurve::kP256;
  if (jose_name == "P-384") return EcCurve::kP384;
  if (jose_name == "P-521") return EcCurve::kP521;
  return absl::InvalidArgumentError(absl::StrCat("unsupported curve \"", jose_name, "\""));
}

absl::string_view EcCurveJoseName(EcCurve curve) { return GroupName(curve); }

size_t EcCoordinateSize(EcCurve curve) {
  switch (curve) {
    case EcCurve::kP256:
      return 32;
    case EcCurve::kP384:
      return 48;
    case EcCurve::kP521:
      return 66;
  }
  return 32;
}

absl::StatusOr<EvpPkeyPtr> GenerateEcKey(EcCurve curve) {
  const EVP_PKEY* params = CurveParameters(curve);
  EvpPkeyCtxPtr ctx(params != nullptr ? EVP_PKEY_CTX_new_from_pkey(
                                            nullptr, const_cast<EVP_PKEY*>(params), nullptr)
                                      : nullptr);
  EVP_PKEY* raw = nullptr;
  if (!ctx || EVP_PKEY_keygen_init(ctx.get()) != 1 || EVP_PKEY_keygen(ctx.get(), &raw) != 1) {
    return OpenSslError("EC key generation failed");
  }
  return EvpPkeyPtr(raw);
}

absl::StatusOr<EvpPkeyPtr> GenerateRsaKey(int bits) {
  EVP_PKEY* raw = EVP_RSA_gen(static_cast<unsigned int>(bits));
  if (raw == nullptr) return OpenSslError("RSA key generation failed");
  return EvpPkeyPtr(raw);
}

absl::StatusOr<EvpPkeyPtr> GenerateEd25519Key() {
  EVP_PKEY* raw = EVP_PKEY_Q_keygen(nullptr, nullptr, "ED25519");
  if (raw == nullptr) return OpenSslError("Ed25519 key generation failed");
  return EvpPkeyPtr(raw);
}

absl::StatusOr<EcCurve> GetEcCurve(const EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_EC) {
    return absl::InvalidArgumentError("not an EC key");
  }
  char name[64] = {0};
  size_t len = 0;
  if (EVP_PKEY_get_utf8_string_param(key, OSSL_PKEY_PARAM_GROUP_NAME, name, sizeof(name), &len) !=
      1) {
    return OpenSslError("reading EC group", absl::StatusCode::kInvalidArgument);
  }
  absl::string_view group(name, len);
  if (group == "prime256v1" || group == "P-256") return EcCurve::kP256;
  if (group == "secp384r1" || group == "P-384") return EcCurve::kP384;
  if (group == "secp521r1" || group == "P-521") return EcCurve::kP521;
  return absl::InvalidArgumentError(absl::StrCat("unsupported EC group ", group));
}

absl::StatusOr<EcPoint> GetEcPublicPoint(const EVP_PKEY* key) {
  KBS_ASSIGN_OR_RETURN(EcCurve curve, GetEcCurve(key));
  size_t size = EcCoordinateSize(curve);
  unsigned char buf[1 + 2 * 66];
  size_t len = 0;
  if (EVP_PKEY_get_octet_string_param(key, OSSL_PKEY_PARAM_ENCODED_PUBLIC_KEY, buf, sizeof(buf),
                                      &len) != 1) {
    return OpenSslError("reading EC public point");
  }
  if (len != 1 + 2 * size || buf[0] != 0x04) {
    return absl::InternalError("EC public point is not in uncompressed form");
  }
  EcPoint point;
  point.x.assign(reinterpret_cast<const char*>(buf + 1), size);
  point.y.assign(reinterpret_cast<const char*>(buf + 1 + size), size);
  return point;
}

absl::StatusOr<EvpPkeyPtr> EcPublicKeyFromPoint(EcCurve curve, absl::string_view x,
                                                absl::string_view y) {
  size_t size = EcCoordinateSize(curve);
  if (x.size() != size || y.size() != size) {
    return absl::InvalidArgumentError(
        absl::StrCat("EC coordinates for ", GroupName(curve), " must be ", size, " bytes"));
  }
  std::string encoded;
  encoded.reserve(1 + 2 * size);
  encoded.push_back('\x04');
  encoded.append(x.data(), x.size());
  encoded.append(y.data(), y.size());
  // Setting an encoded point runs EC_POINT_oct2point, which rejects points
  // that are not on the curve; the curves used have cofactor 1, so with the
  // quick check (not the point at infinity) that is the full public-key
  // validation of SP 800-56A §5.6.2.3.4.
  EvpPkeyPtr key(EVP_PKEY_new());
  const EVP_PKEY* params = CurveParameters(curve);
  if (!key || params == nullptr || EVP_PKEY_copy_parameters(key.get(), params) != 1) {
    return OpenSslError("EC key setup failed");
  }
  if (EVP_PKEY_set1_encoded_public_key(
          key.get(), reinterpret_cast<const unsigned char*>(encoded.data()), encoded.size()) != 1) {
    return OpenSslError("EC public key is not a valid point", absl::StatusCode::kInvalidArgument);
  }
  EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key.get(), nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    return OpenSslError("EC public key is not a valid point", absl::StatusCode::kInvalidArgument);
  }
  return key;
}

absl::StatusOr<RsaPublicNumbers> GetRsaPublicNumbers(const EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_RSA) {
    return absl::InvalidArgumentError("not an RSA key");
  }
  RsaPublicNumbers out;
  KBS_ASSIGN_OR_RETURN(out.n, BnParam(key, OSSL_PKEY_PARAM_RSA_N, 0));
  KBS_ASSIGN_OR_RETURN(out.e, BnParam(key, OSSL_PKEY_PARAM_RSA_E, 0));
  return out;
}

absl::StatusOr<EvpPkeyPtr> RsaPublicKeyFromNumbers(absl::string_view n, absl::string_view e) {
  BignumPtr bn_n(BN_bin2bn(reinterpret_cast<const unsigned char*>(n.data()),
                           static_cast<int>(n.size()), nullptr));
  BignumPtr bn_e(BN_bin2bn(reinterpret_cast<const unsigned char*>(e.data()),
                           static_cast<int>(e.size()), nullptr));
  OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bn_n || !bn_e || !bld ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_N, bn_n.get()) != 1 ||
      OSSL_PARAM_BLD_push_BN(bld.get(), OSSL_PKEY_PARAM_RSA_E, bn_e.get()) != 1) {
    return OpenSslError("building RSA parameters");
  }
  OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  if (!params) return OpenSslError("building RSA parameters");
  return FromData("RSA", params.get(), EVP_PKEY_PUBLIC_KEY);
}

absl::StatusOr<std::string> GetEd25519PublicKey(const EVP_PKEY* key) {
  if (EVP_PKEY_get_base_id(key) != EVP_PKEY_ED25519) {
    return absl::InvalidArgumentError("not an Ed25519 key");
  }
  std::string out(32, '\0');
  size_t len = out.size();
  if (EVP_PKEY_get_raw_public_key(key, reinterpret_cast<unsigned char*>(out.data()), &len) != 1 ||
      len != 32) {
    return OpenSslError("reading Ed25519 public key");
  }
  return out;
}

absl::StatusOr<std::string> PrivateKeyToPem(const EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio ||
      PEM_write_bio_PrivateKey(bio.get(), key, nullptr, nullptr, 0, nullptr, nullptr) != 1) {
    return OpenSslError("writing private key PEM");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  std::string out(data, static_cast<size_t>(len));
  return out;
}

absl::StatusOr<std::string> PublicKeyToPem(const EVP_PKEY* key) {
  BioPtr bio(BIO_new(BIO_s_mem()));
  if (!bio || PEM_write_bio_PUBKEY(bio.get(), key) != 1) {
    return OpenSslError("writing public key PEM");
  }
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PrivateKey(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw == nullptr) {
    return OpenSslError("not a PEM private key", absl::StatusCode::kInvalidArgument);
  }
  return EvpPkeyPtr(raw);
}

absl::StatusOr<EvpPkeyPtr> PublicKeyFromPem(absl::string_view pem) {
  BioPtr bio(BIO_new_mem_buf(pem.data(), static_cast<int>(pem.size())));
  EVP_PKEY* raw = bio ? PEM_read_bio_PUBKEY(bio.get(), nullptr, nullptr, nullptr) : nullptr;
  if (raw == nullptr) {
    return OpenSslError("not a PEM public key (SubjectPublicKeyInfo)",
                        absl::StatusCode::kInvalidArgument);
  }
  return EvpPkeyPtr(raw);
}

absl::StatusOr<SecretBytes> EcdhDerive(EVP_PKEY* private_key, EVP_PKEY* peer_public) {
  EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_pkey(nullptr, private_key, nullptr));
  size_t len = 0;
  if (!ctx || EVP_PKEY_derive_init(ctx.get()) != 1 ||
      EVP_PKEY_derive_set_peer_ex(ctx.get(), peer_public, /*validate_peer=*/0) != 1 ||
      EVP_PKEY_derive(ctx.get(), nullptr, &len) != 1) {
    return OpenSslError("ECDH setup failed", absl::StatusCode::kInvalidArgument);
  }
  SecretBytes secret(len);
  if (EVP_PKEY_derive(ctx.get(), secret.data(), &len) != 1) {
    return OpenSslError("ECDH derive failed");
  }
  secret.Truncate(len);
  return secret;
}

absl::StatusOr<EvpPkeyPtr> LoadOrCreatePrivateKey(
    const std::string& path, const std::function<absl::StatusOr<EvpPkeyPtr>()>& generate,
    absl::string_view what) {
  if (!FileExists(path)) {
    KBS_ASSIGN_OR_RETURN(EvpPkeyPtr key, generate());
    KBS_ASSIGN_OR_RETURN(std::string pem, PrivateKeyToPem(key.get()));
    KBS_RETURN_IF_ERROR(WriteFileAtomic(path, pem, 0600));
    return key;
  }
  KBS_ASSIGN_OR_RETURN(std::string pem, ReadPrivateFile(path));
  auto key = PrivateKeyFromPem(pem);
  std::fill(pem.begin(), pem.end(), '\0');
  if (!key.ok()) {
    return absl::FailedPreconditionError(
        absl::StrCat(what, " ", path, ": ", key.status().message()));
  }
  return key;
}

}  // namespace kbs::common
