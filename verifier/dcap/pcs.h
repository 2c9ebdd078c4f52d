// Intel Provisioning Certification Service client (PCS API v4), also usable
// against a PCCS, which serves the same paths:
//   GET <base>/{tdx|sgx}/certification/v4/tcb?fmspc=<12 hex>
//       body {"tcbInfo":{..},"signature":hex}; header TCB-Info-Issuer-Chain
//       (older servers: SGX-TCB-Info-Issuer-Chain), URL-encoded PEM
//   GET <base>/{tdx|sgx}/certification/v4/qe/identity
//       body {"enclaveIdentity":{..},"signature":hex};
//       header SGX-Enclave-Identity-Issuer-Chain
//   GET <base>/sgx/certification/v4/pckcrl?ca=platform|processor&encoding=der
//       (for TDX too); DER, or PEM/hex text from a PCCS or older servers
//   GET <root_ca_crl_url>   Intel SGX Root CA CRL, maybe on another host
//       (PCCS: <base>/sgx/certification/v4/rootcacrl, maybe hex text)
// Requests are serialized and spaced by `min_interval`; 429 and 5xx answers
// and transport failures are retried with doubling backoff, honoring
// Retry-After (delay-seconds or an HTTP-date, judged by the injected clock);
// every attempt, name resolution included, ends by the caller's deadline,
// and no call waits past it. A
// collateral set is kept in memory until the earliest nextUpdate of its
// items (by the injected clock) and written to the directory cache.
// Nothing here verifies a signature: VerifyCollateral does.
#ifndef KBS_VERIFIER_DCAP_PCS_H_
#define KBS_VERIFIER_DCAP_PCS_H_

#include <atomic>
#include <map>
#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <tuple>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/http_client.h"
#include "verifier/dcap/collateral.h"

namespace kbs::verifier::dcap {

// Thread-safe.
class PcsCollateral final : public CollateralSource {
 public:
  struct Options {
    // http(s)://HOST[:PORT][/PATH PREFIX] of Intel PCS or a PCCS.
    std::string base_url = "https://api.trustedservices.intel.com";
    // Full URL of the Intel SGX Root CA CRL; empty: not fetched.
    std::string root_ca_crl_url =
        "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
    // Intel PCS subscription key (header Ocp-Apim-Subscription-Key), sent to
    // `base_url` only; empty: none. Never logged.
    std::string api_key;
    // Least time between two requests.
    absl::Duration min_interval = absl::ZeroDuration();
    // First wait after a failed attempt; doubles up to 10 minutes.
    absl::Duration retry_backoff = absl::Seconds(1);
    // Only sets whose signatures and chains verify against these roots (at
    // the clock's time) are cached and written to the directory; others are
    // Unavailable, so the directory's copy stays usable. Null: not checked.
    const RootAnchors* anchors = nullptr;
    // Sets are fetched again after this even before their nextUpdate, so new
    // CRL entries take effect (Intel's PCCS refreshes daily).
    absl::Duration refresh_interval = absl::Hours(24);
    // `timeout` is unused (each request ends by the caller's deadline); a
    // resend on a closed kept-alive connection is an attempt like any other,
    // made by the retry loop, and connections idle for more than a few
    // seconds are not reused.
    common::HttpClientOptions http;
  };

  // `cache` (may be null) receives every collateral set fetched; `clock`
  // (not null) judges the in-memory cache's expiry. Both must outlive the
  // fetcher. InvalidArgument for a malformed URL or a null clock.
  static absl::StatusOr<std::unique_ptr<PcsCollateral>> Create(Options options,
                                                               DirectoryCollateral* cache,
                                                               const common::Clock* clock);

  // TCB info and QE identity (required: NotFound when the server has none,
  // e.g. "Intel PCS has no TCB info for FMSPC ..."), the PCK CRL of
  // `request.ca` and the root CA CRL (optional: left empty on 404).
  // Unavailable, naming the item and the last answer, when the server does
  // not answer 200/404 before `timeout` or sends something malformed;
  // InvalidArgument when `request.fmspc` is not 6 bytes.
  absl::StatusOr<Collateral> Get(const CollateralRequest& request, absl::Duration timeout) override;

  // HTTP requests sent so far (for tests and metrics).
  int requests_sent() const { return requests_sent_.load(); }

 private:
  struct Endpoint {
    std::string origin;  // scheme://host[:port]
    std::unique_ptr<common::HttpClient> client;
  };
  struct CacheEntry {
    Collateral collateral;
    absl::Time expires;
  };
  using CacheKey = std::tuple<DcapTee, std::string, PckCa>;

  PcsCollateral(Options options, DirectoryCollateral* cache, const common::Clock* clock)
      : options_(std::move(options)), cache_(cache), clock_(clock) {}

  std::optional<Collateral> Lookup(const CacheKey& key);
  void Remember(const CacheKey& key, const Collateral& collateral);
  // Get after a cache miss: takes the fetch lock, asks PCS, verifies, keeps.
  absl::StatusOr<Collateral> FetchAndRemember(const CollateralRequest& request, const CacheKey& key,
                                              absl::Time deadline);
  absl::StatusOr<Collateral> FetchAll(const CollateralRequest& request, absl::Time deadline);
  // GET `target` with pacing and retries: the result on 200 or 404;
  // Unavailable naming `what` otherwise. Called with fetch_mu_ held.
  absl::StatusOr<common::HttpResult> Fetch(Endpoint& endpoint, const std::string& target,
                                           bool send_api_key, absl::string_view what,
                                           absl::Time deadline);

  Options options_;
  DirectoryCollateral* cache_;
  const common::Clock* clock_;
  std::string base_path_;  // path prefix of base_url, no trailing '/'
  std::string root_ca_crl_target_;

  // One request at a time; waiters give up at their deadline.
  std::timed_mutex fetch_mu_;
  Endpoint pcs_;       // guarded by fetch_mu_
  Endpoint root_crl_;  // guarded by fetch_mu_; no origin when not fetched
  absl::Time next_request_ = absl::InfinitePast();  // guarded by fetch_mu_
  std::atomic<int> requests_sent_{0};

  std::mutex cache_mu_;
  std::map<CacheKey, CacheEntry> memory_;  // guarded by cache_mu_
};

namespace internal {
// RFC 3986 percent-decoding ('+' stays '+'); InvalidArgument on a malformed
// escape.
absl::StatusOr<std::string> PercentDecode(absl::string_view in);
// The DER of a CRL served as DER, PEM, or hex text of DER; InvalidArgument
// when it is none of these.
absl::StatusOr<std::string> CrlToDer(absl::string_view body);
}  // namespace internal

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_PCS_H_
