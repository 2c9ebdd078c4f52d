// AMD SEV-SNP certificates (evidence-formats.md §1.4): the VCEK/VLEK that
// signs reports, its chain to the AMD Root Key (ARK -> ASK -> VCEK, or
// ARK -> ASVK -> VLEK; RSASSA-PSS), and the ARKs this KBS trusts, pinned per
// product by the SHA-256 fingerprint of their DER encoding.
#ifndef KBS_VERIFIER_SNP_CERTS_H_
#define KBS_VERIFIER_SNP_CERTS_H_

#include <map>
#include <optional>
#include <set>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/x509.h"
#include "verifier/snp/report.h"

namespace kbs::verifier::snp {

enum class SignerType { kVcek, kVlek };
absl::string_view SignerName(SignerType t);  // "vcek", "vlek"

// A VCEK or VLEK with its AMD extensions decoded (not yet verified).
struct VekCertificate {
  common::X509Ptr cert;
  SignerType type = SignerType::kVcek;
  std::string product_name;  // productName extension, e.g. "Milan-B0"
  std::optional<Product> product;
  TcbVersion tcb;      // blSPL, teeSPL, snpSPL, ucodeSPL (+ fmcSPL on Turin)
  std::string hwid;    // VCEK: raw chip id (64 bytes; 8 on Turin)
  std::string csp_id;  // VLEK: the cloud provider
};

// Decodes the extensions of a DER VCEK/VLEK. InvalidArgument when it is not
// one (no SPL extensions, both or neither of hwID/cspID, not EC P-384).
absl::StatusOr<VekCertificate> ParseVekCertificate(absl::string_view der);

// The ARKs trusted per product.
class TrustAnchors final {
 public:
  // AMD's production ARKs for Milan, Genoa and Turin.
  static TrustAnchors AmdDefaults();
  // Adds a fingerprint (64 hex digits) for `product`.
  absl::Status Add(Product product, absl::string_view sha256_hex);
  bool IsTrusted(Product product, const X509* ark) const;

 private:
  std::map<Product, std::set<std::string>> pinned_;  // raw SHA-256
};

// The AMD certificates available for one verification, from the evidence
// and the collateral sources.
struct AmdCertificates {
  std::vector<common::X509Ptr> candidates;  // ARKs, ASKs, ASVKs in any order
  std::vector<common::X509CrlPtr> crls;     // ARK-signed
};

// Builds and checks VEK <- ASK|ASVK <- ARK for `product` at time `at`: the ARK
// pinned and self-signed, each link's signature, every validity window, the
// intermediate's role (ASK for a VCEK, ASVK for a VLEK), and revocation by
// any ARK-signed CRL given. Unauthenticated naming the failed link.
// On success returns when the whole chain is valid.
struct ChainValidity {
  absl::Time not_before;  // the latest notBefore
  absl::Time not_after;   // the earliest notAfter
};
absl::StatusOr<ChainValidity> VerifyVekChain(const VekCertificate& vek, Product product,
                                             const AmdCertificates& certs,
                                             const TrustAnchors& anchors, absl::Time at);

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_CERTS_H_
