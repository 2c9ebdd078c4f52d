#include "kbs/http/metrics.h"

#include <algorithm>

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

const char* GrpcMethodName(int method) {
  static constexpr const char* kNames[kGrpcMethodCount] = {"Auth",    "Attest", "GetResource",
                                                           "GetJwks", "Admin",  "Audit"};
  return kNames[method];
}

const char* GrpcCodeName(int code) {
  static constexpr const char* kNames[17] = {"OK",
                                             "CANCELLED",
                                             "UNKNOWN",
                                             "INVALID_ARGUMENT",
                                             "DEADLINE_EXCEEDED",
                                             "NOT_FOUND",
                                             "ALREADY_EXISTS",
                                             "PERMISSION_DENIED",
                                             "RESOURCE_EXHAUSTED",
                                             "FAILED_PRECONDITION",
                                             "ABORTED",
                                             "OUT_OF_RANGE",
                                             "UNIMPLEMENTED",
                                             "INTERNAL",
                                             "UNAVAILABLE",
                                             "DATA_LOSS",
                                             "UNAUTHENTICATED"};
  return kNames[code];
}

}  // namespace

void Metrics::Latency::Add(absl::Duration latency) {
  double seconds = absl::ToDoubleSeconds(latency);
  size_t bucket = 0;
  while (bucket < kBucketsSeconds.size() && seconds > kBucketsSeconds[bucket]) ++bucket;
  buckets[bucket].fetch_add(1, std::memory_order_relaxed);
  sum_micros.fetch_add(
      static_cast<uint64_t>(std::max<int64_t>(absl::ToInt64Microseconds(latency), 0)),
      std::memory_order_relaxed);
}

void Metrics::Record(Route route, int status, absl::Duration latency) {
  RouteStats& stats = routes_[static_cast<int>(route)];
  if (status >= 100 && status < 600)
    stats.by_status[status].fetch_add(1, std::memory_order_relaxed);
  stats.latency.Add(latency);
}

void Metrics::RecordGrpc(GrpcMethod method, int code, absl::Duration latency) {
  MethodStats& stats = methods_[static_cast<int>(method)];
  if (code < 0 || code > 16) code = 2;  // UNKNOWN
  stats.by_code[code].fetch_add(1, std::memory_order_relaxed);
  stats.latency.Add(latency);
}

void Metrics::RenderLatency(std::string& out, const char* family, const char* label,
                            const char* value, const Latency& latency) {
  // +Inf and _count are the buckets' total, so a scrape racing an Add never
  // shows a bucket above them.
  uint64_t cumulative = 0;
  for (const auto& bucket : latency.buckets) cumulative += bucket.load(std::memory_order_relaxed);
  if (cumulative == 0) return;
  const uint64_t total = cumulative;
  cumulative = 0;
  for (size_t b = 0; b < kBucketsSeconds.size(); ++b) {
    cumulative += latency.buckets[b].load(std::memory_order_relaxed);
    absl::StrAppend(&out, family, "_bucket{", label, "=\"", value, "\",le=\"",
                    absl::StrFormat("%g", kBucketsSeconds[b]), "\"} ", std::min(cumulative, total),
                    "\n");
  }
  absl::StrAppend(&out, family, "_bucket{", label, "=\"", value, "\",le=\"+Inf\"} ", total, "\n");
  absl::StrAppend(&out, family, "_sum{", label, "=\"", value, "\"} ",
                  absl::StrFormat("%.6f", latency.sum_micros.load() / 1e6), "\n");
  absl::StrAppend(&out, family, "_count{", label, "=\"", value, "\"} ", total, "\n");
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
    RenderLatency(out, "kbs_http_request_duration_seconds", "route", RouteName(r),
                  routes_[r].latency);
  }
  absl::StrAppend(&out,
                  "# HELP kbs_grpc_requests_total gRPC calls by method and status code.\n"
                  "# TYPE kbs_grpc_requests_total counter\n");
  for (int m = 0; m < kGrpcMethodCount; ++m) {
    for (int code = 0; code <= 16; ++code) {
      uint64_t n = methods_[m].by_code[code].load(std::memory_order_relaxed);
      if (n == 0) continue;
      absl::StrAppend(&out, "kbs_grpc_requests_total{method=\"", GrpcMethodName(m), "\",code=\"",
                      GrpcCodeName(code), "\"} ", n, "\n");
    }
  }
  absl::StrAppend(&out,
                  "# HELP kbs_grpc_request_duration_seconds gRPC call latency by method.\n"
                  "# TYPE kbs_grpc_request_duration_seconds histogram\n");
  for (int m = 0; m < kGrpcMethodCount; ++m) {
    RenderLatency(out, "kbs_grpc_request_duration_seconds", "method", GrpcMethodName(m),
                  methods_[m].latency);
  }
  absl::StrAppend(&out,
                  "# HELP kbs_sessions_live RCAR sessions currently held.\n"
                  "# TYPE kbs_sessions_live gauge\n"
                  "kbs_sessions_live ",
                  live_sessions, "\n");
  return out;
}

}  // namespace kbs::http
