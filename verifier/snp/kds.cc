#include "verifier/snp/kds.h"

#include <algorithm>
#include <chrono>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/fiber.h"
#include "common/log.h"
#include "common/status_macros.h"
#include "common/x509.h"

namespace kbs::verifier::snp {
namespace {

// A request with less time than this before its deadline is not sent.
constexpr absl::Duration kMinAttempt = absl::Milliseconds(20);
// KDS requests are about 10 s apart: a connection idle that long has likely
// been closed by the server, and a failed request costs a turn.
constexpr absl::Duration kMaxIdle = absl::Seconds(4);
constexpr size_t kMaxRemembered = 4096;
constexpr size_t kMaxPending = 64;

// Takes `lock` unless that cannot happen by `deadline`.
bool LockBy(std::unique_lock<std::timed_mutex>& lock, absl::Time deadline) {
  absl::Duration left = std::clamp(deadline - absl::Now(), absl::ZeroDuration(), absl::Hours(24));
  return lock.try_lock_for(absl::ToChronoNanoseconds(left));
}

std::string ChainTarget(Product product, SignerType signer) {
  return absl::StrCat("/", SignerName(signer), "/v1/", ProductName(product), "/cert_chain");
}

}  // namespace

KdsCollateral::KdsCollateral(Options options, DirectoryCollateral* cache)
    : options_(std::move(options)), cache_(cache) {}

std::optional<absl::Time> KdsCollateral::Now() const {
  if (options_.clock == nullptr) return std::nullopt;
  return options_.clock->Now();
}

// KDS pacing is about wall-clock time between requests to a remote service,
// not a security decision, so it uses the real clock.
absl::StatusOr<std::string> KdsCollateral::FetchLocked(const std::string& target,
                                                       absl::Time deadline) {
  if (http_ == nullptr) {
    common::HttpClientOptions http = options_.http;
    // A resend is a request KDS counts: it waits for its turn below.
    http.resend_on_stale_connection = false;
    http.max_idle = std::min(http.max_idle, kMaxIdle);
    KBS_ASSIGN_OR_RETURN(http_, common::HttpClient::Create(options_.base_url, http));
  }
  absl::Duration backoff = std::max(options_.min_interval, options_.retry_backoff);
  std::string last = "no request sent";
  while (true) {
    absl::Time now = absl::Now();
    absl::Time start = std::max(now, next_request_);
    if (start + kMinAttempt > deadline) {
      if (start > now) {
        return absl::UnavailableError(
            absl::StrCat("AMD KDS rate limit: the next request may be sent in ",
                         absl::FormatDuration(start - now), ", after this attestation's deadline (",
                         target, "; last: ", last, ")"));
      }
      return absl::UnavailableError(
          absl::StrCat("AMD KDS: no answer for ", target,
                       " before this attestation's deadline (last: ", last, ")"));
    }
    absl::SleepFor(start - now);
    next_request_ = absl::Now() + options_.min_interval;
    ++requests_sent_;
    auto result = http_->SendBy(deadline, "GET", target, "", {});
    if (result.ok() && result->status == 200) return std::move(result->body);
    if (result.ok() && result->status == 404) {
      return absl::NotFoundError(absl::StrCat("AMD KDS has no ", target));
    }
    if (!result.ok()) {
      last = std::string(result.status().message());
    } else if (result->status == 429 || result->status >= 500) {
      last = absl::StrCat("HTTP ", result->status);
      std::optional<absl::Duration> asked = common::ParseRetryAfter(
          result->Header("retry-after"), options_.clock ? options_.clock->Now() : absl::Now());
      if (asked.has_value()) {
        absl::Duration wait = std::min(*asked, absl::Hours(1));
        next_request_ = std::max(next_request_, absl::Now() + wait);
        absl::StrAppend(&last, ", Retry-After ", absl::FormatDuration(wait));
      }
    } else {
      return absl::FailedPreconditionError(
          absl::StrCat("AMD KDS answered ", result->status, " for ", target));
    }
    next_request_ = std::max(next_request_, absl::Now() + backoff);
    KBS_LOG(kWarning, "KDS ", target, ": ", last, "; retrying in ",
            absl::FormatDuration(next_request_ - absl::Now()));
    backoff = std::min(backoff * 2, absl::Minutes(10));
  }
}

absl::StatusOr<const KdsCollateral::KnownChain*> KdsCollateral::AdoptChainLocked(
    Product product, SignerType signer, const std::vector<common::X509Ptr>& certs,
    absl::string_view pem) {
  const std::string what =
      absl::StrCat("the ", ProductName(product), " ", SignerName(signer), " certificate chain");
  auto ca = CheckCaBundle(certs, product, signer, options_.anchors, Now());
  if (!ca.ok()) {
    return absl::UnavailableError(
        absl::StrCat("AMD KDS sent ", what, " that does not check: ", ca.status().message()));
  }
  KnownChain known;
  known.ca = *std::move(ca);
  for (const common::X509Ptr& c : certs) {
    if (c.get() != known.ca.ark.get() && c.get() != known.ca.intermediate.get()) continue;
    KBS_ASSIGN_OR_RETURN(std::string der, common::CertificateDer(c.get()));
    known.certs.certs_der.push_back(std::move(der));
  }
  if (!pem.empty() && cache_ != nullptr) {
    if (absl::Status s = cache_->StoreChain(product, signer, pem); !s.ok()) {
      KBS_LOG(kWarning, "cannot cache ", what, ": ", s.message());
    }
  }
  const KnownChain* out = &(chains_[{product, signer}] = std::move(known));
  if (signer == SignerType::kVcek) {
    // VCEKs fetched before their chain was known: keep those that chain to
    // it, forget the others.
    for (auto it = pending_.begin(); it != pending_.end();) {
      if (it->second.request.product != product) {
        ++it;
        continue;
      }
      auto vek = ParseVekCertificate(it->second.der);
      absl::Status s =
          vek.ok() ? AdoptVcekLocked(it->second.request, it->second.der, *vek, *out) : vek.status();
      if (!s.ok()) KBS_LOG(kWarning, "not keeping a VCEK from AMD KDS: ", s.message());
      it = pending_.erase(it);
    }
  }
  return out;
}

const KdsCollateral::KnownChain* KdsCollateral::KnownChainLocked(Product product, SignerType signer,
                                                                 absl::Time deadline) {
  auto it = chains_.find({product, signer});
  if (it != chains_.end()) return &it->second;
  if (cache_ == nullptr) return nullptr;
  auto stored = cache_->GetChain(product, signer, deadline);
  if (!stored.ok()) return nullptr;
  std::vector<common::X509Ptr> certs;
  for (const std::string& der : stored->certs_der) {
    auto cert = common::ParseDerCertificate(common::AsSpan(der));
    if (!cert.ok()) return nullptr;
    certs.push_back(*std::move(cert));
  }
  auto known = AdoptChainLocked(product, signer, certs, "");
  return known.ok() ? *known : nullptr;
}

absl::Status KdsCollateral::AdoptVcekLocked(const VcekRequest& request, const std::string& der,
                                            const VekCertificate& vek, const KnownChain& chain) {
  if (!common::IsSignedBy(vek.cert.get(), chain.ca.intermediate.get())) {
    return absl::UnavailableError(absl::StrCat("AMD KDS sent a VCEK that is not signed by the ",
                                               ProductName(request.product), " ASK"));
  }
  if (std::optional<absl::Time> now = Now(); now.has_value()) {
    if (absl::Status s = common::CheckValidity(vek.cert.get(), *now, "VCEK"); !s.ok()) {
      return absl::UnavailableError(absl::StrCat("AMD KDS sent a VCEK: ", s.message()));
    }
  }
  const std::string key = DirectoryCollateral::VcekRelativePath(request);
  if (vceks_.size() >= kMaxRemembered) vceks_.clear();
  vceks_[key] = der;
  if (cache_ != nullptr) {
    if (absl::Status s = cache_->StoreVcek(request, der); !s.ok()) {
      KBS_LOG(kWarning, "cannot cache VCEK: ", s.message());
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> KdsCollateral::GetVcek(const VcekRequest& request,
                                                   absl::Time deadline) {
  return common::RunBlocking([&] { return GetVcekNow(request, deadline); });
}

absl::StatusOr<std::string> KdsCollateral::GetVcekNow(const VcekRequest& request,
                                                      absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!LockBy(lock, deadline)) {
    return absl::UnavailableError(
        "AMD KDS is busy with another request past this attestation's deadline");
  }
  const bool turin = request.product == Product::kTurin;
  const std::string hwid = turin ? request.hwid.substr(0, 8) : request.hwid;
  const VcekRequest normalized{request.product, hwid, request.tcb};
  const std::string key = DirectoryCollateral::VcekRelativePath(normalized);
  if (auto it = vceks_.find(key); it != vceks_.end()) return it->second;
  // Another caller may have fetched it while this one waited for its turn.
  if (cache_ != nullptr) {
    if (auto der = cache_->GetVcek(normalized, deadline); der.ok()) return der;
  }
  if (auto it = pending_.find(key); it != pending_.end()) {
    std::string der = it->second.der;
    // The chain may be known by now: KnownChainLocked settles what is
    // pending, keeping the VCEK or forgetting it.
    (void)KnownChainLocked(request.product, SignerType::kVcek, deadline);
    if (vceks_.count(key) != 0 || pending_.count(key) != 0) return der;
    return absl::UnavailableError(
        "the VCEK AMD KDS sent does not chain to the ASK; it will be fetched again");
  }

  const TcbVersion& t = request.tcb;
  std::string query;
  if (turin) absl::StrAppend(&query, "fmcSPL=", t.fmc.value_or(0), "&");
  absl::StrAppend(&query, "blSPL=", t.bootloader, "&teeSPL=", t.tee, "&snpSPL=", t.snp,
                  "&ucodeSPL=", t.microcode);
  std::string target = absl::StrCat("/vcek/v1/", ProductName(request.product), "/",
                                    common::HexEncode(hwid), "?", query);
  KBS_ASSIGN_OR_RETURN(std::string der, FetchLocked(target, deadline));

  // What KDS sent must be the VCEK asked for before anything keeps it.
  auto vek = ParseVekCertificate(der);
  if (!vek.ok() || vek->type != SignerType::kVcek) {
    return absl::UnavailableError(absl::StrCat("AMD KDS answered ", target, " with no VCEK",
                                               vek.ok() ? "" : ": ", vek.status().message()));
  }
  if (vek->hwid != hwid || !VekTcbMatches(vek->tcb, request.tcb, request.product) ||
      (vek->product.has_value() && *vek->product != request.product)) {
    return absl::UnavailableError(
        absl::StrCat("AMD KDS answered ", target, " with a VCEK for another chip, TCB or product"));
  }
  if (const KnownChain* chain = KnownChainLocked(request.product, SignerType::kVcek, deadline)) {
    KBS_RETURN_IF_ERROR(AdoptVcekLocked(normalized, der, *vek, *chain));
  } else {
    // Not kept for good until its chain is known (the verifier checks it in
    // any case).
    if (pending_.size() >= kMaxPending) pending_.erase(pending_.begin());
    pending_[key] = PendingVcek{normalized, der};
  }
  return der;
}

absl::StatusOr<ChainCollateral> KdsCollateral::GetChain(Product product, SignerType signer,
                                                        absl::Time deadline) {
  return common::RunBlocking([&] { return GetChainNow(product, signer, deadline); });
}

absl::StatusOr<ChainCollateral> KdsCollateral::GetChainNow(Product product, SignerType signer,
                                                           absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!LockBy(lock, deadline)) {
    return absl::UnavailableError(
        "AMD KDS is busy with another request past this attestation's deadline");
  }
  if (const KnownChain* known = KnownChainLocked(product, signer, deadline)) return known->certs;
  KBS_ASSIGN_OR_RETURN(std::string pem, FetchLocked(ChainTarget(product, signer), deadline));
  auto certs = common::ParsePemCertificates(pem);
  if (!certs.ok()) {
    return absl::UnavailableError(
        absl::StrCat("AMD KDS answered ", ChainTarget(product, signer), " with no PEM bundle"));
  }
  KBS_ASSIGN_OR_RETURN(const KnownChain* known, AdoptChainLocked(product, signer, *certs, pem));
  return known->certs;
}

absl::StatusOr<std::string> KdsCollateral::GetCrl(Product product, absl::Time at,
                                                  absl::Time deadline) {
  return common::RunBlocking([&] { return GetCrlNow(product, at, deadline); });
}

absl::StatusOr<std::string> KdsCollateral::GetCrlNow(Product product, absl::Time at,
                                                     absl::Time deadline) {
  std::unique_lock<std::timed_mutex> lock(mu_, std::defer_lock);
  if (!LockBy(lock, deadline)) {
    return absl::UnavailableError(
        "AMD KDS is busy with another request past this attestation's deadline");
  }
  auto current = [at](const std::string& der) {
    auto times = CrlUpdateTimes(der);
    return times.ok() && at < times->second;
  };
  if (auto it = crls_.find(product); it != crls_.end() && current(it->second)) return it->second;
  // Another caller may have fetched it while this one waited for its turn.
  if (cache_ != nullptr) {
    if (auto der = cache_->GetCrl(product, at, deadline); der.ok() && current(*der)) return der;
  }
  const std::string target = absl::StrCat("/vcek/v1/", ProductName(product), "/crl");
  KBS_ASSIGN_OR_RETURN(std::string der, FetchLocked(target, deadline));
  auto crl = common::ParseCrl(der);
  if (!crl.ok())
    return absl::UnavailableError(absl::StrCat("AMD KDS answered ", target, " with no CRL"));
  const KnownChain* chain = KnownChainLocked(product, SignerType::kVcek, deadline);
  if (chain == nullptr) chain = KnownChainLocked(product, SignerType::kVlek, deadline);
  if (chain == nullptr) return der;  // cannot be checked here: not kept (the verifier checks it)
  if (!common::IsCrlSignedBy(crl->get(), chain->ca.ark.get())) {
    return absl::UnavailableError(
        absl::StrCat("AMD KDS answered ", target, " with a CRL the ARK did not sign"));
  }
  crls_[product] = der;
  if (cache_ != nullptr) {
    if (absl::Status s = cache_->StoreCrl(product, der); !s.ok()) {
      KBS_LOG(kWarning, "cannot cache the ARK CRL: ", s.message());
    }
  }
  return der;
}

}  // namespace kbs::verifier::snp
