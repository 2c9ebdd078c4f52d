#include "kbs/http/metrics.h"

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"

namespace kbs::http {
namespace {

const char* RouteName(int route) {
  static constexpr const char* kNames[kRouteCount] = {"auth",    "attest",     "resource_get",
                                                      "admin",   "well_known", "health",
                                                      "metrics", "other",      "ready"};
  return kNames[route];
}

}  // namespace

void Metrics::Record(Route route, int status, absl::Duration latency) {
  RouteStats& stats = routes_[static_cast<int>(route)];
  if (status >= 100 && status < 600)
    stats.by_status[status].fetch_add(1, std::memory_order_relaxed);
  double seconds = absl::ToDoubleSeconds(latency);
  size_t bucket = 0;
  while (bucket < kBucketsSeconds.size() && seconds > kBucketsSeconds[bucket]) ++bucket;
  stats.buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  stats.count.fetch_add(1, std::memory_order_relaxed);
  stats.sum_micros.fetch_add(static_cast<uint64_t>(absl::ToInt64Microseconds(latency)),
                             std::memory_order_relaxed);
}

std::string Metrics::Render(size_t live_sessions) const {
  std::string out;
  absl::StrAppend(&out,
                  "# HELP kbs_http_requests_total HTTP requests by route and status code.\n"
                  "# TYPE kbs_http_requests_total counter\n");
  for (int r = 0; r < kRouteCount; ++r) {
    for (int code = 100; code < 600; ++code) {
      uint64_t n = routes_[r].by_status[code].load(std::memory_order_relaxed);
      if (n == 0) continue;
      absl::StrAppend(&out, "kbs_http_requests_total{route=\"", RouteName(r), "\",code=\"", code,
                      "\"} ", n, "\n");
    }
  }
  absl::StrAppend(&out,
                  "# HELP kbs_http_request_duration_seconds HTTP request latency by route.\n"
                  "# TYPE kbs_http_request_duration_seconds histogram\n");
  for (int r = 0; r < kRouteCount; ++r) {
    uint64_t count = routes_[r].count.load(std::memory_order_relaxed);
    if (count == 0) continue;
    uint64_t cumulative = 0;
    for (size_t b = 0; b < kBucketsSeconds.size(); ++b) {
      cumulative += routes_[r].buckets[b].load(std::memory_order_relaxed);
      absl::StrAppend(&out, "kbs_http_request_duration_seconds_bucket{route=\"", RouteName(r),
                      "\",le=\"", absl::StrFormat("%g", kBucketsSeconds[b]), "\"} ", cumulative,
                      "\n");
    }
    absl::StrAppend(&out, "kbs_http_request_duration_seconds_bucket{route=\"", RouteName(r),
                    "\",le=\"+Inf\"} ", count, "\n");
    absl::StrAppend(&out, "kbs_http_request_duration_seconds_sum{route=\"", RouteName(r), "\"} ",
                    absl::StrFormat("%.6f", routes_[r].sum_micros.load() / 1e6), "\n");
    absl::StrAppend(&out, "kbs_http_request_duration_seconds_count{route=\"", RouteName(r), "\"} ",
                    count, "\n");
  }
  absl::StrAppend(&out,
                  "# HELP kbs_sessions_live RCAR sessions currently held.\n"
                  "# TYPE kbs_sessions_live gauge\n"
                  "kbs_sessions_live ",
                  live_sessions, "\n");
  return out;
}

}  // namespace kbs::http
