#include "policy/cel/expression.h"

#include <cstdint>
#include <limits>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "policy/cel/ast.h"
#include "policy/cel/checker.h"
#include "policy/cel/evaluator.h"
#include "policy/cel/parser.h"

namespace kbs::policy::cel {

Expression::Expression(std::string source, const Limits& limits)
    : source_(std::move(source)), limits_(limits) {}

Expression::~Expression() = default;

absl::StatusOr<std::unique_ptr<Expression>> Expression::Compile(absl::string_view source,
                                                                const Limits& limits) {
  if (source.size() > limits.max_expression_bytes) {
    return absl::InvalidArgumentError(absl::StrCat("expression is ", source.size(),
                                                   " bytes, more than the limit of ",
                                                   limits.max_expression_bytes));
  }
  if (source.size() >= std::numeric_limits<uint32_t>::max()) {
    return absl::InvalidArgumentError("expression too long");  // offsets are 32-bit
  }
  if (limits.max_depth < 1) return absl::InvalidArgumentError("max_depth must be at least 1");
  std::unique_ptr<Expression> expr(new Expression(std::string(source), limits));
  // Offsets in the tree refer to expr->source_, which never changes.
  KBS_ASSIGN_OR_RETURN(expr->root_, internal::Parse(expr->source_, expr->limits_));
  KBS_RETURN_IF_ERROR(internal::Check(*expr->root_));
  internal::CollectClaims(*expr->root_, expr->referenced_claims_, expr->referenced_nodes_);
  return expr;
}

Outcome Expression::Evaluate(const Value& claims) const {
  internal::EvalContext ctx(claims, limits_.max_steps);
  internal::Result result = internal::Eval(*root_, ctx);
  Outcome outcome;
  if (!ctx.exceeded && !result.is_error && result.kind == Value::Kind::kBool && result.bool_value) {
    outcome.pass = true;
    return outcome;
  }
  outcome.explanation = internal::Explain(*root_, result, ctx, source_, referenced_nodes_);
  return outcome;
}

}  // namespace kbs::policy::cel
