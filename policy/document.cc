#include "policy/document.h"

#include <yaml-cpp/yaml.h>

#include <algorithm>
#include <set>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/jcs.h"
#include "policy/yaml_util.h"

namespace kbs::policy {
namespace {

using common::Json;
using internal::PosOf;

class DocumentParser {
 public:
  DocumentParser(std::vector<PolicyError>& errors, const DocumentLimits& limits)
      : errors_(errors), limits_(limits) {}

  std::optional<PolicyDocument> Parse(const YAML::Node& root) {
    PolicyDocument doc;
    if (!root.IsMap()) {
      Error(root, "", "the policy document must be a mapping with `version` and `rules`");
      return std::nullopt;
    }
    bool have_version = false;
    bool have_rules = false;
    for (const auto& [key, value] : Members(root, "")) {
      if (key == "version") {
        have_version = true;
        std::string v = Scalar(value, "version");
        if (!v.empty() && v != "1") Error(value, "version", "unsupported version (expected 1)");
      } else if (key == "description") {
        doc.description = Scalar(value, "description");
      } else if (key == "preset") {
        std::string p = Scalar(value, "preset");
        if (p != "allow-all" && p != "deny-all") {
          Error(value, "preset",
                absl::StrCat("unknown preset \"", p.substr(0, 64),
                             "\" (expected allow-all or deny-all)"));
        }
        doc.preset = p;
      } else if (key == "rules") {
        have_rules = true;
        if (!value.IsSequence()) {
          Error(value, "rules", "must be a list of rules");
          continue;
        }
        if (value.size() > limits_.max_rules) {
          Error(value, "rules", absl::StrCat("more than ", limits_.max_rules, " rules"));
          continue;
        }
        size_t i = 0;
        for (const YAML::Node& rule : value) {
          doc.rules.push_back(ParseRule(rule, i++));
        }
      } else {
        Error(value, key, "unknown field");
      }
    }
    if (doc.preset.has_value()) {
      if (have_rules) Error(root, "preset", "a preset document has no `rules`");
    } else {
      if (!have_version) Error(root, "version", "missing (write `version: 1`)");
      if (!have_rules) Error(root, "rules", "missing");
    }
    std::set<std::string> names;
    for (const RuleSpec& rule : doc.rules) {
      if (!rule.name.empty() && !names.insert(rule.name).second) {
        errors_.push_back({rule.pos, rule.name, "name", "duplicate rule name"});
      }
    }
    // Partial documents go on to the compiler, so its errors are reported
    // together with these.
    return doc;
  }

 private:
  // Map members in order, reporting duplicate and non-scalar keys.
  std::vector<std::pair<std::string, YAML::Node>> Members(const YAML::Node& map,
                                                          absl::string_view where) {
    std::vector<std::pair<std::string, YAML::Node>> out;
    std::set<std::string> seen;
    for (auto it = map.begin(); it != map.end(); ++it) {
      if (!it->first.IsScalar()) {
        Error(it->first, where, "keys must be plain strings");
        continue;
      }
      std::string key = it->first.Scalar();
      if (!seen.insert(key).second) {
        Error(it->first, where.empty() ? key : absl::StrCat(where, ".", key),
              "duplicate key (a document must not say two things)");
        continue;
      }
      out.emplace_back(std::move(key), it->second);
    }
    return out;
  }

  std::string Scalar(const YAML::Node& node, absl::string_view field) {
    if (!node.IsScalar()) {
      Error(node, field, "must be a single value");
      return "";
    }
    return node.Scalar();
  }

  std::vector<std::string> StringList(const YAML::Node& node, absl::string_view field,
                                      std::vector<SourcePos>* positions = nullptr) {
    std::vector<std::string> out;
    if (node.IsScalar()) {
      // A single value where a list is expected: accepted as a one-item list.
      out.push_back(node.Scalar());
      if (positions != nullptr) positions->push_back(PosOf(node));
      return out;
    }
    if (!node.IsSequence()) {
      Error(node, field, "must be a list of strings");
      return out;
    }
    if (node.size() > limits_.max_values_per_list) {
      Error(node, field, absl::StrCat("more than ", limits_.max_values_per_list, " values"));
      return out;
    }
    size_t i = 0;
    for (const YAML::Node& item : node) {
      if (!item.IsScalar()) {
        Error(item, absl::StrCat(field, "[", i, "]"), "must be a string");
      } else {
        out.push_back(item.Scalar());
        if (positions != nullptr) positions->push_back(PosOf(item));
      }
      ++i;
    }
    return out;
  }

  AllowedValues Allowed(const YAML::Node& node, const std::string& field) {
    AllowedValues out;
    out.pos = PosOf(node);
    if (node.IsMap()) {
      bool have = false;
      for (const auto& [key, value] : Members(node, field)) {
        if (key == "refvalues") {
          out.refvalues = Scalar(value, absl::StrCat(field, ".refvalues"));
          have = true;
        } else {
          Error(value, absl::StrCat(field, ".", key), "unknown field (expected `refvalues`)");
        }
      }
      if (!have || out.refvalues.empty()) {
        Error(node, field, "expected a list of values or {refvalues: <set name>}");
      }
      return out;
    }
    out.values = StringList(node, field);
    if (out.values.empty() && !node.IsScalar()) {
      Error(node, field, "the list of allowed values is empty (it could never match)");
    }
    return out;
  }

  RuleSpec ParseRule(const YAML::Node& node, size_t index) {
    RuleSpec rule;
    rule.pos = PosOf(node);
    rule_label_ = absl::StrCat("#", index + 1);
    if (!node.IsMap()) {
      Error(node, "", "a rule must be a mapping");
      return rule;
    }
    if (YAML::Node name = node["name"]; name && name.IsScalar()) {
      rule.name = name.Scalar();
      rule_label_ = rule.name;
    }
    bool have_name = false, have_resources = false, have_tee = false;
    for (const auto& [key, value] : Members(node, "")) {
      rule.field_pos[key] = PosOf(value);
      if (key == "name") {
        have_name = true;
        rule.name = Scalar(value, "name");
      } else if (key == "description") {
        rule.description = Scalar(value, "description");
      } else if (key == "resources") {
        have_resources = true;
        rule.resources = StringList(value, "resources");
        if (rule.resources.empty() && value.IsSequence()) {
          Error(value, "resources", "must list at least one resource");
        }
      } else if (key == "tee") {
        have_tee = true;
        rule.tees = StringList(value, "tee");
        if (rule.tees.empty() && value.IsSequence()) {
          Error(value, "tee", "must list at least one TEE type");
        }
      } else if (key == "measurements") {
        if (!value.IsMap()) {
          Error(value, "measurements", "must map register names to allowed values");
          continue;
        }
        for (const auto& [reg, allowed] : Members(value, "measurements")) {
          rule.measurements.emplace_back(reg, Allowed(allowed, absl::StrCat("measurements.", reg)));
        }
      } else if (key == "images") {
        rule.images = Allowed(value, "images");
      } else if (key == "conditions") {
        rule.conditions = StringList(value, "conditions", &rule.condition_pos);
      } else if (key == "labels") {
        if (!value.IsMap()) {
          Error(value, "labels", "must map label names to values");
          continue;
        }
        for (const auto& [label, text] : Members(value, "labels")) {
          rule.labels.emplace_back(label, Scalar(text, absl::StrCat("labels.", label)));
        }
        std::sort(rule.labels.begin(), rule.labels.end());
      } else if (key == "mode") {
        std::string mode = Scalar(value, "mode");
        if (mode == "shadow") {
          rule.shadow = true;
        } else if (mode != "enforce") {
          Error(value, "mode",
                absl::StrCat("must be enforce or shadow, not \"", mode.substr(0, 32), "\""));
        }
      } else if (key == "allow_debug") {
        std::string flag = Scalar(value, "allow_debug");
        if (flag == "true") {
          rule.allow_debug = true;
        } else if (flag != "false") {
          Error(value, "allow_debug", "must be true or false");
        }
      } else {
        Error(value, key, "unknown field");
      }
    }
    if (!have_name) Error(node, "name", "missing (every rule is named; decisions cite it)");
    if (!have_resources) Error(node, "resources", "missing");
    if (!have_tee) Error(node, "tee", "missing (list the TEE types the rule admits)");
    rule_label_.clear();
    return rule;
  }

  void Error(const YAML::Node& node, absl::string_view field, std::string message) {
    errors_.push_back({PosOf(node), rule_label_, std::string(field), std::move(message)});
  }

  std::vector<PolicyError>& errors_;
  const DocumentLimits& limits_;
  std::string rule_label_;
};

Json AllowedJson(const AllowedValues& allowed) {
  if (!allowed.refvalues.empty()) return Json{{"refvalues", allowed.refvalues}};
  return Json(allowed.values);
}

}  // namespace

std::string PolicyError::ToString() const {
  std::string out;
  if (pos.line > 0) absl::StrAppend(&out, "line ", pos.line, ", ");
  if (!rule.empty()) absl::StrAppend(&out, "rule ", rule, ", ");
  if (!field.empty()) absl::StrAppend(&out, "field ", field, ", ");
  if (!out.empty()) {
    out.resize(out.size() - 2);
    out.append(": ");
  }
  out.append(message);
  return out;
}

std::optional<PolicyDocument> ParsePolicyDocument(absl::string_view text,
                                                  std::vector<PolicyError>& errors,
                                                  const DocumentLimits& limits) {
  absl::string_view stripped = absl::StripAsciiWhitespace(text);
  if (stripped.empty()) {
    errors.push_back({{}, "", "", "the policy document is empty"});
    return std::nullopt;
  }
  if (text.size() > limits.max_bytes) {
    errors.push_back(
        {{},
         "",
         "",
         absl::StrCat("the policy document is larger than ", limits.max_bytes, " bytes")});
    return std::nullopt;
  }
  if (absl::StartsWith(stripped, "package ") || absl::StrContains(stripped, "\npackage ")) {
    errors.push_back({{},
                      "",
                      "",
                      "Rego policies are not supported: this KBS uses its own release-policy "
                      "documents (YAML or JSON), see docs/policy.md"});
    return std::nullopt;
  }
  // The two presets of the first release, by bare name.
  if (stripped == "allow-all" || stripped == "deny-all") {
    PolicyDocument doc;
    doc.preset = std::string(stripped);
    return doc;
  }
  PolicyError load_error;
  std::optional<YAML::Node> root = internal::LoadYaml(text, limits.max_nesting, load_error);
  if (!root.has_value()) {
    errors.push_back(std::move(load_error));
    return std::nullopt;
  }
  try {
    DocumentParser parser(errors, limits);
    return parser.Parse(*root);
  } catch (const YAML::Exception& e) {
    errors.push_back({{e.mark.line + 1, e.mark.column + 1},
                      "",
                      "",
                      absl::StrCat("cannot read the document: ", e.msg)});
    return std::nullopt;
  }
}

Json CanonicalJson(const PolicyDocument& doc) {
  if (doc.preset.has_value()) return Json{{"version", 1}, {"preset", *doc.preset}};
  Json rules = Json::array();
  for (const RuleSpec& rule : doc.rules) {
    Json measurements = Json::object();
    for (const auto& [reg, allowed] : rule.measurements) measurements[reg] = AllowedJson(allowed);
    Json labels = Json::object();
    for (const auto& [k, v] : rule.labels) labels[k] = v;
    Json r = {{"name", rule.name},
              {"resources", rule.resources},
              {"tee", rule.tees},
              {"measurements", std::move(measurements)},
              {"conditions", rule.conditions},
              {"labels", std::move(labels)},
              {"mode", rule.shadow ? "shadow" : "enforce"},
              {"allow_debug", rule.allow_debug}};
    if (rule.images.has_value()) r["images"] = AllowedJson(*rule.images);
    if (!rule.description.empty()) r["description"] = rule.description;
    rules.push_back(std::move(r));
  }
  Json out = {{"version", doc.version}, {"rules", std::move(rules)}};
  if (!doc.description.empty()) out["description"] = doc.description;
  return out;
}

std::string VersionId(const PolicyDocument& doc) {
  // Canonical JSON built here is always valid for JCS.
  auto canonical = common::CanonicalizeJson(CanonicalJson(doc));
  return absl::StrCat("sha256:",
                      common::HexEncode(common::Sha256(canonical.ok() ? *canonical : "")));
}

std::string JoinErrors(const std::vector<PolicyError>& errors) {
  // Bounded, so the message fits an HTTP detail and a gRPC status trailer.
  constexpr size_t kMaxListed = 40;
  std::vector<std::string> parts;
  for (size_t i = 0; i < errors.size() && i < kMaxListed; ++i) {
    parts.push_back(errors[i].ToString());
  }
  if (errors.size() > kMaxListed) {
    parts.push_back(absl::StrCat("and ", errors.size() - kMaxListed, " more"));
  }
  return absl::StrCat("invalid policy (", errors.size(), errors.size() == 1 ? " error" : " errors",
                      "): ", absl::StrJoin(parts, "; "));
}

}  // namespace kbs::policy
