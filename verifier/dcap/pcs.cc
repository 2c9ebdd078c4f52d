#include "verifier/dcap/pcs.h"

#include <openssl/err.h>
#include <openssl/x509.h>

#include <algorithm>
#include <initializer_list>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/fiber.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/x509.h"
#include "verifier/dcap/pck.h"

namespace kbs::verifier::dcap {
namespace internal {

absl::StatusOr<std::string> PercentDecode(absl::string_view in) {
  std::string out;
  out.reserve(in.size());
  for (size_t i = 0; i < in.size(); ++i) {
    if (in[i] != '%') {
      out.push_back(in[i]);
      continue;
    }
    if (i + 2 >= in.size()) {
      return absl::InvalidArgumentError(absl::StrCat("truncated percent escape at offset ", i));
    }
    auto nibble = [](char c) -> int {
      if (c >= '0' && c <= '9') return c - '0';
      if (c >= 'a' && c <= 'f') return c - 'a' + 10;
      if (c >= 'A' && c <= 'F') return c - 'A' + 10;
      return -1;
    };
    int hi = nibble(in[i + 1]), lo = nibble(in[i + 2]);
    if (hi < 0 || lo < 0) {
      return absl::InvalidArgumentError(absl::StrCat("bad percent escape at offset ", i));
    }
    out.push_back(static_cast<char>(hi * 16 + lo));
    i += 2;
  }
  return out;
}

absl::StatusOr<std::string> CrlToDer(absl::string_view body) {
  // DER: one whole CRL, nothing after it.
  {
    const unsigned char* p = reinterpret_cast<const unsigned char*>(body.data());
    common::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(body.size())));
    ERR_clear_error();
    if (crl != nullptr && p == reinterpret_cast<const unsigned char*>(body.data()) + body.size()) {
      return std::string(body);
    }
  }
  absl::string_view text = absl::StripAsciiWhitespace(body);
  std::string der;
  if (absl::StartsWith(text, "-----BEGIN")) {
    auto crl = common::ParseCrl(text);
    if (!crl.ok()) return absl::InvalidArgumentError("PEM text that is not a CRL");
    unsigned char* buf = nullptr;
    int len = i2d_X509_CRL(crl->get(), &buf);
    if (len <= 0) {
      ERR_clear_error();
      return absl::InvalidArgumentError("cannot re-encode the PEM CRL as DER");
    }
    der.assign(reinterpret_cast<const char*>(buf), static_cast<size_t>(len));
    OPENSSL_free(buf);
    return der;
  }
  auto decoded = common::HexDecode(text);
  if (!decoded.ok()) return absl::InvalidArgumentError("neither DER, PEM nor hex of a CRL");
  const unsigned char* p = reinterpret_cast<const unsigned char*>(decoded->data());
  common::X509CrlPtr crl(d2i_X509_CRL(nullptr, &p, static_cast<long>(decoded->size())));
  ERR_clear_error();
  if (crl == nullptr ||
      p != reinterpret_cast<const unsigned char*>(decoded->data()) + decoded->size()) {
    return absl::InvalidArgumentError("hex text that is not the DER of one CRL");
  }
  return *std::move(decoded);
}

}  // namespace internal

namespace {

constexpr size_t kMaxCachedSets = 256;
// An attempt with less time than this before the deadline is not made.
constexpr absl::Duration kMinAttempt = absl::Milliseconds(20);
// Servers close idle connections after a few seconds (a Node.js PCCS after
// 5): older ones are not reused, so that a request does not fail on one.
constexpr absl::Duration kMaxIdle = absl::Seconds(4);

struct SplitUrl {
  std::string origin;  // scheme://host[:port]
  std::string path;    // "" or "/..."
};

absl::StatusOr<SplitUrl> SplitHttpUrl(absl::string_view url) {
  size_t scheme_end = url.find("://");
  if (scheme_end == absl::string_view::npos) {
    return absl::InvalidArgumentError(absl::StrCat("not an http(s) URL: ", url));
  }
  size_t slash = url.find('/', scheme_end + 3);
  SplitUrl out;
  out.origin = std::string(url.substr(0, slash));
  if (slash != absl::string_view::npos) out.path = std::string(url.substr(slash));
  return out;
}

absl::StatusOr<std::unique_ptr<common::HttpClient>> NewClient(const std::string& origin,
                                                              common::HttpClientOptions options) {
  // Each attempt, a resend included, is made (and paced) by Fetch.
  options.resend_on_stale_connection = false;
  options.max_idle = std::min(options.max_idle, kMaxIdle);
  return common::HttpClient::Create(origin, options);
}

// The first present header of `names`, percent-decoded; Unavailable naming
// `what` when none is there or it is not a PEM certificate list.
absl::StatusOr<std::string> IssuerChain(const common::HttpResult& result,
                                        std::initializer_list<absl::string_view> names,
                                        absl::string_view what) {
  std::string raw;
  for (absl::string_view name : names) {
    raw = result.Header(absl::AsciiStrToLower(name));
    if (!raw.empty()) break;
  }
  if (raw.empty()) {
    return absl::UnavailableError(
        absl::StrCat("Intel PCS sent ", what, " without the ", *names.begin(), " header"));
  }
  auto pem = internal::PercentDecode(raw);
  if (!pem.ok() || !common::ParsePemCertificates(*pem).ok()) {
    return absl::UnavailableError(
        absl::StrCat("Intel PCS sent ", what, " with an issuer chain that is not URL-encoded PEM"));
  }
  return *std::move(pem);
}

// When a collateral set must be fetched again: the earliest nextUpdate of
// its items; InfinitePast when one cannot be read (then it is not kept).
absl::Time Expiry(const Collateral& c) {
  auto tcb = ParseTcbInfo(c.tcb_info);
  auto qe = ParseEnclaveIdentity(c.qe_identity);
  if (!tcb.ok() || !qe.ok()) return absl::InfinitePast();
  absl::Time expires = std::min(tcb->next_update, qe->next_update);
  for (const std::string* der : {&c.pck_crl, &c.root_ca_crl}) {
    if (der->empty()) continue;
    auto crl = common::ParseCrl(*der);
    if (!crl.ok()) return absl::InfinitePast();
    expires = std::min(expires, CrlNextUpdate(crl->get()));
  }
  return expires;
}

}  // namespace

absl::StatusOr<std::unique_ptr<PcsCollateral>> PcsCollateral::Create(Options options,
                                                                     DirectoryCollateral* cache,
                                                                     const common::Clock* clock) {
  if (clock == nullptr) return absl::InvalidArgumentError("PcsCollateral needs a clock");
  KBS_ASSIGN_OR_RETURN(SplitUrl base, SplitHttpUrl(options.base_url));
  std::unique_ptr<PcsCollateral> pcs(new PcsCollateral(std::move(options), cache, clock));
  const Options& o = pcs->options_;
  absl::string_view base_path = base.path;
  while (absl::ConsumeSuffix(&base_path, "/")) {
  }
  pcs->base_path_ = std::string(base_path);
  pcs->pcs_.origin = base.origin;
  KBS_ASSIGN_OR_RETURN(pcs->pcs_.client, NewClient(base.origin, o.http));
  if (!o.root_ca_crl_url.empty()) {
    KBS_ASSIGN_OR_RETURN(SplitUrl root, SplitHttpUrl(o.root_ca_crl_url));
    pcs->root_crl_.origin = root.origin;
    pcs->root_ca_crl_target_ = root.path.empty() ? "/" : root.path;
    KBS_ASSIGN_OR_RETURN(pcs->root_crl_.client, NewClient(root.origin, o.http));
  }
  return pcs;
}

// Pacing and retry waits concern a remote service's wall-clock time, not a
// security decision, so they use the real clock; cache expiry uses clock_.
absl::StatusOr<common::HttpResult> PcsCollateral::Fetch(Endpoint& endpoint,
                                                        const std::string& target,
                                                        bool send_api_key, absl::string_view what,
                                                        absl::Time deadline) {
  std::vector<std::pair<std::string, std::string>> headers;
  if (send_api_key && !options_.api_key.empty()) {
    headers.emplace_back("Ocp-Apim-Subscription-Key", options_.api_key);
  }
  absl::Duration backoff = std::max(options_.retry_backoff, options_.min_interval);
  std::string last = "no request sent";
  while (true) {
    absl::Time start = std::max(absl::Now(), next_request_);
    if (start + kMinAttempt > deadline) {
      return absl::UnavailableError(
          absl::StrCat("Intel PCS: no answer for ", what,
                       " before this attestation's deadline (last: ", last, ")"));
    }
    absl::SleepFor(start - absl::Now());
    next_request_ = absl::Now() + options_.min_interval;
    ++requests_sent_;
    // The attempt (resolve, connect, handshake, exchange) ends by the
    // attestation's deadline.
    auto result = endpoint.client->SendBy(deadline, "GET", target, "", headers);
    if (result.ok() && (result->status == 200 || result->status == 404)) return result;
    if (!result.ok()) {
      last = std::string(result.status().message());
    } else if (result->status == 429 || result->status >= 500) {
      last = absl::StrCat("HTTP ", result->status);
      // Seconds or an HTTP-date; a date is judged by the injected clock, the
      // wait itself is real time.
      std::optional<absl::Duration> asked =
          common::ParseRetryAfter(result->Header("retry-after"), clock_->Now());
      if (asked.has_value() && *asked > absl::ZeroDuration()) {
        absl::Duration wait = std::min(*asked, absl::Hours(1));
        next_request_ = std::max(next_request_, absl::Now() + wait);
        absl::StrAppend(&last, ", Retry-After ", absl::FormatDuration(wait));
      }
    } else {
      return absl::UnavailableError(
          absl::StrCat("Intel PCS answered HTTP ", result->status, " for ", what));
    }
    next_request_ = std::max(next_request_, absl::Now() + backoff);
    KBS_LOG(kWarning, "Intel PCS ", what, ": ", last, "; retrying in ",
            absl::FormatDuration(next_request_ - absl::Now()));
    backoff = std::min(backoff * 2, absl::Minutes(10));
  }
}

absl::StatusOr<Collateral> PcsCollateral::FetchAll(const CollateralRequest& request,
                                                   absl::Time deadline) {
  const std::string tee(DcapTeeName(request.tee));
  const std::string fmspc = common::HexEncode(request.fmspc);
  Collateral out;

  std::string what = absl::StrCat(tee, " TCB info for FMSPC ", fmspc);
  KBS_ASSIGN_OR_RETURN(
      common::HttpResult tcb,
      Fetch(pcs_, absl::StrCat(base_path_, "/", tee, "/certification/v4/tcb?fmspc=", fmspc), true,
            what, deadline));
  if (tcb.status == 404) {
    return absl::NotFoundError(
        absl::StrCat("Intel PCS has no ", tee, " TCB info for FMSPC ", fmspc));
  }
  auto tcb_body = SplitPcsBody(tcb.body, "tcbInfo");
  if (!tcb_body.ok()) {
    return absl::UnavailableError(
        absl::StrCat("Intel PCS sent malformed ", what, ": ", tcb_body.status().message()));
  }
  // Only a consistency check on unverified data, so that an answer for
  // another platform is not cached under this FMSPC.
  if (auto parsed = ParseTcbInfo(tcb_body->text); parsed.ok() && parsed->fmspc != request.fmspc) {
    return absl::UnavailableError(absl::StrCat("Intel PCS answered ", what, " with FMSPC ",
                                               common::HexEncode(parsed->fmspc)));
  }
  out.tcb_info = std::move(tcb_body->text);
  out.tcb_info_signature = std::move(tcb_body->signature);
  KBS_ASSIGN_OR_RETURN(
      out.tcb_info_issuer_chain,
      IssuerChain(tcb, {"TCB-Info-Issuer-Chain", "SGX-TCB-Info-Issuer-Chain"}, what));

  what = absl::StrCat(tee, " QE identity");
  KBS_ASSIGN_OR_RETURN(
      common::HttpResult qe,
      Fetch(pcs_, absl::StrCat(base_path_, "/", tee, "/certification/v4/qe/identity"), true, what,
            deadline));
  if (qe.status == 404) return absl::NotFoundError(absl::StrCat("Intel PCS has no ", what));
  auto qe_body = SplitPcsBody(qe.body, "enclaveIdentity");
  if (!qe_body.ok()) {
    return absl::UnavailableError(
        absl::StrCat("Intel PCS sent a malformed ", what, ": ", qe_body.status().message()));
  }
  out.qe_identity = std::move(qe_body->text);
  out.qe_identity_signature = std::move(qe_body->signature);
  KBS_ASSIGN_OR_RETURN(
      out.qe_identity_issuer_chain,
      IssuerChain(qe, {"SGX-Enclave-Identity-Issuer-Chain", "Enclave-Identity-Issuer-Chain"},
                  what));

  // CRLs are optional for verification: a 404 leaves them out.
  what = absl::StrCat("PCK ", PckCaName(request.ca), " CA CRL");
  KBS_ASSIGN_OR_RETURN(common::HttpResult pck_crl,
                       Fetch(pcs_,
                             absl::StrCat(base_path_, "/sgx/certification/v4/pckcrl?ca=",
                                          PckCaName(request.ca), "&encoding=der"),
                             true, what, deadline));
  if (pck_crl.status == 200) {
    auto der = internal::CrlToDer(pck_crl.body);
    if (!der.ok()) {
      return absl::UnavailableError(
          absl::StrCat("Intel PCS sent a malformed ", what, ": ", der.status().message()));
    }
    out.pck_crl = *std::move(der);
  }

  if (!root_ca_crl_target_.empty()) {
    what = "Intel SGX Root CA CRL";
    KBS_ASSIGN_OR_RETURN(common::HttpResult root_crl,
                         Fetch(root_crl_, root_ca_crl_target_, false, what, deadline));
    if (root_crl.status == 200) {
      auto der = internal::CrlToDer(root_crl.body);
      if (!der.ok()) {
        return absl::UnavailableError(absl::StrCat("malformed ", what, " from ", root_crl_.origin,
                                                   ": ", der.status().message()));
      }
      out.root_ca_crl = *std::move(der);
    }
  }
  return out;
}

std::optional<Collateral> PcsCollateral::Lookup(const CacheKey& key) {
  std::lock_guard<std::mutex> lock(cache_mu_);
  auto it = memory_.find(key);
  if (it == memory_.end()) return std::nullopt;
  if (clock_->Now() >= it->second.expires) {
    memory_.erase(it);
    return std::nullopt;
  }
  return it->second.collateral;
}

void PcsCollateral::Remember(const CacheKey& key, const Collateral& collateral) {
  absl::Time expires = std::min(Expiry(collateral), clock_->Now() + options_.refresh_interval);
  absl::Time now = clock_->Now();
  if (now >= expires) return;  // stale as served: the verifier will say so
  std::lock_guard<std::mutex> lock(cache_mu_);
  for (auto it = memory_.begin(); it != memory_.end();) {
    it = now >= it->second.expires ? memory_.erase(it) : std::next(it);
  }
  if (memory_.size() >= kMaxCachedSets && memory_.find(key) == memory_.end()) {
    auto soonest = std::min_element(
        memory_.begin(), memory_.end(),
        [](const auto& a, const auto& b) { return a.second.expires < b.second.expires; });
    memory_.erase(soonest);
  }
  memory_[key] = CacheEntry{collateral, expires};
}

absl::StatusOr<Collateral> PcsCollateral::Get(const CollateralRequest& request,
                                              absl::Duration timeout) {
  if (request.fmspc.size() != 6) {
    return absl::InvalidArgumentError(
        absl::StrCat("FMSPC must be 6 bytes, got ", request.fmspc.size()));
  }
  const absl::Time deadline = absl::Now() + timeout;
  const CacheKey key{request.tee, request.fmspc, request.ca};
  if (auto hit = Lookup(key)) return *std::move(hit);
  // Waiting for the fetch lock and for PCS blocks for up to the deadline: on
  // an HTTP fiber this runs on a thread of its own, so the request thread
  // keeps serving other attestations meanwhile.
  return common::RunBlocking([&] { return FetchAndRemember(request, key, deadline); });
}

absl::StatusOr<Collateral> PcsCollateral::FetchAndRemember(const CollateralRequest& request,
                                                           const CacheKey& key,
                                                           absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(fetch_mu_, std::defer_lock);
  if (!lock.try_lock_for(
          absl::ToChronoNanoseconds(std::max(deadline - absl::Now(), absl::ZeroDuration())))) {
    return absl::UnavailableError(
        "Intel PCS client is busy with another request past this attestation's deadline");
  }
  // Another caller may have fetched the same set while this one waited.
  if (auto hit = Lookup(key)) return *std::move(hit);
  KBS_ASSIGN_OR_RETURN(Collateral collateral, FetchAll(request, deadline));
  if (options_.anchors != nullptr) {
    auto verified = VerifyCollateral(collateral, request.tee, *options_.anchors, clock_->Now());
    if (!verified.ok()) {
      return absl::UnavailableError(absl::StrCat("Intel PCS sent collateral that does not verify: ",
                                                 verified.status().message()));
    }
  }
  Remember(key, collateral);
  if (cache_ != nullptr) {
    if (absl::Status s = cache_->Store(request, collateral); !s.ok()) {
      KBS_LOG(kWarning, "cannot cache DCAP collateral: ", s.message());
    }
  }
  KBS_LOG(kInfo, "fetched ", DcapTeeName(request.tee), " DCAP collateral for FMSPC ",
          common::HexEncode(request.fmspc), " from ", pcs_.origin);
  return collateral;
}

}  // namespace kbs::verifier::dcap
