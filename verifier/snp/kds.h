// AMD Key Distribution Service client (evidence-formats.md §1.4):
//   GET <base>/vcek/v1/<Product>/<hwid hex>?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..
//   GET <base>/vcek/v1/<Product>/cert_chain   (ASK, ARK; PEM)
//   GET <base>/vlek/v1/<Product>/cert_chain   (ASVK, ARK; PEM)
//   GET <base>/vcek/v1/<Product>/crl          (ARK-signed CRL, DER)
// KDS allows about one request per 10 s per client address and answers 429
// beyond, so requests are serialized and spaced by `min_interval` (a retry
// is a request like any other); 429 and 5xx answers and transport failures
// are retried with backoff (honoring Retry-After); nothing waits past the
// caller's deadline: a request whose turn comes later is not sent.
//
// Answers are checked before they are kept (in memory, and in the
// directory cache when there is one), so a bad answer is not kept for good:
// a cert_chain must hold a pinned ARK and an intermediate of the right role
// signed by it; a VCEK must be one, for the chip and TCB asked, signed by
// the product's ASK (a VCEK that arrives before its chain is known is
// handed out but kept only in memory until the chain confirms it); a CRL
// must be signed by the ARK. A CRL is fetched again when the one held is
// past its nextUpdate.
#ifndef KBS_VERIFIER_SNP_KDS_H_
#define KBS_VERIFIER_SNP_KDS_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "verifier/snp/certs.h"
#include "verifier/snp/collateral.h"

namespace kbs::verifier::snp {

// Thread-safe.
class KdsCollateral final : public CollateralSource {
 public:
  struct Options {
    std::string base_url = "https://kdsintf.amd.com";
    absl::Duration min_interval = absl::Seconds(10);
    // The first wait after a failed request (at least min_interval); it
    // doubles up to 10 minutes.
    absl::Duration retry_backoff = absl::Seconds(1);
    // The ARKs answers must chain to before they are kept.
    TrustAnchors anchors = TrustAnchors::AmdDefaults();
    // Judges the validity windows of answers before they are kept (not
    // owned); null: left to the verifier, which checks them at every use.
    const common::Clock* clock = nullptr;
    // `timeout` is unused (each request ends by the caller's deadline);
    // connections idle for more than a few seconds are not reused.
    common::HttpClientOptions http;
  };
  // `cache` (may be null) receives every checked answer and is looked at
  // again once a request's turn comes, so that concurrent callers fetch
  // once.
  KdsCollateral(Options options, DirectoryCollateral* cache);

  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Time deadline) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Time deadline) override;
  absl::StatusOr<std::string> GetCrl(Product product, absl::Time at, absl::Time deadline) override;

  // Requests sent to KDS so far (for tests and metrics).
  int requests_sent() const { return requests_sent_.load(); }

 private:
  // The requests themselves: they wait for the lock, KDS's pacing and the
  // network, up to the deadline. The public ones run them through
  // common::RunBlocking, so on an HTTP fiber the request thread keeps
  // serving other attestations meanwhile.
  absl::StatusOr<std::string> GetVcekNow(const VcekRequest& request, absl::Time deadline);
  absl::StatusOr<ChainCollateral> GetChainNow(Product product, SignerType signer,
                                              absl::Time deadline);
  absl::StatusOr<std::string> GetCrlNow(Product product, absl::Time at, absl::Time deadline);

  struct KnownChain {
    ChainCollateral certs;
    AmdCaChain ca;
  };
  struct PendingVcek {
    VcekRequest request;
    std::string der;
  };

  // GET `target` with pacing and retries; the body on 200, NotFound on 404,
  // Unavailable when KDS does not answer 200 before `deadline`. Called with
  // mu_ held.
  absl::StatusOr<std::string> FetchLocked(const std::string& target, absl::Time deadline);
  // The checked chain for `product` and `signer` from memory or the cache
  // directory, if any. Called with mu_ held.
  const KnownChain* KnownChainLocked(Product product, SignerType signer, absl::Time deadline);
  // Checks `certs` as a chain for `product`/`signer` and keeps it (and
  // stores `pem` in the cache directory, unless empty); settles the pending
  // VCEKs it signs.
  absl::StatusOr<const KnownChain*> AdoptChainLocked(Product product, SignerType signer,
                                                     const std::vector<common::X509Ptr>& certs,
                                                     absl::string_view pem);
  // Keeps a VCEK that chains to `chain`; Unavailable when it does not.
  absl::Status AdoptVcekLocked(const VcekRequest& request, const std::string& der,
                               const VekCertificate& vek, const KnownChain& chain);
  std::optional<absl::Time> Now() const;

  Options options_;
  DirectoryCollateral* cache_;
  // One request at a time; waiters give up at their deadline. Guards
  // everything below but requests_sent_.
  std::timed_mutex mu_;
  std::unique_ptr<common::HttpClient> http_;
  absl::Time next_request_ = absl::InfinitePast();
  std::map<std::pair<Product, SignerType>, KnownChain> chains_;
  std::map<std::string, std::string> vceks_;    // checked, by relative path
  std::map<std::string, PendingVcek> pending_;  // VCEKs whose chain is not known yet
  std::map<Product, std::string> crls_;         // checked, DER
  std::atomic<int> requests_sent_{0};
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_KDS_H_
