#include "verifier/snp/kds.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/x509.h"

namespace kbs::verifier::snp {

// KDS pacing is about wall-clock time between requests to a remote service,
// not a security decision, so it uses the real clock.
absl::StatusOr<std::string> KdsCollateral::Fetch(const std::string& target, absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!lock.try_lock_for(
          absl::ToChronoNanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration())))) {
    return absl::UnavailableError(
        "AMD KDS is busy with another request past this attestation's deadline");
  }
  absl::Duration backoff = options_.min_interval;
  absl::Status last = absl::UnavailableError("AMD KDS did not answer");
  while (true) {
    absl::Time start = std::max(absl::Now(), next_request_);
    if (start > deadline) {
      return absl::UnavailableError(
          absl::StrCat("AMD KDS rate limit: the next request may be sent in ",
                       absl::FormatDuration(next_request_ - absl::Now()),
                       ", after this attestation's deadline (", last.message(), ")"));
    }
    absl::SleepFor(start - absl::Now());
    next_request_ = absl::Now() + options_.min_interval;
    if (http_ == nullptr) {
      common::HttpClientOptions http_options = options_.http;
      http_options.timeout = std::min(http_options.timeout, deadline - absl::Now());
      KBS_ASSIGN_OR_RETURN(http_, common::HttpClient::Create(options_.base_url, http_options));
    }
    ++requests_sent_;
    auto result = http_->Send("GET", target, "");
    if (result.ok() && result->status == 200) return result->body;
    if (result.ok() && result->status == 404) {
      return absl::NotFoundError(absl::StrCat("AMD KDS has no ", target));
    }
    if (!result.ok()) {
      http_.reset();
      last = result.status();
    } else if (result->status == 429 || result->status >= 500) {
      last = absl::UnavailableError(absl::StrCat("AMD KDS answered ", result->status));
      int64_t retry_after = 0;
      if (absl::SimpleAtoi(result->Header("retry-after"), &retry_after) && retry_after > 0) {
        backoff = std::max(backoff, absl::Seconds(std::min<int64_t>(retry_after, 3600)));
      }
    } else {
      return absl::FailedPreconditionError(
          absl::StrCat("AMD KDS answered ", result->status, " for ", target));
    }
    KBS_LOG(kWarning, "KDS ", target, ": ", last.message(), "; retrying in ",
            absl::FormatDuration(backoff));
    next_request_ = std::max(next_request_, absl::Now() + backoff);
    backoff = std::min(backoff * 2, absl::Minutes(10));
  }
}

absl::StatusOr<std::string> KdsCollateral::GetVcek(const VcekRequest& request,
                                                   absl::Duration timeout) {
  const TcbVersion& t = request.tcb;
  std::string query;
  if (request.product == Product::kTurin)
    absl::StrAppend(&query, "fmcSPL=", t.fmc.value_or(0), "&");
  absl::StrAppend(&query, "blSPL=", t.bootloader, "&teeSPL=", t.tee, "&snpSPL=", t.snp,
                  "&ucodeSPL=", t.microcode);
  std::string hwid = request.product == Product::kTurin ? request.hwid.substr(0, 8) : request.hwid;
  std::string target = absl::StrCat("/vcek/v1/", ProductName(request.product), "/",
                                    common::HexEncode(hwid), "?", query);
  KBS_ASSIGN_OR_RETURN(std::string der, Fetch(target, absl::Now() + timeout));
  if (!common::ParseDerCertificate(common::AsSpan(der)).ok()) {
    return absl::UnavailableError("AMD KDS returned a VCEK that is not a DER certificate");
  }
  if (cache_ != nullptr) {
    if (absl::Status s = cache_->StoreVcek(request, der); !s.ok()) {
      KBS_LOG(kWarning, "cannot cache VCEK: ", s.message());
    }
  }
  return der;
}

absl::StatusOr<ChainCollateral> KdsCollateral::GetChain(Product product, SignerType signer,
                                                        absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  const char* kind = signer == SignerType::kVlek ? "vlek" : "vcek";
  KBS_ASSIGN_OR_RETURN(
      std::string pem,
      Fetch(absl::StrCat("/", kind, "/v1/", ProductName(product), "/cert_chain"), deadline));
  auto certs = common::ParsePemCertificates(pem);
  if (!certs.ok()) return absl::UnavailableError("AMD KDS cert_chain is not a PEM bundle");
  ChainCollateral out;
  for (const common::X509Ptr& c : *certs) {
    KBS_ASSIGN_OR_RETURN(std::string der, common::CertificateDer(c.get()));
    out.certs_der.push_back(std::move(der));
  }
  if (cache_ != nullptr) (void)cache_->StoreChain(product, signer, pem);
  // The CRL is best effort: a chain without one still verifies.
  auto crl = Fetch(absl::StrCat("/vcek/v1/", ProductName(product), "/crl"), deadline);
  if (crl.ok() && common::ParseCrl(*crl).ok()) {
    out.crls_der.push_back(*crl);
    if (cache_ != nullptr) (void)cache_->StoreCrl(product, *crl);
  }
  return out;
}

int KdsCollateral::requests_sent() const {
  std::lock_guard<std::timed_mutex> lock(mu_);
  return requests_sent_;
}

}  // namespace kbs::verifier::snp
