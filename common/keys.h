// Asymmetric key helpers over EVP_PKEY: generation, PEM import/export, and
// the raw coordinates JOSE needs. Thread-safe.
#ifndef KBS_COMMON_KEYS_H_
#define KBS_COMMON_KEYS_H_

#include <functional>
#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/bytes.h"
#include "common/openssl_util.h"

namespace kbs::common {

enum class EcCurve { kP256, kP384, kP521 };

// "P-256", "P-384", "P-521" (JOSE names).
absl::StatusOr<EcCurve> ParseEcCurve(absl::string_view jose_name);
absl::string_view EcCurveJoseName(EcCurve curve);
// Coordinate size in bytes: 32, 48, 66.
size_t EcCoordinateSize(EcCurve curve);

absl::StatusOr<EvpPkeyPtr> GenerateEcKey(EcCurve curve);
absl::StatusOr<EvpPkeyPtr> GenerateRsaKey(int bits);
absl::StatusOr<EvpPkeyPtr> GenerateEd25519Key();

// Curve of an EC key; InvalidArgument for other key types or curves.
absl::StatusOr<EcCurve> GetEcCurve(const EVP_PKEY* key);

struct EcPoint {
  std::string x;  // big-endian, fixed size
  std::string y;
};
absl::StatusOr<EcPoint> GetEcPublicPoint(const EVP_PKEY* key);
// Builds a public key from affine coordinates; InvalidArgument if the point
// is not on the curve.
absl::StatusOr<EvpPkeyPtr> EcPublicKeyFromPoint(EcCurve curve, absl::string_view x,
                                                absl::string_view y);

struct RsaPublicNumbers {
  std::string n;  // big-endian, no leading zeros
  std::string e;
};
absl::StatusOr<RsaPublicNumbers> GetRsaPublicNumbers(const EVP_PKEY* key);
absl::StatusOr<EvpPkeyPtr> RsaPublicKeyFromNumbers(absl::string_view n, absl::string_view e);
// Raw 32-byte Ed25519 public key.
absl::StatusOr<std::string> GetEd25519PublicKey(const EVP_PKEY* key);

// PEM (PKCS#8 for private keys, SubjectPublicKeyInfo for public keys).
absl::StatusOr<std::string> PrivateKeyToPem(const EVP_PKEY* key);
absl::StatusOr<std::string> PublicKeyToPem(const EVP_PKEY* key);
absl::StatusOr<EvpPkeyPtr> PrivateKeyFromPem(absl::string_view pem);
// Reads a private key PEM (mode 0600), or creates one there with `generate`
// if the file does not exist. `what` names the key in errors.
absl::StatusOr<EvpPkeyPtr> LoadOrCreatePrivateKey(
    const std::string& path, const std::function<absl::StatusOr<EvpPkeyPtr>()>& generate,
    absl::string_view what);
absl::StatusOr<EvpPkeyPtr> PublicKeyFromPem(absl::string_view pem);

// ECDH shared secret (raw x-coordinate) between our private and their public
// key, which must be on the same curve.
absl::StatusOr<SecretBytes> EcdhDerive(EVP_PKEY* private_key, EVP_PKEY* peer_public);

}  // namespace kbs::common

#endif  // KBS_COMMON_KEYS_H_
