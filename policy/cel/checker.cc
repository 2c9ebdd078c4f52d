#include "policy/cel/checker.h"

#include <initializer_list>
#include <memory>
#include <utility>

#include "absl/container/flat_hash_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "re2/re2.h"

namespace kbs::policy::cel::internal {
namespace {

bool OneOf(Type actual, std::initializer_list<Type> wanted) {
  if (actual == Type::kDyn) return true;
  for (Type t : wanted) {
    if (t == actual) return true;
  }
  return false;
}

bool IsNumeric(Type t) { return t == Type::kInt || t == Type::kDouble; }

// langdef "Functions": the ordering operators are defined on int, double
// (also mixed), string and bool pairs.
bool Orderable(Type a, Type b) {
  auto ordered = [](Type t) {
    return OneOf(t, {Type::kInt, Type::kDouble, Type::kString, Type::kBool});
  };
  if (!ordered(a) || !ordered(b)) return false;
  if (a == Type::kDyn || b == Type::kDyn) return true;
  return (IsNumeric(a) && IsNumeric(b)) || a == b;
}

bool IsIdentifier(absl::string_view s) {
  if (s.empty() || !(absl::ascii_isalpha(s[0]) || s[0] == '_')) return false;
  for (char c : s) {
    if (!(absl::ascii_isalnum(c) || c == '_')) return false;
  }
  return true;
}

bool IsMacro(absl::string_view name) {
  return name == "all" || name == "exists" || name == "exists_one" || name == "map" ||
         name == "filter";
}

class Checker {
 public:
  absl::StatusOr<Type> Visit(Node& n) {
    KBS_ASSIGN_OR_RETURN(Type type, VisitNode(n));
    n.type = type;
    return type;
  }

 private:
  absl::StatusOr<Type> VisitNode(Node& n) {
    switch (n.kind) {
      case NodeKind::kConst:
        if (n.needs_negation) return CompileError(n.pos, "integer literal out of range");
        return TypeOfKind(n.constant.kind());
      case NodeKind::kIdent:
        n.path = n.name;
        return Type::kDyn;
      case NodeKind::kSelect:
        return Select(n);
      case NodeKind::kIndex:
        return Index(n);
      case NodeKind::kList:
        return List(n);
      case NodeKind::kMap:
        return Map(n);
      case NodeKind::kCall:
        return Call(n);
      case NodeKind::kHas: {
        KBS_RETURN_IF_ERROR(Visit(*n.children[0]).status());
        return Type::kBool;
      }
      case NodeKind::kNot: {
        KBS_ASSIGN_OR_RETURN(Type t, Visit(*n.children[0]));
        if (!OneOf(t, {Type::kBool})) {
          return CompileError(n.pos, absl::StrCat("'!' needs bool, got ", TypeName(t)));
        }
        return Type::kBool;
      }
      case NodeKind::kNeg: {
        KBS_ASSIGN_OR_RETURN(Type t, Visit(*n.children[0]));
        if (!OneOf(t, {Type::kInt, Type::kDouble})) {
          return CompileError(n.pos, absl::StrCat("'-' needs int or double, got ", TypeName(t)));
        }
        return t;
      }
      case NodeKind::kAnd:
      case NodeKind::kOr: {
        for (NodePtr& child : n.children) {
          KBS_ASSIGN_OR_RETURN(Type t, Visit(*child));
          if (!OneOf(t, {Type::kBool})) {
            return CompileError(n.pos, absl::StrCat("'", OperatorName(n.kind),
                                                    "' needs bool operands, got ", TypeName(t)));
          }
        }
        return Type::kBool;
      }
      case NodeKind::kTernary: {
        KBS_ASSIGN_OR_RETURN(Type c, Visit(*n.children[0]));
        if (!OneOf(c, {Type::kBool})) {
          return CompileError(
              n.pos, absl::StrCat("the condition of '?:' must be bool, got ", TypeName(c)));
        }
        KBS_ASSIGN_OR_RETURN(Type a, Visit(*n.children[1]));
        KBS_ASSIGN_OR_RETURN(Type b, Visit(*n.children[2]));
        return a == b ? a : Type::kDyn;
      }
      case NodeKind::kEq:
      case NodeKind::kNe: {
        // langdef "Equality": defined on all values; values of different
        // types are unequal (numbers compare across int and double).
        KBS_RETURN_IF_ERROR(Visit(*n.children[0]).status());
        KBS_RETURN_IF_ERROR(Visit(*n.children[1]).status());
        return Type::kBool;
      }
      case NodeKind::kLt:
      case NodeKind::kLe:
      case NodeKind::kGt:
      case NodeKind::kGe: {
        KBS_ASSIGN_OR_RETURN(Type a, Visit(*n.children[0]));
        KBS_ASSIGN_OR_RETURN(Type b, Visit(*n.children[1]));
        if (!Orderable(a, b)) {
          return CompileError(n.pos, absl::StrCat("cannot compare ", TypeName(a), " ",
                                                  OperatorName(n.kind), " ", TypeName(b)));
        }
        return Type::kBool;
      }
      case NodeKind::kIn: {
        KBS_ASSIGN_OR_RETURN(Type a, Visit(*n.children[0]));
        KBS_ASSIGN_OR_RETURN(Type b, Visit(*n.children[1]));
        if (!OneOf(b, {Type::kList, Type::kMap})) {
          return CompileError(
              n.pos, absl::StrCat("'in' needs a list or map on the right, got ", TypeName(b)));
        }
        if (b == Type::kMap && !OneOf(a, {Type::kString})) {
          return CompileError(n.pos, absl::StrCat("map keys are strings; 'in' cannot find ",
                                                  TypeName(a), " in a map"));
        }
        return Type::kBool;
      }
      default:
        // Resolved kinds only appear after Call() rewrote a node.
        return CompileError(n.pos, "internal: unexpected node");
    }
  }

  absl::StatusOr<Type> Select(Node& n) {
    KBS_ASSIGN_OR_RETURN(Type t, Visit(*n.children[0]));
    if (!OneOf(t, {Type::kMap})) {
      return CompileError(n.pos,
                          absl::StrCat("cannot select field '", n.name, "' from ", TypeName(t)));
    }
    if (!n.children[0]->path.empty()) n.path = absl::StrCat(n.children[0]->path, ".", n.name);
    return Type::kDyn;
  }

  absl::StatusOr<Type> Index(Node& n) {
    KBS_ASSIGN_OR_RETURN(Type c, Visit(*n.children[0]));
    KBS_ASSIGN_OR_RETURN(Type k, Visit(*n.children[1]));
    bool ok = false;
    switch (c) {
      case Type::kList:
        ok = OneOf(k, {Type::kInt});
        break;
      case Type::kMap:
        ok = OneOf(k, {Type::kString});
        break;
      case Type::kDyn:
        ok = OneOf(k, {Type::kInt, Type::kString});
        break;
      default:
        break;
    }
    if (!ok) {
      return CompileError(n.pos, absl::StrCat("cannot index ", TypeName(c), " with ", TypeName(k)));
    }
    const Node& parent = *n.children[0];
    const Node& key = *n.children[1];
    if (!parent.path.empty() && key.kind == NodeKind::kConst) {
      if (key.constant.is_string()) {
        const std::string& s = key.constant.string_value();
        n.path = IsIdentifier(s) ? absl::StrCat(parent.path, ".", s)
                                 : absl::StrCat(parent.path, "[", key.constant.Render(64), "]");
      } else if (key.constant.is_int()) {
        n.path = absl::StrCat(parent.path, "[", key.constant.int_value(), "]");
      }
    }
    return Type::kDyn;
  }

  absl::StatusOr<Type> List(Node& n) {
    bool constant = true;
    for (NodePtr& child : n.children) {
      KBS_RETURN_IF_ERROR(Visit(*child).status());
      constant = constant && child->kind == NodeKind::kConst;
    }
    if (constant) {
      ValueList items;
      items.reserve(n.children.size());
      for (const NodePtr& child : n.children) items.push_back(child->constant);
      n.kind = NodeKind::kConst;
      n.constant = Value::List(std::move(items));
      n.children.clear();
    }
    return Type::kList;
  }

  absl::StatusOr<Type> Map(Node& n) {
    bool constant = true;
    absl::flat_hash_set<std::string> keys;
    for (size_t i = 0; i < n.children.size(); i += 2) {
      KBS_ASSIGN_OR_RETURN(Type k, Visit(*n.children[i]));
      KBS_RETURN_IF_ERROR(Visit(*n.children[i + 1]).status());
      const Node& key = *n.children[i];
      if (!OneOf(k, {Type::kString})) {
        return CompileError(key.begin, absl::StrCat("map keys must be strings, got ", TypeName(k)));
      }
      if (key.kind == NodeKind::kConst && !keys.insert(key.constant.string_value()).second) {
        // langdef "Maps": duplicate keys are an error.
        return CompileError(key.begin, absl::StrCat("duplicate map key ", key.constant.Render(64)));
      }
      constant =
          constant && key.kind == NodeKind::kConst && n.children[i + 1]->kind == NodeKind::kConst;
    }
    if (constant) {
      ValueMap entries;
      entries.entries.reserve(n.children.size() / 2);
      for (size_t i = 0; i < n.children.size(); i += 2) {
        entries.entries.emplace(n.children[i]->constant.string_value(),
                                n.children[i + 1]->constant);
      }
      n.kind = NodeKind::kConst;
      n.constant = Value::Map(std::move(entries));
      n.children.clear();
    }
    return Type::kMap;
  }

  absl::Status Arity(const Node& n, size_t want) {
    size_t got = n.children.size() - (n.receiver_call ? 1 : 0);
    if (got == want) return absl::OkStatus();
    return CompileError(n.pos, absl::StrCat(n.name, "() takes ", want,
                                            want == 1 ? " argument" : " arguments", ", got ", got));
  }

  // Resolves the call to one of the supported functions (langdef "List of
  // Standard Definitions": size, startsWith, endsWith, contains, matches).
  absl::StatusOr<Type> Call(Node& n) {
    const std::string& name = n.name;
    if (!n.receiver_call) {
      if (name == "size") {
        KBS_RETURN_IF_ERROR(Arity(n, 1));
        n.kind = NodeKind::kSize;
      } else if (name == "matches") {
        KBS_RETURN_IF_ERROR(Arity(n, 2));
        n.kind = NodeKind::kMatches;
      } else if (name == "startsWith" || name == "endsWith" || name == "contains") {
        return CompileError(n.pos, absl::StrCat("'", name, "' is a method: write x.", name, "(y)"));
      } else if (IsMacro(name)) {
        return CompileError(n.pos, absl::StrCat("macro '", name, "' is not supported"));
      } else {
        return CompileError(n.pos, absl::StrCat("unknown function '", name, "'"));
      }
    } else {
      if (name == "size") {
        KBS_RETURN_IF_ERROR(Arity(n, 0));
        n.kind = NodeKind::kSize;
      } else if (name == "startsWith") {
        KBS_RETURN_IF_ERROR(Arity(n, 1));
        n.kind = NodeKind::kStartsWith;
      } else if (name == "endsWith") {
        KBS_RETURN_IF_ERROR(Arity(n, 1));
        n.kind = NodeKind::kEndsWith;
      } else if (name == "contains") {
        KBS_RETURN_IF_ERROR(Arity(n, 1));
        n.kind = NodeKind::kContains;
      } else if (name == "matches") {
        KBS_RETURN_IF_ERROR(Arity(n, 1));
        n.kind = NodeKind::kMatches;
      } else if (IsMacro(name)) {
        return CompileError(n.pos, absl::StrCat("macro '", name, "' is not supported"));
      } else {
        return CompileError(n.pos, absl::StrCat("unknown method '", name, "'"));
      }
    }

    std::vector<Type> types;
    for (NodePtr& child : n.children) {
      KBS_ASSIGN_OR_RETURN(Type t, Visit(*child));
      types.push_back(t);
    }
    switch (n.kind) {
      case NodeKind::kSize:
        if (!OneOf(types[0], {Type::kString, Type::kList, Type::kMap})) {
          return CompileError(
              n.pos, absl::StrCat("size() needs a string, list or map, got ", TypeName(types[0])));
        }
        return Type::kInt;
      case NodeKind::kStartsWith:
      case NodeKind::kEndsWith:
      case NodeKind::kContains:
        if (!OneOf(types[0], {Type::kString}) || !OneOf(types[1], {Type::kString})) {
          return CompileError(
              n.pos, absl::StrCat(name, "() needs string operands, got ", TypeName(types[0]), ".",
                                  name, "(", TypeName(types[1]), ")"));
        }
        return Type::kBool;
      case NodeKind::kMatches:
        return Matches(n, types[0]);
      default:
        return CompileError(n.pos, "internal: unresolved call");
    }
  }

  // langdef "Regular Expressions": RE2 syntax; matches() is true when the
  // pattern matches any substring (unanchored search).
  absl::StatusOr<Type> Matches(Node& n, Type subject) {
    const Node& pattern = *n.children[1];
    if (!OneOf(subject, {Type::kString})) {
      return CompileError(n.pos, absl::StrCat("matches() needs a string, got ", TypeName(subject)));
    }
    if (pattern.kind != NodeKind::kConst || !pattern.constant.is_string()) {
      return CompileError(pattern.begin, "the pattern of matches() must be a string literal");
    }
    RE2::Options options;
    options.set_log_errors(false);
    auto regex = std::make_unique<RE2>(pattern.constant.string_value(), options);
    if (!regex->ok()) {
      return CompileError(pattern.begin,
                          absl::StrCat("invalid regular expression: ", regex->error()));
    }
    n.regex = std::move(regex);
    n.children.pop_back();
    return Type::kBool;
  }
};

void Collect(const Node& n, bool extended, absl::flat_hash_set<std::string>& seen,
             std::vector<std::string>& paths, std::vector<const Node*>& nodes) {
  if (!n.path.empty() && !extended && seen.insert(n.path).second) {
    paths.push_back(n.path);
    nodes.push_back(&n);
  }
  for (size_t i = 0; i < n.children.size(); ++i) {
    bool child_extended =
        i == 0 && !n.path.empty() && (n.kind == NodeKind::kSelect || n.kind == NodeKind::kIndex);
    Collect(*n.children[i], child_extended, seen, paths, nodes);
  }
}

}  // namespace

absl::Status Check(Node& root) {
  KBS_ASSIGN_OR_RETURN(Type type, Checker().Visit(root));
  if (type != Type::kBool && type != Type::kDyn) {
    return CompileError(root.begin,
                        absl::StrCat("a condition must be bool, but this one is ", TypeName(type)));
  }
  return absl::OkStatus();
}

void CollectClaims(const Node& root, std::vector<std::string>& paths,
                   std::vector<const Node*>& nodes) {
  absl::flat_hash_set<std::string> seen;
  Collect(root, false, seen, paths, nodes);
}

}  // namespace kbs::policy::cel::internal
