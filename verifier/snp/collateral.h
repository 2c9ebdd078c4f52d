// Where AMD certificates come from when the evidence does not carry them:
// an offline directory (which also caches what was fetched) and AMD's Key
// Distribution Service (kds.h). The directory layout, per product
// (Milan, Genoa, Turin):
//   <dir>/<Product>/cert_chain.pem        ASK and ARK (KDS /vcek/v1/<Product>/cert_chain)
//   <dir>/<Product>/vlek_cert_chain.pem   ASVK and ARK (KDS /vlek/v1/<Product>/cert_chain)
//   <dir>/<Product>/crl.der               ARK-signed CRL (KDS /vcek/v1/<Product>/crl)
//   <dir>/<Product>/vcek/<hwid hex>/<REPORTED_TCB as 16 hex digits>.der
// A chain is looked up by signer type: a VCEK chain in cert_chain.pem, then
// vlek_cert_chain.pem; a VLEK chain in vlek_cert_chain.pem, then
// cert_chain.pem. A file serves only if it holds an intermediate of the
// signer's role (an ASK for VCEKs, an ASVK for VLEKs), and only that role's
// certificates and the ARK are returned, so a VCEK chain never answers for a
// VLEK. A PEM bundle of ASK, ARK and ASVK together (as AMD ships them) may
// serve as either file.
#ifndef KBS_VERIFIER_SNP_COLLATERAL_H_
#define KBS_VERIFIER_SNP_COLLATERAL_H_

#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "verifier/snp/certs.h"
#include "verifier/snp/report.h"

namespace kbs::verifier::snp {

struct VcekRequest {
  Product product;
  std::string hwid;  // raw chip id (64 bytes; 8 on Turin)
  TcbVersion tcb;    // the report's REPORTED_TCB
};

// AMD's CA certificates for one product and signer type, DER: the
// intermediate (ASK for a VCEK, ASVK for a VLEK) and the ARK.
struct ChainCollateral {
  std::vector<std::string> certs_der;
};

// Thread-safe. `deadline` is real time: no call returns later than that
// (plus the time to read a local file).
class CollateralSource {
 public:
  virtual ~CollateralSource() = default;
  // The DER VCEK for `request`. NotFound when this source does not have it;
  // Unavailable when it cannot answer by `deadline`.
  virtual absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Time deadline) = 0;
  // AMD's intermediate and root certificates for `product` and signer type.
  // NotFound / Unavailable as above.
  virtual absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                                   absl::Time deadline) = 0;
  // The ARK's CRL for `product` (DER), the freshest this source has or can
  // get by `deadline`: a source that can fetch does so when what it holds
  // is past its nextUpdate at `at`. The answer may still be stale (callers
  // compare nextUpdate with `at`) and is not yet checked against the ARK.
  // NotFound / Unavailable as above.
  virtual absl::StatusOr<std::string> GetCrl(Product product, absl::Time at,
                                             absl::Time deadline) = 0;
};

// The offline directory; Store* write through (used to keep what the KDS
// fetcher got).
class DirectoryCollateral final : public CollateralSource {
 public:
  explicit DirectoryCollateral(std::string dir) : dir_(std::move(dir)) {}

  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Time deadline) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Time deadline) override;
  absl::StatusOr<std::string> GetCrl(Product product, absl::Time at, absl::Time deadline) override;

  absl::Status StoreVcek(const VcekRequest& request, absl::string_view der);
  // VCEK chains to cert_chain.pem, VLEK chains to vlek_cert_chain.pem.
  absl::Status StoreChain(Product product, SignerType signer, absl::string_view pem);
  absl::Status StoreCrl(Product product, absl::string_view der);

  static std::string VcekRelativePath(const VcekRequest& request);

 private:
  std::string dir_;
};

// Tries each source in order. VCEKs and chains: the first answer other than
// NotFound wins. CRLs: the first one current at `at` wins; failing that, the
// freshest stale one found (its entries still revoke), else the last error.
class ChainedCollateral final : public CollateralSource {
 public:
  explicit ChainedCollateral(std::vector<CollateralSource*> sources)
      : sources_(std::move(sources)) {}
  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Time deadline) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Time deadline) override;
  absl::StatusOr<std::string> GetCrl(Product product, absl::Time at, absl::Time deadline) override;

 private:
  std::vector<CollateralSource*> sources_;
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_COLLATERAL_H_
