// Internal: loading untrusted YAML (policy and reference-value documents)
// with yaml-cpp, which throws and has no depth limit. The text is pre-scanned
// for nesting depth so yaml-cpp's recursion stays bounded.
#ifndef KBS_POLICY_YAML_UTIL_H_
#define KBS_POLICY_YAML_UTIL_H_

#include <yaml-cpp/yaml.h>

#include <optional>
#include <string>

#include "absl/strings/string_view.h"
#include "policy/document.h"

namespace kbs::policy::internal {

SourcePos PosOf(const YAML::Node& node);

// The parsed document, or nullopt with `error` set (with its position when
// yaml-cpp gives one). Never throws.
std::optional<YAML::Node> LoadYaml(absl::string_view text, int max_nesting, PolicyError& error);

}  // namespace kbs::policy::internal

#endif  // KBS_POLICY_YAML_UTIL_H_
