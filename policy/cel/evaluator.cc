#include "policy/cel/evaluator.h"

#include <cmath>
#include <cstdint>
#include <limits>
#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policy/cel/checker.h"
#include "re2/re2.h"

namespace kbs::policy::cel::internal {
namespace {

using Kind = Value::Kind;

Result Mismatch(const Node& n, Kind lhs, Kind rhs = Kind::kNull) {
  Result r = Result::Error(ErrorKind::kTypeMismatch, n);
  r.lhs = lhs;
  r.rhs = rhs;
  return r;
}

Result Absent(const Node& n, absl::string_view key) {
  Result r = Result::Error(ErrorKind::kAbsent, n);
  r.key = key;
  return r;
}

Result IntResult(int64_t v) {
  Result r;
  r.kind = Kind::kInt;
  r.int_value = v;
  return r;
}

Result DoubleResult(double v) {
  Result r;
  r.kind = Kind::kDouble;
  r.double_value = v;
  return r;
}

// Three-way comparison of an int with a double without rounding the int
// (langdef "Numeric Values": ordering and equality across int and double
// compare the mathematical values). 2 means unordered (NaN).
int CompareIntDouble(int64_t i, double d) {
  constexpr double kTwo63 = 9223372036854775808.0;
  if (std::isnan(d)) return 2;
  if (d >= kTwo63) return -1;
  if (d < -kTwo63) return 1;
  double whole = std::trunc(d);
  int64_t w = static_cast<int64_t>(whole);
  if (i != w) return i < w ? -1 : 1;
  if (d == whole) return 0;
  return d > whole ? -1 : 1;
}

// langdef "Equality": heterogeneous equality; values of different kinds are
// unequal, except int and double, which compare numerically.
bool Equal(const Result& a, const Result& b) {
  if (a.kind != b.kind) {
    if (a.kind == Kind::kInt && b.kind == Kind::kDouble) {
      return CompareIntDouble(a.int_value, b.double_value) == 0;
    }
    if (a.kind == Kind::kDouble && b.kind == Kind::kInt) {
      return CompareIntDouble(b.int_value, a.double_value) == 0;
    }
    return false;
  }
  switch (a.kind) {
    case Kind::kNull:
      return true;
    case Kind::kBool:
      return a.bool_value == b.bool_value;
    case Kind::kInt:
      return a.int_value == b.int_value;
    case Kind::kDouble:
      return a.double_value == b.double_value;
    case Kind::kString:
      return a.ref == b.ref || a.string_value() == b.string_value();
    case Kind::kList: {
      const ValueList& x = a.ref->list();
      const ValueList& y = b.ref->list();
      if (x.size() != y.size()) return false;
      for (size_t i = 0; i < x.size(); ++i) {
        if (!Equal(Result::Of(x[i]), Result::Of(y[i]))) return false;
      }
      return true;
    }
    case Kind::kMap: {
      const auto& x = a.ref->map().entries;
      if (x.size() != b.ref->map().entries.size()) return false;
      for (const auto& [key, value] : x) {
        const Value* other = b.ref->Find(key);
        if (other == nullptr || !Equal(Result::Of(value), Result::Of(*other))) return false;
      }
      return true;
    }
  }
  return false;
}

enum class Order { kLess, kEqual, kGreater, kUnordered, kInvalid };

Order FromInt(int c) {
  switch (c) {
    case -1:
      return Order::kLess;
    case 0:
      return Order::kEqual;
    case 1:
      return Order::kGreater;
    default:
      return Order::kUnordered;
  }
}

// langdef "Functions" (_<_ and friends): int, double (mixed too), string
// (byte-wise) and bool (false < true).
Order Compare(const Result& a, const Result& b) {
  if (a.kind == Kind::kInt && b.kind == Kind::kInt) {
    return FromInt(a.int_value < b.int_value ? -1 : (a.int_value > b.int_value ? 1 : 0));
  }
  if (a.kind == Kind::kDouble && b.kind == Kind::kDouble) {
    if (std::isnan(a.double_value) || std::isnan(b.double_value)) return Order::kUnordered;
    return FromInt(a.double_value < b.double_value ? -1
                                                   : (a.double_value > b.double_value ? 1 : 0));
  }
  if (a.kind == Kind::kInt && b.kind == Kind::kDouble) {
    return FromInt(CompareIntDouble(a.int_value, b.double_value));
  }
  if (a.kind == Kind::kDouble && b.kind == Kind::kInt) {
    int c = CompareIntDouble(b.int_value, a.double_value);
    return FromInt(c == 2 ? 2 : -c);
  }
  if (a.kind == Kind::kString && b.kind == Kind::kString) {
    int c = a.string_value().compare(b.string_value());
    return FromInt(c < 0 ? -1 : (c > 0 ? 1 : 0));
  }
  if (a.kind == Kind::kBool && b.kind == Kind::kBool) {
    return FromInt(a.bool_value == b.bool_value ? 0 : (a.bool_value ? 1 : -1));
  }
  return Order::kInvalid;
}

bool Step(EvalContext& ctx) {
  if (++ctx.steps > ctx.max_steps) ctx.exceeded = true;
  return !ctx.exceeded;
}

Result Field(const Node& n, const Result& container, absl::string_view key) {
  if (container.kind != Kind::kMap) return Mismatch(n, container.kind);
  const Value* v = container.ref->Find(key);
  if (v == nullptr) return Absent(n, key);
  return Result::Of(*v);
}

int64_t CodePoints(absl::string_view s) {
  int64_t n = 0;
  for (char c : s) n += (static_cast<unsigned char>(c) & 0xC0) != 0x80;
  return n;
}

Result EvalAndOr(const Node& n, EvalContext& ctx) {
  // langdef "Logical Operators": false && x and x && false are false even if
  // x is an error (true for ||); otherwise errors propagate.
  const bool absorbing = n.kind == NodeKind::kOr;
  Result l = Eval(*n.children[0], ctx);
  if (!l.is_error && l.kind == Kind::kBool && l.bool_value == absorbing) return l;
  Result r = Eval(*n.children[1], ctx);
  if (!r.is_error && r.kind == Kind::kBool && r.bool_value == absorbing) return r;
  if (l.is_error) return l;
  if (l.kind != Kind::kBool) return Mismatch(n, l.kind);
  if (r.is_error) return r;
  if (r.kind != Kind::kBool) return Mismatch(n, r.kind);
  return Result::Bool(!absorbing);
}

Result EvalIn(const Node& n, const Result& x, const Result& c, EvalContext& ctx) {
  if (c.kind == Kind::kList) {
    for (const Value& item : c.ref->list()) {
      if (!Step(ctx)) return Result::Error(ErrorKind::kSteps, n);
      if (Equal(x, Result::Of(item))) return Result::Bool(true);
    }
    return Result::Bool(false);
  }
  if (c.kind == Kind::kMap) {
    if (!Step(ctx)) return Result::Error(ErrorKind::kSteps, n);
    // Keys are strings; any other kind is simply not a key.
    return Result::Bool(x.kind == Kind::kString && c.ref->Find(x.string_value()) != nullptr);
  }
  return Mismatch(n, x.kind, c.kind);
}

Result EvalString(const Node& n, EvalContext& ctx) {
  Result s = Eval(*n.children[0], ctx);
  if (s.is_error) return s;
  if (n.kind == NodeKind::kMatches) {
    if (s.kind != Kind::kString) return Mismatch(n, s.kind, Kind::kString);
    absl::string_view text = s.string_value();
    return Result::Bool(RE2::PartialMatch(re2::StringPiece(text.data(), text.size()), *n.regex));
  }
  Result arg = Eval(*n.children[1], ctx);
  if (arg.is_error) return arg;
  if (s.kind != Kind::kString || arg.kind != Kind::kString) return Mismatch(n, s.kind, arg.kind);
  switch (n.kind) {
    case NodeKind::kStartsWith:
      return Result::Bool(absl::StartsWith(s.string_value(), arg.string_value()));
    case NodeKind::kEndsWith:
      return Result::Bool(absl::EndsWith(s.string_value(), arg.string_value()));
    default:
      return Result::Bool(absl::StrContains(s.string_value(), arg.string_value()));
  }
}

// List and map literals with non-constant parts (rare: constant ones were
// folded by the checker).
Result EvalLiteral(const Node& n, EvalContext& ctx) {
  if (n.kind == NodeKind::kList) {
    ValueList items;
    items.reserve(n.children.size());
    for (const auto& child : n.children) {
      Result r = Eval(*child, ctx);
      if (r.is_error) return r;
      items.push_back(r.ToValue());
    }
    ctx.arena.push_front(Value::List(std::move(items)));
    return Result::Of(ctx.arena.front());
  }
  ValueMap entries;
  entries.entries.reserve(n.children.size() / 2);
  for (size_t i = 0; i < n.children.size(); i += 2) {
    Result k = Eval(*n.children[i], ctx);
    if (k.is_error) return k;
    Result v = Eval(*n.children[i + 1], ctx);
    if (v.is_error) return v;
    if (k.kind != Kind::kString) return Mismatch(n, k.kind);
    if (!entries.entries.emplace(k.string_value(), v.ToValue()).second) {
      Result e = Result::Error(ErrorKind::kDuplicateKey, n);
      e.key = k.string_value();
      return e;
    }
  }
  ctx.arena.push_front(Value::Map(std::move(entries)));
  return Result::Of(ctx.arena.front());
}

}  // namespace

Result Result::Of(const Value& value) {
  Result r;
  r.kind = value.kind();
  switch (r.kind) {
    case Kind::kBool:
      r.bool_value = value.bool_value();
      break;
    case Kind::kInt:
      r.int_value = value.int_value();
      break;
    case Kind::kDouble:
      r.double_value = value.double_value();
      break;
    case Kind::kString:
    case Kind::kList:
    case Kind::kMap:
      r.ref = &value;
      break;
    case Kind::kNull:
      break;
  }
  return r;
}

Result Result::Bool(bool b) {
  Result r;
  r.kind = Kind::kBool;
  r.bool_value = b;
  return r;
}

Result Result::Error(ErrorKind kind, const Node& node) {
  Result r;
  r.is_error = true;
  r.error = kind;
  r.node = &node;
  return r;
}

Value Result::ToValue() const {
  switch (kind) {
    case Kind::kBool:
      return Value::Bool(bool_value);
    case Kind::kInt:
      return Value::Int(int_value);
    case Kind::kDouble:
      return Value::Double(double_value);
    case Kind::kString:
    case Kind::kList:
    case Kind::kMap:
      return *ref;
    case Kind::kNull:
      break;
  }
  return Value();
}

Result Eval(const Node& n, EvalContext& ctx) {
  if (!Step(ctx)) return Result::Error(ErrorKind::kSteps, n);
  switch (n.kind) {
    case NodeKind::kConst:
      return Result::Of(n.constant);
    case NodeKind::kIdent: {
      const Value* v = ctx.root.Find(n.name);
      if (v == nullptr) return Absent(n, n.name);
      return Result::Of(*v);
    }
    case NodeKind::kSelect: {
      Result m = Eval(*n.children[0], ctx);
      if (m.is_error) return m;
      return Field(n, m, n.name);
    }
    case NodeKind::kIndex: {
      Result c = Eval(*n.children[0], ctx);
      if (c.is_error) return c;
      Result k = Eval(*n.children[1], ctx);
      if (k.is_error) return k;
      if (c.kind == Kind::kList && k.kind == Kind::kInt) {
        const ValueList& list = c.ref->list();
        if (k.int_value < 0 || static_cast<uint64_t>(k.int_value) >= list.size()) {
          Result e = Result::Error(ErrorKind::kIndexOutOfRange, n);
          e.int_value = k.int_value;
          e.size = static_cast<int64_t>(list.size());
          return e;
        }
        return Result::Of(list[static_cast<size_t>(k.int_value)]);
      }
      if (c.kind == Kind::kMap && k.kind == Kind::kString) return Field(n, c, k.string_value());
      return Mismatch(n, c.kind, k.kind);
    }
    case NodeKind::kList:
    case NodeKind::kMap:
      return EvalLiteral(n, ctx);
    case NodeKind::kHas: {
      // langdef "Macros": has(e.f) is true when map e has key f.
      const Node& select = *n.children[0];
      Result m = Eval(*select.children[0], ctx);
      if (m.is_error) return m;
      if (m.kind != Kind::kMap) return Mismatch(n, m.kind);
      return Result::Bool(m.ref->Find(select.name) != nullptr);
    }
    case NodeKind::kNot: {
      Result r = Eval(*n.children[0], ctx);
      if (r.is_error) return r;
      if (r.kind != Kind::kBool) return Mismatch(n, r.kind);
      return Result::Bool(!r.bool_value);
    }
    case NodeKind::kNeg: {
      Result r = Eval(*n.children[0], ctx);
      if (r.is_error) return r;
      if (r.kind == Kind::kInt) {
        if (r.int_value == std::numeric_limits<int64_t>::min()) {
          return Result::Error(ErrorKind::kOverflow, n);
        }
        return IntResult(-r.int_value);
      }
      if (r.kind == Kind::kDouble) return DoubleResult(-r.double_value);
      return Mismatch(n, r.kind);
    }
    case NodeKind::kAnd:
    case NodeKind::kOr:
      return EvalAndOr(n, ctx);
    case NodeKind::kTernary: {
      Result c = Eval(*n.children[0], ctx);
      if (c.is_error) return c;
      if (c.kind != Kind::kBool) return Mismatch(n, c.kind);
      return Eval(*n.children[c.bool_value ? 1 : 2], ctx);
    }
    case NodeKind::kEq:
    case NodeKind::kNe:
    case NodeKind::kLt:
    case NodeKind::kLe:
    case NodeKind::kGt:
    case NodeKind::kGe:
    case NodeKind::kIn: {
      Result a = Eval(*n.children[0], ctx);
      if (a.is_error) return a;
      Result b = Eval(*n.children[1], ctx);
      if (b.is_error) return b;
      switch (n.kind) {
        case NodeKind::kEq:
          return Result::Bool(Equal(a, b));
        case NodeKind::kNe:
          return Result::Bool(!Equal(a, b));
        case NodeKind::kIn:
          return EvalIn(n, a, b, ctx);
        default:
          break;
      }
      Order order = Compare(a, b);
      switch (order) {
        case Order::kInvalid:
          return Mismatch(n, a.kind, b.kind);
        case Order::kUnordered:
          return Result::Bool(false);
        default:
          break;
      }
      switch (n.kind) {
        case NodeKind::kLt:
          return Result::Bool(order == Order::kLess);
        case NodeKind::kLe:
          return Result::Bool(order != Order::kGreater);
        case NodeKind::kGt:
          return Result::Bool(order == Order::kGreater);
        default:
          return Result::Bool(order != Order::kLess);
      }
    }
    case NodeKind::kSize: {
      Result r = Eval(*n.children[0], ctx);
      if (r.is_error) return r;
      switch (r.kind) {
        case Kind::kString:
          return IntResult(CodePoints(r.string_value()));
        case Kind::kList:
          return IntResult(static_cast<int64_t>(r.ref->list().size()));
        case Kind::kMap:
          return IntResult(static_cast<int64_t>(r.ref->map().entries.size()));
        default:
          return Mismatch(n, r.kind);
      }
    }
    case NodeKind::kStartsWith:
    case NodeKind::kEndsWith:
    case NodeKind::kContains:
    case NodeKind::kMatches:
      return EvalString(n, ctx);
    case NodeKind::kCall:
      break;  // resolved by the checker
  }
  return Mismatch(n, Kind::kNull);
}

// ---- Explanations (failure path only) ----

namespace {

constexpr size_t kRenderChars = 64;
constexpr size_t kSnippetChars = 80;

std::string Snippet(const Node& n, absl::string_view source) {
  absl::string_view text = source.substr(n.begin, n.end - n.begin);
  if (text.size() <= kSnippetChars) return std::string(text);
  size_t cut = kSnippetChars;
  while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(text.substr(0, cut), "…");
}

std::string KeyForDisplay(absl::string_view key) {
  return Value::String(std::string(key.substr(0, kRenderChars))).Render(kRenderChars);
}

std::string DescribeAbsent(const Result& r, absl::string_view source) {
  const Node& n = *r.node;
  if (!n.path.empty()) return absl::StrCat("claim ", n.path, " is absent");
  const Node* parent = n.children.empty() ? nullptr : n.children[0].get();
  if (parent != nullptr && !parent->path.empty()) {
    return absl::StrCat("claim ", parent->path, "[", KeyForDisplay(r.key), "] is absent");
  }
  return absl::StrCat("key ", KeyForDisplay(r.key), " is absent in ", Snippet(n, source));
}

std::string DescribeMismatch(const Result& r, absl::string_view source) {
  const Node& n = *r.node;
  absl::string_view lhs = Value::KindName(r.lhs);
  absl::string_view rhs = Value::KindName(r.rhs);
  std::string what;
  switch (n.kind) {
    case NodeKind::kEq:
    case NodeKind::kNe:
    case NodeKind::kLt:
    case NodeKind::kLe:
    case NodeKind::kGt:
    case NodeKind::kGe:
    case NodeKind::kIn:
      what = absl::StrCat(lhs, " ", OperatorName(n.kind), " ", rhs);
      break;
    case NodeKind::kNot:
      what = absl::StrCat("! needs bool, got ", lhs);
      break;
    case NodeKind::kNeg:
      what = absl::StrCat("- needs int or double, got ", lhs);
      break;
    case NodeKind::kAnd:
    case NodeKind::kOr:
      what = absl::StrCat(OperatorName(n.kind), " needs bool, got ", lhs);
      break;
    case NodeKind::kTernary:
      what = absl::StrCat("the condition of ?: needs bool, got ", lhs);
      break;
    case NodeKind::kSelect:
      what = absl::StrCat("cannot select field '", n.name, "' from ", lhs);
      break;
    case NodeKind::kHas:
      what = absl::StrCat("cannot select field '", n.children[0]->name, "' from ", lhs);
      break;
    case NodeKind::kIndex:
      what = absl::StrCat("cannot index ", lhs, " with ", rhs);
      break;
    case NodeKind::kMap:
      what = absl::StrCat("map keys must be strings, got ", lhs);
      break;
    case NodeKind::kSize:
      what = absl::StrCat("size() of ", lhs);
      break;
    case NodeKind::kStartsWith:
      what = absl::StrCat(lhs, ".startsWith(", rhs, ")");
      break;
    case NodeKind::kEndsWith:
      what = absl::StrCat(lhs, ".endsWith(", rhs, ")");
      break;
    case NodeKind::kContains:
      what = absl::StrCat(lhs, ".contains(", rhs, ")");
      break;
    case NodeKind::kMatches:
      what = absl::StrCat(lhs, ".matches(string)");
      break;
    default:
      what = "unsupported operands";
      break;
  }
  return absl::StrCat("type mismatch: ", what, " in ", Snippet(n, source));
}

std::string DescribeError(const Result& r, const EvalContext& ctx, absl::string_view source) {
  switch (r.error) {
    case ErrorKind::kAbsent:
      return DescribeAbsent(r, source);
    case ErrorKind::kTypeMismatch:
      return DescribeMismatch(r, source);
    case ErrorKind::kIndexOutOfRange:
      return absl::StrCat("index ", r.int_value, " out of range for a list of ", r.size, " in ",
                          Snippet(*r.node, source));
    case ErrorKind::kDuplicateKey:
      return absl::StrCat("duplicate map key ", KeyForDisplay(r.key), " in ",
                          Snippet(*r.node, source));
    case ErrorKind::kOverflow:
      return absl::StrCat("integer overflow in ", Snippet(*r.node, source));
    case ErrorKind::kSteps:
      return absl::StrCat("evaluation exceeded ", ctx.max_steps, " steps");
  }
  return "evaluation failed";
}

// "path = value" for each claim `nodes` read, as the condition saw them.
std::string DescribeClaims(const EvalContext& ctx, absl::string_view source,
                           const std::vector<const Node*>& nodes) {
  constexpr size_t kMaxClaims = 16;
  std::vector<std::string> parts;
  for (const Node* node : nodes) {
    if (parts.size() == kMaxClaims) {
      parts.push_back(absl::StrCat("and ", nodes.size() - kMaxClaims, " more"));
      break;
    }
    // Claim paths are lookups bounded by the tree height.
    EvalContext lookup(ctx.root, ctx.max_steps);
    Result r = Eval(*node, lookup);
    if (!r.is_error) {
      parts.push_back(absl::StrCat(node->path, " = ", r.ToValue().Render(kRenderChars)));
    } else if (r.error == ErrorKind::kAbsent) {
      parts.push_back(absl::StrCat(node->path, " is absent"));
    } else {
      parts.push_back(absl::StrCat(node->path, ": ", DescribeError(r, lookup, source)));
    }
  }
  return absl::StrJoin(parts, ", ");
}

// For a false conjunction, the first conjunct (in source order) that is
// false on its own, descending through nested `&&`: that is the part of the
// condition the operator needs to see. Re-evaluates subtrees, which fit in
// the budget because the whole condition did.
const Node& FalseConjunct(const Node& root, const EvalContext& ctx) {
  const Node* current = &root;
  while (current->kind == NodeKind::kAnd) {
    const Node* next = nullptr;
    for (const auto& child : current->children) {
      EvalContext sub(ctx.root, ctx.max_steps);
      Result r = Eval(*child, sub);
      if (!sub.exceeded && !r.is_error && r.kind == Kind::kBool && !r.bool_value) {
        next = child.get();
        break;
      }
    }
    if (next == nullptr) break;
    current = next;
  }
  return *current;
}

}  // namespace

std::string Explain(const Node& root, const Result& result, const EvalContext& ctx,
                    absl::string_view source, const std::vector<const Node*>& referenced) {
  if (ctx.exceeded) return absl::StrCat("evaluation exceeded ", ctx.max_steps, " steps");
  if (result.is_error) return DescribeError(result, ctx, source);
  if (result.kind != Kind::kBool) {
    if (result.kind == Kind::kNull) return "condition result is null, not bool";
    return absl::StrCat("condition result is ", Value::KindName(result.kind), " ",
                        result.ToValue().Render(kRenderChars), ", not bool");
  }
  const Node& conjunct = FalseConjunct(root, ctx);
  if (&conjunct != &root) {
    std::vector<std::string> paths;
    std::vector<const Node*> nodes;
    CollectClaims(conjunct, paths, nodes);
    if (!nodes.empty()) return DescribeClaims(ctx, source, nodes);
  }
  if (referenced.empty()) return "condition is false";
  return DescribeClaims(ctx, source, referenced);
}

}  // namespace kbs::policy::cel::internal
