// Recursive-descent parser for the CEL subset, following the grammar of
// cel-spec doc/langdef.md ("Syntax"):
//
//   Expr           = ConditionalOr ["?" ConditionalOr ":" Expr]
//   ConditionalOr  = [ConditionalOr "||"] ConditionalAnd
//   ConditionalAnd = [ConditionalAnd "&&"] Relation
//   Relation       = [Relation Relop] Unary      (Relop: < <= >= > == != in)
//   Unary          = Member | "!" {"!"} Member | "-" {"-"} Member
//   Member         = Primary | Member "." IDENT ["(" [ExprList] ")"]
//                  | Member "[" Expr "]"
//   Primary        = ["."] IDENT ["(" [ExprList] ")"] | "(" Expr ")"
//                  | "[" [ExprList] [","] "]" | "{" [MapInits] [","] "}"
//                  | LITERAL
//
// The Addition and Multiplication levels are left out: `+ - * / %` between
// operands are rejected with an error naming the operator. `has(a.b)` is
// expanded here, as CEL macros are, into a kHas node. Chains of `&&` and
// `||` become balanced trees (both are associative and commutative in CEL),
// so long chains stay shallow. A unary minus directly on a numeric literal
// is folded into the literal (which is how -9223372036854775808 is written).
//
// Enforces Limits::max_depth on both the recursion and the height of the
// tree (so 10,000 `(` fail fast without exhausting the stack), and
// Limits::max_literal_elements. Produces kCall nodes that the checker
// resolves.
#ifndef KBS_POLICY_CEL_PARSER_H_
#define KBS_POLICY_CEL_PARSER_H_

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "policy/cel/ast.h"
#include "policy/cel/expression.h"

namespace kbs::policy::cel::internal {

absl::StatusOr<NodePtr> Parse(absl::string_view source, const Limits& limits);

}  // namespace kbs::policy::cel::internal

#endif  // KBS_POLICY_CEL_PARSER_H_
