// AMD Key Distribution Service client (evidence-formats.md §1.4):
//   GET <base>/vcek/v1/<Product>/<hwid hex>?[fmcSPL=..&]blSPL=..&teeSPL=..&snpSPL=..&ucodeSPL=..
//   GET <base>/vcek/v1/<Product>/cert_chain   (ASK, ARK; PEM)
//   GET <base>/vlek/v1/<Product>/cert_chain   (ASVK, ARK; PEM)
//   GET <base>/vcek/v1/<Product>/crl          (ARK-signed CRL, DER)
// KDS allows about one request per 10 s per client address and answers 429
// beyond, so requests are serialized and spaced by `min_interval`; 429 and
// 5xx answers are retried with backoff (honoring Retry-After); no call waits
// longer than the caller's timeout. What it fetches is kept in the
// directory cache, so each certificate is fetched once.
#ifndef KBS_VERIFIER_SNP_KDS_H_
#define KBS_VERIFIER_SNP_KDS_H_

#include <memory>
#include <mutex>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/http_client.h"
#include "verifier/snp/collateral.h"

namespace kbs::verifier::snp {

class KdsCollateral final : public CollateralSource {
 public:
  struct Options {
    std::string base_url = "https://kdsintf.amd.com";
    absl::Duration min_interval = absl::Seconds(10);
    common::HttpClientOptions http;
  };
  // `cache` (may be null) receives every certificate fetched.
  KdsCollateral(Options options, DirectoryCollateral* cache)
      : options_(std::move(options)), cache_(cache) {}

  absl::StatusOr<std::string> GetVcek(const VcekRequest& request, absl::Duration timeout) override;
  absl::StatusOr<ChainCollateral> GetChain(Product product, SignerType signer,
                                           absl::Duration timeout) override;

  // Requests sent to KDS so far (for tests and metrics).
  int requests_sent() const;

 private:
  // GET `target` with rate limiting and retries; the body on 200, NotFound on
  // 404, Unavailable when KDS does not answer 200 before `deadline`.
  absl::StatusOr<std::string> Fetch(const std::string& target, absl::Time deadline);

  Options options_;
  DirectoryCollateral* cache_;
  // One request at a time; waiters give up at their deadline.
  mutable std::timed_mutex mu_;
  std::unique_ptr<common::HttpClient> http_;
  absl::Time next_request_ = absl::InfinitePast();
  int requests_sent_ = 0;
};

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_KDS_H_
