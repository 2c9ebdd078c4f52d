// Request counters and latency histograms in Prometheus text format
// (GET /metrics). Lock-free; one fixed slot per route and status class.
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

class Metrics final {
 public:
  void Record(Route route, int status, absl::Duration latency);
  // `live_sessions` is sampled at scrape time.
  std::string Render(size_t live_sessions) const;

 private:
  static constexpr std::array<double, 10> kBucketsSeconds = {0.0005, 0.001, 0.002, 0.005, 0.01,
                                                             0.02,   0.05,  0.1,   0.5,   2.0};
  struct RouteStats {
    // Status classes 1xx..5xx, plus per-code counters for the codes the
    // protocol uses.
    std::array<std::atomic<uint64_t>, 600> by_status{};
    std::array<std::atomic<uint64_t>, kBucketsSeconds.size() + 1> buckets{};
    std::atomic<uint64_t> count{0};
    std::atomic<uint64_t> sum_micros{0};
  };
  std::array<RouteStats, kRouteCount> routes_;
};

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_METRICS_H_
