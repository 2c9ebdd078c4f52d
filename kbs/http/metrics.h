// Request counters and latency histograms in Prometheus text format
// (GET /metrics), for HTTP routes and gRPC methods. Lock-free; one fixed
// slot per route (method) and status code.
#ifndef KBS_KBS_HTTP_METRICS_H_
#define KBS_KBS_HTTP_METRICS_H_

#include <array>
#include <atomic>
#include <cstdint>
#include <functional>
#include <string>

#include "absl/time/time.h"

namespace kbs::http {

enum class Route {
  kAuth,
  kAttest,
  kResourceGet,
  kAdmin,
  kWellKnown,
  kHealth,
  kMetrics,
  kOther,
  kReady
};
inline constexpr int kRouteCount = 9;

// The kbs.v1.KeyBroker methods (the Admin and Audit services are counted
// as one method each).
enum class GrpcMethod { kAuth, kAttest, kGetResource, kGetJwks, kAdmin, kAudit };
inline constexpr int kGrpcMethodCount = 6;

class Metrics final {
 public:
  void Record(Route route, int status, absl::Duration latency);
  // A finished gRPC call: its status code (0..16) and time from arrival to
  // the response.
  void RecordGrpc(GrpcMethod method, int code, absl::Duration latency);
  // `live_sessions` is sampled at scrape time.
  std::string Render(size_t live_sessions) const;

 private:
  static constexpr std::array<double, 10> kBucketsSeconds = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                                             0.02,   0.05,  0.1,   0.5,   2.0};
  struct Latency {
    std::array<std::atomic<uint64_t>, kBucketsSeconds.size() + 1> buckets{};
    std::atomic<uint64_t> sum_micros{0};
    void Add(absl::Duration latency);
  };
  struct RouteStats {
    std::array<std::atomic<uint64_t>, 600> by_status{};  // HTTP status codes
    Latency latency;
  };
  struct MethodStats {
    std::array<std::atomic<uint64_t>, 17> by_code{};  // gRPC status codes
    Latency latency;
  };
  // Appends the histogram `family`{`label`="`value`"} of `latency`.
  static void RenderLatency(std::string& out, const char* family, const char* label,
                            const char* value, const Latency& latency);
  std::array<RouteStats, kRouteCount> routes_;
  std::array<MethodStats, kGrpcMethodCount> methods_;
};

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_METRICS_H_
