// Compact JWS/JWT (RFC 7515/7519) with the two algorithms the KBS uses:
// ES256 (attestation tokens, admin tokens) and EdDSA/Ed25519 (admin tokens).
// Verification follows tink's RawJwt -> Validator -> VerifiedJwt shape: a
// VerifiedJwt exists only after its signature and time claims were checked.
#ifndef KBS_COMMON_JOSE_JWT_H_
#define KBS_COMMON_JOSE_JWT_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/openssl_util.h"

namespace kbs::jose {

enum class JwsAlgorithm { kEs256, kEdDsa };
absl::string_view JwsAlgorithmName(JwsAlgorithm alg);

// RFC 7638 thumbprint (base64url SHA-256) of a P-256 or Ed25519 public key;
// used as `kid`.
absl::StatusOr<std::string> JwkThumbprint(const EVP_PKEY* key);
// Public JWK of a P-256 or Ed25519 key, with `kid`, `alg` and `use`.
absl::StatusOr<common::Json> PublicJwk(const EVP_PKEY* key);

// Signs JWTs with one private key (P-256 -> ES256, Ed25519 -> EdDSA).
// Thread-safe.
class JwtSigner final {
 public:
  static absl::StatusOr<std::unique_ptr<JwtSigner>> Create(common::EvpPkeyPtr private_key);

  // Header {"alg","typ":"JWT","kid"}; payload = compact JSON of `claims`.
  absl::StatusOr<std::string> Sign(const common::Json& claims) const;
  // The same with the payload's JSON text given (already serialized).
  absl::StatusOr<std::string> SignPayload(absl::string_view payload_json) const;

  JwsAlgorithm alg() const { return alg_; }
  const std::string& kid() const { return kid_; }
  const common::Json& public_jwk() const { return public_jwk_; }

 private:
  JwtSigner(common::EvpPkeyPtr key, JwsAlgorithm alg, std::string kid, common::Json jwk)
      : key_(std::move(key)), alg_(alg), kid_(std::move(kid)), public_jwk_(std::move(jwk)) {}

  common::EvpPkeyPtr key_;
  JwsAlgorithm alg_;
  std::string kid_;
  std::string header_b64_;
  common::Json public_jwk_;
};

class VerifiedJwt final {
 public:
  const common::Json& header() const { return header_; }
  const common::Json& claims() const { return claims_; }
  // `exp`, if present.
  std::optional<absl::Time> expiry() const { return expiry_; }

 private:
  friend class JwtVerifier;
  VerifiedJwt() = default;
  common::Json header_;
  common::Json claims_;
  std::optional<absl::Time> expiry_;
};

struct JwtValidationOptions {
  bool require_exp = true;
  // Tolerated clock skew for exp/nbf/iat.
  absl::Duration leeway = absl::ZeroDuration();
  // When set, `iss` must equal it.
  std::optional<std::string> issuer;
  // When set, `exp` may be at most this far past `iat` (or past now when
  // there is no `iat`): bounds the lifetime of tokens minted by clients.
  std::optional<absl::Duration> max_lifetime;
};

// Verifies JWTs against a fixed set of trusted public keys (P-256 or
// Ed25519). Immutable after construction; thread-safe.
class JwtVerifier final {
 public:
  JwtVerifier() = default;
  JwtVerifier(JwtVerifier&&) = default;
  JwtVerifier& operator=(JwtVerifier&&) = default;

  // Trusts `public_key` for tokens whose `kid` equals its RFC 7638
  // thumbprint, and for tokens without `kid`.
  absl::Status AddKey(common::EvpPkeyPtr public_key);
  bool empty() const { return keys_.empty(); }

  // InvalidArgument for malformed tokens; Unauthenticated when the
  // signature, algorithm, key or a time/issuer claim does not check out.
  absl::StatusOr<VerifiedJwt> Verify(absl::string_view compact, absl::Time now,
                                     const JwtValidationOptions& options) const;

 private:
  struct TrustedKey {
    common::EvpPkeyPtr key;
    JwsAlgorithm alg;
    std::string kid;
  };
  std::vector<TrustedKey> keys_;
};

}  // namespace kbs::jose

#endif  // KBS_COMMON_JOSE_JWT_H_
