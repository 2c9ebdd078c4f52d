// X.509 helpers over OpenSSL for vendor certificate chains (AMD ARK/ASK/VCEK,
// later Intel PCK): parsing, fingerprints, signature links (any algorithm,
// including RSASSA-PSS), validity at an injected time, custom extensions and
// CRLs. Chains are checked link by link by the callers, who know each
// vendor's rules; no certificate store or system roots are involved.
#ifndef KBS_COMMON_X509_H_
#define KBS_COMMON_X509_H_

#include <openssl/x509.h>

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "absl/types/span.h"
#include "common/openssl_util.h"

namespace kbs::common {

using X509CrlPtr = std::unique_ptr<X509_CRL, OpenSslDeleter<X509_CRL, X509_CRL_free>>;

// InvalidArgument when the bytes are not exactly one DER certificate.
absl::StatusOr<X509Ptr> ParseDerCertificate(absl::Span<const uint8_t> der);
// Every certificate of a PEM bundle, in order; InvalidArgument if none.
absl::StatusOr<std::vector<X509Ptr>> ParsePemCertificates(absl::string_view pem);
absl::StatusOr<std::string> CertificateDer(const X509* cert);
// SHA-256 of the DER encoding (raw bytes).
absl::StatusOr<std::string> CertificateSha256(const X509* cert);
std::string CommonName(const X509* cert);
// True when `cert`'s signature verifies with `issuer`'s public key.
bool IsSignedBy(const X509* cert, const X509* issuer);
// OK when `at` is inside [notBefore, notAfter]; Unauthenticated naming
// `what` and the boundary otherwise.
absl::Status CheckValidity(const X509* cert, absl::Time at, absl::string_view what);
absl::Time NotBefore(const X509* cert);
// InfinitePast when `t` is null or malformed.
absl::Time FromAsn1Time(const ASN1_TIME* t);
absl::Time NotAfter(const X509* cert);

// The value (contents of the extnValue OCTET STRING) of the extension
// `oid` (dotted form), or nullopt when absent.
std::optional<std::string> ExtensionValue(const X509* cert, absl::string_view oid);
// Decoders for extension values.
absl::StatusOr<int64_t> DecodeDerInteger(absl::string_view der);
absl::StatusOr<std::string> DecodeDerIa5String(absl::string_view der);

absl::StatusOr<X509CrlPtr> ParseCrl(absl::string_view der_or_pem);
bool IsCrlSignedBy(const X509_CRL* crl, const X509* issuer);
bool IsRevoked(const X509_CRL* crl, const X509* cert);

}  // namespace kbs::common

#endif  // KBS_COMMON_X509_H_
