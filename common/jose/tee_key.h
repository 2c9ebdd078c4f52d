// The TEE public key a confidential guest sends in `runtime-data.tee-pubkey`
// (kbs-types `TeePubKey`, a JWK subset; kbs-protocol.md §3.4). Only `kty`
// plus `alg`/`n`/`e` (RSA) or `crv`/`alg`/`x`/`y` (EC) survive parsing, and
// ToJson() re-serializes exactly those members with the strings as sent:
// this is the form both sides hash into the runtime-data binding.
#ifndef KBS_COMMON_JOSE_TEE_KEY_H_
#define KBS_COMMON_JOSE_TEE_KEY_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/openssl_util.h"

namespace kbs::jose {

// JWE key-management algorithms the KBS can encrypt to.
enum class KeyManagement { kRsaOaep256, kRsa1_5, kEcdhEsA256Kw };

absl::string_view KeyManagementName(KeyManagement alg);

class TeePublicKey final {
 public:
  // Parses and validates a JWK from the wire: supported kty/alg/crv,
  // canonical base64url members, EC points on the curve, RSA moduli of at
  // least 2048 bits. InvalidArgument names the offending member.
  static absl::StatusOr<TeePublicKey> FromJson(const common::Json& jwk);
  // Builds the JWK for one of our own keys (client side, tests).
  static absl::StatusOr<TeePublicKey> FromPublicKey(const EVP_PKEY* key, KeyManagement alg);

  // The kbs-types re-serialization (member order is irrelevant under JCS).
  common::Json ToJson() const;
  // The key as OpenSSL holds it, built once at parse time; valid as long as
  // this object (or a copy of it) lives. Safe to use from several threads.
  EVP_PKEY* evp_pkey() const { return pkey_.get(); }

  KeyManagement alg() const { return alg_; }
  bool is_ec() const { return alg_ == KeyManagement::kEcdhEsA256Kw; }
  common::EcCurve curve() const { return curve_; }

 private:
  TeePublicKey() = default;

  KeyManagement alg_ = KeyManagement::kEcdhEsA256Kw;
  common::EcCurve curve_ = common::EcCurve::kP256;
  // base64url members exactly as received.
  std::string n_, e_, x_, y_;
  std::shared_ptr<EVP_PKEY> pkey_;
};

}  // namespace kbs::jose

#endif  // KBS_COMMON_JOSE_TEE_KEY_H_
