// The syntax tree of a policy condition, shared by the parser (which builds
// it), the checker (which resolves calls, infers static types, folds constant
// literals and compiles regular expressions in place) and the evaluator
// (which only reads it). After Expression::Compile the tree is immutable and
// may be read from any number of threads.
//
// Offsets are byte offsets into the expression source; errors report them as
// 1-based columns.
#ifndef KBS_POLICY_CEL_AST_H_
#define KBS_POLICY_CEL_AST_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "policy/value.h"
#include "re2/re2.h"

namespace kbs::policy::cel::internal {

enum class NodeKind : uint8_t {
  kConst,   // literal, or a list/map literal folded at compile time
  kIdent,   // a root claim
  kSelect,  // children[0].name
  kIndex,   // children[0][children[1]]
  kList,    // [children...] with non-constant elements
  kMap,     // {children[0]: children[1], ...} with non-constant entries
  kCall,    // parser only: name(children...) or children[0].name(children[1...])
  kHas,     // has(children[0]) where children[0] is a kSelect
  kNot,
  kNeg,
  kAnd,
  kOr,
  kTernary,  // children[0] ? children[1] : children[2]
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kIn,
  kSize,        // size(children[0])
  kStartsWith,  // children[0].startsWith(children[1])
  kEndsWith,
  kContains,
  kMatches,  // children[0].matches(regex)
};

// Static types the checker infers. Claims are kDyn: their type is only known
// when the condition is evaluated.
enum class Type : uint8_t { kDyn, kNull, kBool, kInt, kDouble, kString, kList, kMap };

absl::string_view TypeName(Type type);
Type TypeOfKind(Value::Kind kind);
// The operator's spelling in the source ("<", "in", "&&", ...), or "" for
// nodes that are not operators.
absl::string_view OperatorName(NodeKind kind);

struct Node {
  Node(NodeKind kind, uint32_t pos, uint32_t begin, uint32_t end)
      : kind(kind), pos(pos), begin(begin), end(end) {}

  NodeKind kind;
  Type type = Type::kDyn;  // set by the checker
  // The offset errors point at (the operator or name token), and the source
  // span [begin, end) quoted in runtime explanations.
  uint32_t pos;
  uint32_t begin;
  uint32_t end;
  // Height of this subtree (a leaf is 1); bounded by Limits::max_depth, which
  // bounds every recursion over the tree.
  int height = 1;
  // The literal 9223372036854775808, only valid right after a unary minus.
  bool needs_negation = false;
  Value constant;              // kConst
  std::string name;            // kIdent, kSelect: the field; kCall: the function
  bool receiver_call = false;  // kCall: written as children[0].name(...)
  std::vector<std::unique_ptr<Node>> children;
  std::unique_ptr<re2::RE2> regex;  // kMatches
  // For nodes that read a claim at a fixed path from the root (kIdent, and
  // kSelect/kIndex with constant keys over such a node): the path in dotted
  // form, e.g. "snp.tcb.snp" or "images[0]". Empty otherwise.
  std::string path;
};

using NodePtr = std::unique_ptr<Node>;

// InvalidArgument "column <offset+1>: <message>".
absl::Status CompileError(size_t offset, absl::string_view message);

}  // namespace kbs::policy::cel::internal

#endif  // KBS_POLICY_CEL_AST_H_
