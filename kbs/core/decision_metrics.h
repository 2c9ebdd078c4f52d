// Counts release decisions by outcome, deciding rule and the rule's labels
// (`route`, `cohort`, ...), for GET /metrics:
//   kbs_policy_decisions_total{decision="allow",rule="llama-prod",label_cohort="stable"} 12
// Shadow rules are counted as decision="shadow_allow" / "shadow_deny".
// Cardinality is bounded: past kMaxSeries distinct series, new ones are
// counted under rule="_other". Thread-safe.
#ifndef KBS_KBS_CORE_DECISION_METRICS_H_
#define KBS_KBS_CORE_DECISION_METRICS_H_

#include <cstdint>
#include <map>
#include <mutex>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace kbs {

class DecisionMetrics final {
 public:
  static constexpr size_t kMaxSeries = 1000;

  void Record(absl::string_view decision, absl::string_view rule,
              const std::vector<std::pair<std::string, std::string>>& labels);
  // Prometheus text exposition (HELP, TYPE and one line per series).
  std::string Render() const;

 private:
  mutable std::mutex mu_;
  std::map<std::string, uint64_t> series_;  // rendered label set -> count
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_DECISION_METRICS_H_
