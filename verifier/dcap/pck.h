// Intel PCK certificates and their chain (evidence-formats.md §2.3-2.4):
// the SGX extension (OID 1.2.840.113741.1.13.1) decoded with OpenSSL's ASN.1
// parser, and PCK <- PCK Platform/Processor CA <- Intel SGX Root CA checked
// with OpenSSL's path validation at an injected time, the root pinned by the
// SHA-256 fingerprint of its DER encoding, revocation by the CRLs given.
#ifndef KBS_VERIFIER_DCAP_PCK_H_
#define KBS_VERIFIER_DCAP_PCK_H_

#include <array>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/x509.h"

namespace kbs::verifier::dcap {

// The Intel SGX Root CA (CN=Intel SGX Root CA, 2018-05-21..2049-12-31).
inline constexpr absl::string_view kIntelSgxRootCaSha256 =
    "44a0196b2b99f889b8e149e95b807a350e7424964399e885a7cbb8ccfab674d3";

// The roots this verifier trusts, by the SHA-256 of their DER encoding.
class RootAnchors final {
 public:
  // Intel's production root only.
  static RootAnchors IntelDefault();
  // Adds a fingerprint (64 hex digits).
  absl::Status Add(absl::string_view sha256_hex);
  bool IsTrusted(const X509* root) const;

 private:
  std::set<std::string> pinned_;  // raw SHA-256
};

enum class PckCa { kPlatform, kProcessor };
absl::string_view PckCaName(PckCa ca);  // "platform", "processor"

struct PckExtensions {
  std::string ppid;                    // 16
  std::array<uint8_t, 16> comp_svn{};  // SGX TCB components 1..16
  uint16_t pce_svn = 0;
  std::string cpu_svn;  // 16
  std::string pce_id;   // 2
  std::string fmspc;    // 6
  int sgx_type = 0;     // 0 Standard, 1 Scalable, 2 Scalable with Integrity
  std::optional<std::string> platform_instance_id;  // 16, Platform-CA PCKs
  std::optional<bool> dynamic_platform, cached_keys, smt_enabled;
};

// Decodes the SGX extension's DER value. InvalidArgument naming the member
// that is missing or mistyped.
absl::StatusOr<PckExtensions> ParsePckExtensions(absl::string_view der);

// A parsed quote certificate chain: leaf, intermediate, root. Not verified.
struct PckChain {
  common::X509Ptr pck;
  common::X509Ptr intermediate;
  common::X509Ptr root;
  PckExtensions extensions;
  PckCa ca = PckCa::kPlatform;
};

// Parses the PEM chain of a quote (leaf first, as Intel's QE writes it; the
// order is checked by subject/issuer). InvalidArgument for anything but
// three certificates forming one path, or a leaf without the SGX extension.
absl::StatusOr<PckChain> ParsePckChain(absl::string_view pem);

struct ChainWindow {
  absl::Time not_before;  // latest notBefore on the chain
  absl::Time not_after;   // earliest notAfter
};

// Verifies `leaf` <- `intermediates` <- a pinned, self-signed root at `at`
// (path, signatures, CA constraints, validity windows), without CRLs.
// Unauthenticated with OpenSSL's reason and the failing certificate.
absl::StatusOr<ChainWindow> VerifyChain(const X509* leaf,
                                        const std::vector<const X509*>& intermediates,
                                        const X509* root, const RootAnchors& anchors, absl::Time at,
                                        absl::string_view what);

// A CRL checked against its issuer at `at`: signature, thisUpdate <= at <=
// nextUpdate. Unauthenticated naming `what` otherwise.
absl::Status CheckCrl(const X509_CRL* crl, const X509* issuer, absl::Time at,
                      absl::string_view what);
absl::Time CrlThisUpdate(const X509_CRL* crl);
absl::Time CrlNextUpdate(const X509_CRL* crl);  // InfiniteFuture when absent

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_PCK_H_
