// The release-policy seam: given the verified claims of an attested workload
// and the resource it asks for, allow or deny, and say why. An engine
// failure is a non-OK status; a deny is an OK Decision with allow=false.
//
// Policies are compiled once, when they are stored (every error reported
// then, with line, rule and field), and evaluated many times. Two kinds
// exist: the rule documents of docs/policy.md (rule_engine.h) and the two
// built-in presets `allow-all` and `deny-all`.
#ifndef KBS_POLICY_POLICY_ENGINE_H_
#define KBS_POLICY_POLICY_ENGINE_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "policy/cel/expression.h"
#include "policy/claims.h"
#include "policy/document.h"
#include "policy/refvalues.h"

namespace kbs::policy {

struct PolicyInput {
  // "repo/type/tag".
  absl::string_view resource_path;
  // Not owned; valid for the duration of Evaluate().
  const ClaimSet* claims = nullptr;
  // Reference values expire at this instant (the injected clock's now).
  absl::Time now;
  // Not owned; nullptr means no reference-value sets exist.
  const RefValues* refvalues = nullptr;
};

// What one rule decided, and why when it did not allow.
struct RuleVerdict {
  std::string rule;
  bool allow = false;
  std::string reason;         // for operators: the value seen and the set it missed
  std::string client_reason;  // for the client: the check that failed, never allowed values
  std::vector<std::pair<std::string, std::string>> labels;
  common::Json ToJson() const;
};

struct Decision {
  bool allow = false;
  std::string policy_id;  // the version id of the policy that decided
  // The deciding rule: the first enforcing rule (in document order) that
  // allowed; for a deny, empty (or the preset's name).
  std::string rule;
  std::vector<std::pair<std::string, std::string>> labels;  // the deciding rule's
  // For a deny: the full explanation (operators), and what is safe to send
  // to the client. Empty for an allow (the rule and labels say it).
  std::string reason;
  std::string client_reason;
  // For a deny: each enforcing rule that governs the resource, and the first
  // check it failed (at most kMaxExplainedRules, then a count).
  std::vector<RuleVerdict> candidates;
  // Shadow rules that govern the resource: what they would have decided.
  // They never grant.
  std::vector<RuleVerdict> shadow;
  common::Json ToJson() const;
};

inline constexpr size_t kMaxExplainedRules = 16;

struct PolicyOptions {
  // Whether the operator enabled the `sample` TEE. No policy admits
  // `sample` evidence unless it is enabled and a rule names it.
  bool sample_tee_enabled = false;
  cel::Limits expression_limits;
  DocumentLimits document_limits;
};

// Immutable after compilation; Evaluate() is thread-safe.
class PolicyEngine {
 public:
  virtual ~PolicyEngine() = default;
  // The immutable version id: a digest of the canonical document.
  virtual const std::string& id() const = 0;
  // The canonical document (CanonicalJson).
  virtual const common::Json& document() const = 0;
  // Reference-value sets the rules name (for warnings when one is missing).
  virtual std::vector<std::string> referenced_sets() const = 0;
  // Allow or deny `input.resource_path` for `input.claims`. Non-OK only
  // when the engine itself fails; absent claims and failed checks are
  // denies with explanations.
  virtual absl::StatusOr<Decision> Evaluate(const PolicyInput& input) const = 0;
};

// Compiles a policy document (YAML or JSON rules, or a preset). On error,
// InvalidArgument whose message lists every error; `errors` (optional)
// receives them one by one. Rego text gets an explicit "not supported".
absl::StatusOr<std::unique_ptr<PolicyEngine>> CompilePolicy(
    absl::string_view text, const PolicyOptions& options,
    std::vector<PolicyError>* errors = nullptr);

// The policy a fresh KBS starts with: deny everything.
std::unique_ptr<PolicyEngine> DefaultPolicy(const PolicyOptions& options);

}  // namespace kbs::policy

#endif  // KBS_POLICY_POLICY_ENGINE_H_
