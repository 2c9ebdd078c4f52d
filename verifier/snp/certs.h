// AMD SEV-SNP certificates (evidence-formats.md §1.4): the VCEK/VLEK that
// signs reports, its chain to the AMD Root Key (ARK -> ASK -> VCEK, or
// ARK -> ASVK -> VLEK; RSASSA-PSS), and the ARKs this KBS trusts, pinned per
// product by the SHA-256 fingerprint of their DER encoding.
#ifndef KBS_VERIFIER_SNP_CERTS_H_
#define KBS_VERIFIER_SNP_CERTS_H_

#include <map>
#include <memory>
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

// True when a VEK's TCB extensions equal a report's TCB: bootloader, TEE,
// SNP and microcode, and on Turin the FMC too, which a Turin VEK must carry.
bool VekTcbMatches(const TcbVersion& vek, const TcbVersion& reported, Product product);

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

// A certificate shared between cached chains (reference-counted by OpenSSL).
using SharedX509 = std::shared_ptr<const X509>;
SharedX509 ShareX509(const X509* cert);

// AMD's CA certificates, told apart as AMD names them: the ARK is
// self-signed; an ASVK's common name says VLEK (SEV-VLEK-<Product>), an
// ASK's does not (SEV-<Product>).
enum class AmdCaRole { kArk, kAsk, kAsvk };
AmdCaRole CaRoleOf(const X509* cert);
// The intermediate a signer type needs: ASK for a VCEK, ASVK for a VLEK.
AmdCaRole IntermediateRole(SignerType signer);

// Builds and checks VEK <- ASK|ASVK <- ARK for `product` at time `at`: the ARK
// pinned and self-signed, each link's signature, every validity window, the
// intermediate's role (ASK for a VCEK, ASVK for a VLEK), and revocation by
// any ARK-signed CRL given. Unauthenticated naming the failed link.
// On success returns when the whole chain is valid, and its CA
// certificates.
struct ChainValidity {
  absl::Time not_before;  // the latest notBefore
  absl::Time not_after;   // the earliest notAfter
  SharedX509 ark;
  SharedX509 intermediate;  // ASK or ASVK
  std::string ark_sha256;   // raw; names the ARK whose CRL applies
};
absl::StatusOr<ChainValidity> VerifyVekChain(const VekCertificate& vek, Product product,
                                             const AmdCertificates& certs,
                                             const TrustAnchors& anchors, absl::Time at);

// A bundle of AMD CA certificates as KDS's cert_chain serves it, checked
// for `product` and `signer`: a pinned, self-signed ARK and an intermediate
// of the signer's role signed by it, both valid at `at` when given.
// Unauthenticated naming what is missing or wrong.
struct AmdCaChain {
  SharedX509 ark;
  SharedX509 intermediate;
};
absl::StatusOr<AmdCaChain> CheckCaBundle(const std::vector<common::X509Ptr>& certs, Product product,
                                         SignerType signer, const TrustAnchors& anchors,
                                         std::optional<absl::Time> at);

// An ARK's CRL (KDS /vcek/v1/<Product>/crl) whose signature was checked.
// Its entries revoke what the ARK issued (ASKs, ASVKs) for good, so they
// apply even when the CRL is past its nextUpdate; a CRL past nextUpdate is
// stale, and a fresher one is looked for.
struct ArkCrl {
  std::shared_ptr<const X509_CRL> crl;
  std::string sha256;  // of the DER: tells CRLs apart
  absl::Time this_update;
  absl::Time next_update;  // InfiniteFuture when the CRL has none
  bool CurrentAt(absl::Time at) const { return at < next_update; }
};
// InvalidArgument when `der` is not one CRL; Unauthenticated when `ark` did
// not sign it.
absl::StatusOr<std::shared_ptr<const ArkCrl>> ParseArkCrl(absl::string_view der, const X509* ark);
// thisUpdate and nextUpdate of a DER CRL without checking its signature
// (to pick the freshest of several); InvalidArgument when it is not a CRL.
absl::StatusOr<std::pair<absl::Time, absl::Time>> CrlUpdateTimes(absl::string_view der);

// Unauthenticated when `crl` (signed by chain.ark: see ParseArkCrl) revokes
// the chain's intermediate or the VEK.
absl::Status CheckNotRevoked(const X509_CRL* crl, const VekCertificate& vek,
                             const ChainValidity& chain);

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_CERTS_H_
