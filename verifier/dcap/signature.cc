#include "verifier/dcap/signature.h"

#include <openssl/bn.h>
#include <openssl/core_names.h>
#include <openssl/ecdsa.h>
#include <openssl/err.h>

#include "absl/status/status.h"
#include "common/crypto.h"

namespace kbs::verifier::dcap {

absl::StatusOr<common::EvpPkeyPtr> P256PublicKey(absl::string_view xy) {
  if (xy.size() != 64) return absl::InvalidArgumentError("P-256 public key is not 64 bytes");
  unsigned char point[65];
  point[0] = 0x04;
  std::memcpy(point + 1, xy.data(), 64);
  common::OsslParamBldPtr bld(OSSL_PARAM_BLD_new());
  if (!bld ||
      OSSL_PARAM_BLD_push_utf8_string(bld.get(), OSSL_PKEY_PARAM_GROUP_NAME, "prime256v1", 0) !=
          1 ||
      OSSL_PARAM_BLD_push_octet_string(bld.get(), OSSL_PKEY_PARAM_PUB_KEY, point, sizeof(point)) !=
          1) {
    ERR_clear_error();
    return absl::InternalError("cannot build a P-256 key");
  }
  common::OsslParamPtr params(OSSL_PARAM_BLD_to_param(bld.get()));
  common::EvpPkeyCtxPtr ctx(EVP_PKEY_CTX_new_from_name(nullptr, "EC", nullptr));
  EVP_PKEY* key = nullptr;
  if (!params || !ctx || EVP_PKEY_fromdata_init(ctx.get()) != 1 ||
      EVP_PKEY_fromdata(ctx.get(), &key, EVP_PKEY_PUBLIC_KEY, params.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the attestation key is not a P-256 point");
  }
  common::EvpPkeyPtr out(key);
  // The point must be on the curve (P-256 has cofactor 1, so no order check).
  common::EvpPkeyCtxPtr check(EVP_PKEY_CTX_new_from_pkey(nullptr, key, nullptr));
  if (!check || EVP_PKEY_public_check_quick(check.get()) != 1) {
    ERR_clear_error();
    return absl::InvalidArgumentError("the attestation key is not a P-256 point");
  }
  return out;
}

bool VerifyP256Signature(EVP_PKEY* key, absl::string_view data, absl::string_view signature) {
  if (key == nullptr || signature.size() != 64) return false;
  const auto* s = reinterpret_cast<const unsigned char*>(signature.data());
  BIGNUM* r = BN_bin2bn(s, 32, nullptr);
  BIGNUM* ss = BN_bin2bn(s + 32, 32, nullptr);
  common::EcdsaSigPtr sig(ECDSA_SIG_new());
  if (r == nullptr || ss == nullptr || !sig || ECDSA_SIG_set0(sig.get(), r, ss) != 1) {
    BN_free(r);
    BN_free(ss);
    return false;
  }
  unsigned char der[80];
  unsigned char* p = der;
  const int der_len = i2d_ECDSA_SIG(sig.get(), nullptr);
  if (der_len <= 0 || der_len > static_cast<int>(sizeof(der)) ||
      i2d_ECDSA_SIG(sig.get(), &p) != der_len) {
    return false;
  }
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  const bool ok =
      ctx &&
      EVP_DigestVerifyInit(ctx.get(), nullptr,
                           common::FetchedDigest(common::HashAlgorithm::kSha256), nullptr,
                           key) == 1 &&
      EVP_DigestVerify(ctx.get(), der, static_cast<size_t>(der_len),
                       reinterpret_cast<const unsigned char*>(data.data()), data.size()) == 1;
  ERR_clear_error();
  return ok;
}

}  // namespace kbs::verifier::dcap
