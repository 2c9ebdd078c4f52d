#include "kbs/core/decision_metrics.h"

#include "absl/strings/str_cat.h"

namespace kbs {
namespace {

// Prometheus label values escape backslash, double quote and newline.
std::string Escape(absl::string_view v) {
  std::string out;
  out.reserve(v.size());
  for (char c : v) {
    if (c == '\\' || c == '"') {
      out.push_back('\\');
      out.push_back(c);
    } else if (c == '\n') {
      out.append("\\n");
    } else {
      out.push_back(c);
    }
  }
  return out;
}

}  // namespace

void DecisionMetrics::Record(absl::string_view decision, absl::string_view rule,
                             const std::vector<std::pair<std::string, std::string>>& labels) {
  // Rule label names are [a-z0-9_] (checked when the policy is compiled).
  std::string key = absl::StrCat("decision=\"", decision, "\",rule=\"",
                                 Escape(rule.empty() ? "_none" : rule), "\"");
  for (const auto& [name, value] : labels) {
    absl::StrAppend(&key, ",label_", name, "=\"", Escape(value), "\"");
  }
  std::lock_guard<std::mutex> lock(mu_);
  auto it = series_.find(key);
  if (it == series_.end() && series_.size() >= kMaxSeries) {
    key = absl::StrCat("decision=\"", decision, "\",rule=\"_other\"");
    it = series_.find(key);
  }
  if (it == series_.end()) it = series_.emplace(std::move(key), 0).first;
  ++it->second;
}

std::string DecisionMetrics::Render() const {
  std::string out =
      "# HELP kbs_policy_decisions_total Release-policy decisions by outcome, deciding rule and "
      "the rule's labels.\n# TYPE kbs_policy_decisions_total counter\n";
  std::lock_guard<std::mutex> lock(mu_);
  for (const auto& [labels, count] : series_) {
    absl::StrAppend(&out, "kbs_policy_decisions_total{", labels, "} ", count, "\n");
  }
  return out;
}

}  // namespace kbs
