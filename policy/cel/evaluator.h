// Tree-walking evaluation of a checked condition against a claims map, with
// CEL's runtime semantics (cel-spec doc/langdef.md "Evaluation"): errors are
// values that propagate, except that `&&` and `||` absorb an error when the
// other operand decides the result ("commutative" logical operators).
//
// Results do not own data: scalars are held inline, strings, lists and maps
// are referenced where they live (the claims, the tree's constants, or the
// evaluation's arena for list/map literals built at run time), so the common
// operators neither allocate nor copy claim strings. Errors record only
// pointers and kinds; their text is built by Explain() on the failure path.
//
// The recursion is bounded by the tree height (Limits::max_depth); the work
// by EvalContext::max_steps.
#ifndef KBS_POLICY_CEL_EVALUATOR_H_
#define KBS_POLICY_CEL_EVALUATOR_H_

#include <cstdint>
#include <forward_list>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "policy/cel/ast.h"
#include "policy/value.h"

namespace kbs::policy::cel::internal {

enum class ErrorKind : uint8_t {
  kAbsent,           // a map key (claim) is missing; `key` names it
  kTypeMismatch,     // no operator for these operand kinds (`lhs`, `rhs`)
  kIndexOutOfRange,  // list index `int_value` outside [0, `size`)
  kDuplicateKey,     // a map literal built at run time repeats `key`
  kOverflow,         // negating INT64_MIN
  kSteps,            // the step budget ran out
};

struct Result {
  static Result Of(const Value& value);
  static Result Bool(bool b);
  static Result Error(ErrorKind kind, const Node& node);

  absl::string_view string_value() const { return ref->string_value(); }
  // A Value holding the same data (copies shared pointers, not strings).
  Value ToValue() const;

  bool is_error = false;
  // When !is_error: the value's kind, and for kBool/kInt/kDouble the scalar,
  // for kString/kList/kMap the referenced value.
  Value::Kind kind = Value::Kind::kNull;
  bool bool_value = false;
  int64_t int_value = 0;
  double double_value = 0;
  const Value* ref = nullptr;
  // When is_error: what and where.
  ErrorKind error = ErrorKind::kAbsent;
  const Node* node = nullptr;
  Value::Kind lhs = Value::Kind::kNull;
  Value::Kind rhs = Value::Kind::kNull;
  int64_t size = 0;
  absl::string_view key;
};

struct EvalContext {
  EvalContext(const Value& root, int64_t max_steps) : root(root), max_steps(max_steps) {}

  const Value& root;
  const int64_t max_steps;
  int64_t steps = 0;
  bool exceeded = false;
  // Lists and maps built from non-constant literals; results point into it.
  // (A forward_list does not allocate until used and never moves elements.)
  std::forward_list<Value> arena;
};

Result Eval(const Node& node, EvalContext& ctx);

// Why the condition `root` did not pass, given its `result`: the step
// limit, the error it ended in, a non-bool result, or for a plain false the
// values of the claims it read (`tcb_status = "OutOfDate"`); for a false
// conjunction only those of its first false conjunct. `referenced` are the
// nodes CollectClaims returned for `root`; `source` is the condition's text.
std::string Explain(const Node& root, const Result& result, const EvalContext& ctx,
                    absl::string_view source, const std::vector<const Node*>& referenced);

}  // namespace kbs::policy::cel::internal

#endif  // KBS_POLICY_CEL_EVALUATOR_H_
