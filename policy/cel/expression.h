// Release-policy conditions: a documented subset of CEL (cel-spec
// doc/langdef.md) over the claims of an attested workload, e.g.
//
//   tcb_status in ['UpToDate', 'SWHardeningNeeded']
//   snp.tcb.snp >= 8 && has(snp.policy)
//   tee == 'snp' ? snp.vmpl == 0 : true
//
// Compile once when a policy is stored (syntax, limits, static type check,
// regular expressions; failures are InvalidArgument naming the 1-based
// column), then Evaluate many times. Evaluation never fails: a condition
// passes only when it evaluates to bool true; anything else (false, a
// runtime type error, an absent claim, the step limit) is a deny with an
// explanation for the operator. docs/policy.md documents the subset.
//
// Thread safety: an Expression is immutable after Compile; Evaluate may be
// called concurrently. Evaluating the common operators (comparisons, field
// access, `in` over a constant list, has, size, string methods) does not
// allocate and does not copy claim strings; explanations are only built for
// conditions that do not pass.
#ifndef KBS_POLICY_CEL_EXPRESSION_H_
#define KBS_POLICY_CEL_EXPRESSION_H_

#include <cstddef>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "policy/value.h"

namespace kbs::policy::cel {

namespace internal {
struct Node;
}  // namespace internal

struct Limits {
  // Longest accepted source text.
  size_t max_expression_bytes = 1024;
  // Deepest nesting of the syntax tree and of the parser's recursion
  // (parentheses, brackets, call arguments, ternaries).
  int max_depth = 32;
  // Evaluation budget: one step per node evaluated plus one per list element
  // or map entry examined by `in`.
  int64_t max_steps = 1000;
  // Most elements in one list or map literal (and arguments in one call).
  size_t max_literal_elements = 4096;
};

struct Outcome {
  // True only when the condition evaluated to bool true.
  bool pass = false;
  // Empty when pass; otherwise why, for the operator, e.g.
  // `tcb_status = "OutOfDate"`, `claim tcb_status is absent`,
  // `evaluation exceeded 1000 steps`, `type mismatch: string < int in ...`.
  std::string explanation;
};

class Expression final {
 public:
  // Parses and type-checks `source`. InvalidArgument ("column N: ...") for
  // syntax errors, violated limits, unknown functions, wrong arity, invalid
  // regular expressions, and operations or a result type the static types
  // show can never work.
  static absl::StatusOr<std::unique_ptr<Expression>> Compile(absl::string_view source,
                                                             const Limits& limits = {});

  Expression(const Expression&) = delete;
  Expression& operator=(const Expression&) = delete;
  ~Expression();

  // Evaluates against `claims`, the root map whose keys are the identifiers
  // of the condition. Never fails; see Outcome.
  Outcome Evaluate(const Value& claims) const;

  const std::string& source() const { return source_; }
  // The claim paths the condition reads, in order of first appearance and
  // without duplicates, e.g. {"tcb_status", "snp.tcb.snp"}.
  const std::vector<std::string>& referenced_claims() const { return referenced_claims_; }

 private:
  Expression(std::string source, const Limits& limits);

  std::string source_;
  Limits limits_;
  std::unique_ptr<internal::Node> root_;
  std::vector<std::string> referenced_claims_;
  // The nodes that read referenced_claims_, for explanations.
  std::vector<const internal::Node*> referenced_nodes_;
};

}  // namespace kbs::policy::cel

#endif  // KBS_POLICY_CEL_EXPRESSION_H_
