// Release-policy documents (docs/policy.md): YAML or JSON text → a typed
// PolicyDocument, with every schema error collected (line, rule, field)
// rather than stopping at the first. Semantics (TEE names, register names,
// expressions) are checked by the compiler (rule_engine.h); this layer only
// knows the document's shape.
//
//   version: 1
//   rules:
//     - name: llama-prod
//       resources: ["models/llama-70b/*"]
//       tee: [snp, tdx]
//       measurements:
//         snp.measurement: ["6a6519d7..."]
//         tdx.mr_td: {refvalues: llama-tdx-mrtd}
//       images: ["sha256:9f1c..."]
//       conditions: ["!debug"]
//       labels: {route: chat}
//       mode: enforce            # or shadow
//
// The built-in presets are documents too: `{"preset": "allow-all"}`.
#ifndef KBS_POLICY_DOCUMENT_H_
#define KBS_POLICY_DOCUMENT_H_

#include <map>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"
#include "common/json.h"

namespace kbs::policy {

// 1-based; 0 when unknown.
struct SourcePos {
  int line = 0;
  int column = 0;
};

struct PolicyError {
  SourcePos pos;
  std::string rule;   // rule name (or "#3" when it has none); empty at document level
  std::string field;  // e.g. "measurements.snp.measurement", "conditions[1]"
  std::string message;
  // "line 7, rule llama-prod, field tee: unknown TEE \"snpp\""
  std::string ToString() const;
};

// Allowed values, inline or by the name of a reference-value set.
struct AllowedValues {
  std::vector<std::string> values;
  std::string refvalues;  // set name; empty for inline values
  SourcePos pos;
};

struct RuleSpec {
  std::string name;
  std::string description;
  SourcePos pos;
  // Where each field's value starts, for errors found after parsing.
  std::map<std::string, SourcePos, std::less<>> field_pos;
  SourcePos PosOf(absl::string_view field) const {
    auto it = field_pos.find(field);
    return it == field_pos.end() ? pos : it->second;
  }
  std::vector<std::string> resources;
  std::vector<std::string> tees;
  // Register name ("snp.measurement") → allowed values, in document order.
  std::vector<std::pair<std::string, AllowedValues>> measurements;
  std::optional<AllowedValues> images;  // absent: the rule does not constrain images
  std::vector<std::string> conditions;
  std::vector<SourcePos> condition_pos;
  std::vector<std::pair<std::string, std::string>> labels;  // sorted by key
  bool shadow = false;
  bool allow_debug = false;
};

struct PolicyDocument {
  int version = 1;
  std::string description;
  std::optional<std::string> preset;  // "allow-all" | "deny-all"
  std::vector<RuleSpec> rules;
};

struct DocumentLimits {
  size_t max_bytes = 16 << 20;
  size_t max_rules = 100000;
  size_t max_values_per_list = 100000;
  int max_nesting = 64;
};

// Parses `text` (YAML 1.2 block or flow style; JSON is accepted as YAML).
// Schema errors are appended to `errors` (all of them). Returns the
// document — partial when there were errors, so the compiler can report
// its errors too — or nullopt when the text is not a YAML mapping at all.
// Rego text gets one error that says Rego is not supported.
std::optional<PolicyDocument> ParsePolicyDocument(absl::string_view text,
                                                  std::vector<PolicyError>& errors,
                                                  const DocumentLimits& limits = {});

// The canonical JSON form (every field explicit, rules in order, lists as
// written): what the version id is computed over and what `policy get`
// returns beside the source text.
common::Json CanonicalJson(const PolicyDocument& doc);

// "sha256:<hex of SHA-256(JCS(CanonicalJson(doc)))>".
std::string VersionId(const PolicyDocument& doc);

// All errors as one message, for a Status: "invalid policy (2 errors): ...; ...".
std::string JoinErrors(const std::vector<PolicyError>& errors);

}  // namespace kbs::policy

#endif  // KBS_POLICY_DOCUMENT_H_
