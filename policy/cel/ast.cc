#include "policy/cel/ast.h"

#include "absl/strings/str_cat.h"

namespace kbs::policy::cel::internal {

absl::string_view TypeName(Type type) {
  switch (type) {
    case Type::kDyn:
      return "dyn";
    case Type::kNull:
      return "null";
    case Type::kBool:
      return "bool";
    case Type::kInt:
      return "int";
    case Type::kDouble:
      return "double";
    case Type::kString:
      return "string";
    case Type::kList:
      return "list";
    case Type::kMap:
      return "map";
  }
  return "?";
}

Type TypeOfKind(Value::Kind kind) {
  switch (kind) {
    case Value::Kind::kNull:
      return Type::kNull;
    case Value::Kind::kBool:
      return Type::kBool;
    case Value::Kind::kInt:
      return Type::kInt;
    case Value::Kind::kDouble:
      return Type::kDouble;
    case Value::Kind::kString:
      return Type::kString;
    case Value::Kind::kList:
      return Type::kList;
    case Value::Kind::kMap:
      return Type::kMap;
  }
  return Type::kDyn;
}

absl::string_view OperatorName(NodeKind kind) {
  switch (kind) {
    case NodeKind::kNot:
      return "!";
    case NodeKind::kNeg:
      return "-";
    case NodeKind::kAnd:
      return "&&";
    case NodeKind::kOr:
      return "||";
    case NodeKind::kTernary:
      return "?:";
    case NodeKind::kEq:
      return "==";
    case NodeKind::kNe:
      return "!=";
    case NodeKind::kLt:
      return "<";
    case NodeKind::kLe:
      return "<=";
    case NodeKind::kGt:
      return ">";
    case NodeKind::kGe:
      return ">=";
    case NodeKind::kIn:
      return "in";
    default:
      return "";
  }
}

absl::Status CompileError(size_t offset, absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("column ", offset + 1, ": ", message));
}

}  // namespace kbs::policy::cel::internal
