// Where AMD certificates come from when the evidence does not carry them:
// an offline directory (which also caches what was fetched) and AMD's Key
// Distribution Service (kds.h). The directory layout, per product
// (Milan, Genoa, Turin):
//   <dir>/<Product>/cert_chain.pem        ASK and ARK (KDS /vcek/v1/<Product>/cert_chain)
//   <dir>/<Product>/vlek_cert_chain.pem   ASVK and ARK (KDS /vlek/v1/<Product>/cert_chain)
//   <dir>/<Product>/crl.der               ARK-signed CRL (KDS /vcek/v1/<Product>/crl)
//   <dir>/<Product>/vcek/<hwid hex>/<REPORTED_TCB as 16 hex digits>.der
// Any PEM bundle holding ASK, ARK and ASVK together (as AMD ships them) may
// serve as cert_chain.pem.
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

struct ChainCollateral {
  std::vector<std::string> certs_der;  // ASK / ASVK / ARK
  std::vector<std::string> crls_der;
};

// Thread-safe.
class CollateralSource {
 public:
  virtual ~CollateralSource() = default;
  // The DER VCEK for `request`. NotFound when this source does not have it;
  // Unavailable when it cannot answer within `timeout`.
  virtual absl::StatusOr<std::string> GetVcek(const VcekRequest& request,
                                              absl::Duration timeout) = 0;
  // AMD's intermediate and root certificates (and CRLs) for `product` and
  // signer type. NotFound / Unavailable as above.
  virtual absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                                   absl::Duration timeout) = 0;
};

// The offline directory. Reads are cached in memory; Store* write through
// (used to keep what the KDS fetcher got).
class DirectoryCollateral final : public CollateralSource {
 public:
  explicit DirectoryCollateral(std::string dir) : dir_(std::move(dir)) {}

  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Duration timeout) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Duration timeout) override;

  absl::Status StoreVcek(const VcekRequest& request, absl::string_view der);
  absl::Status StoreChain(Product product, SignerType signer, absl::string_view pem);
  absl::Status StoreCrl(Product product, absl::string_view der);

  static std::string VcekRelativePath(const VcekRequest& request);

 private:
  std::string dir_;
};

// Tries each source in order; the first answer other than NotFound wins.
class ChainedCollateral final : public CollateralSource {
 public:
  explicit ChainedCollateral(std::vector<CollateralSource*> sources)
      : sources_(std::move(sources)) {}
  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Duration timeout) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Duration timeout) override;

 private:
  std::vector<CollateralSource*> sources_;
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_COLLATERAL_H_
