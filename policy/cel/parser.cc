#include "policy/cel/parser.h"

#include <algorithm>
#include <cstdint>
#include <limits>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "policy/cel/lexer.h"

namespace kbs::policy::cel::internal {
namespace {

constexpr uint64_t kInt64MinMagnitude = uint64_t{1} << 63;

class Parser {
 public:
  Parser(absl::string_view source, std::vector<Token> tokens, const Limits& limits)
      : src_(source), tokens_(std::move(tokens)), limits_(limits) {}

  absl::StatusOr<NodePtr> ParseAll() {
    KBS_ASSIGN_OR_RETURN(NodePtr root, ParseExpr());
    if (Peek().kind != TokenKind::kEnd) return Unexpected(Peek());
    return root;
  }

 private:
  // Counts the recursion through ParseExpr, which every nesting construct
  // (parentheses, brackets, braces, arguments, ternary branches) passes.
  class DepthGuard {
   public:
    explicit DepthGuard(int& depth) : depth_(depth) { ++depth_; }
    ~DepthGuard() { --depth_; }

   private:
    int& depth_;
  };

  const Token& Peek() const { return tokens_[std::min(next_, tokens_.size() - 1)]; }
  const Token& Advance() {
    const Token& t = Peek();
    if (next_ < tokens_.size() - 1) ++next_;
    return t;
  }
  bool Accept(TokenKind kind) {
    if (Peek().kind != kind) return false;
    Advance();
    return true;
  }

  // The token as written, shortened for messages.
  std::string TokenText(const Token& t) const {
    constexpr size_t kMax = 24;
    absl::string_view text = src_.substr(t.begin, t.end - t.begin);
    if (text.size() <= kMax) return std::string(text);
    size_t cut = kMax;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    return absl::StrCat(text.substr(0, cut), "...");
  }

  absl::Status Unexpected(const Token& t) const {
    if (t.kind == TokenKind::kEnd) return CompileError(t.begin, "unexpected end of expression");
    return CompileError(t.begin, absl::StrCat("unexpected '", TokenText(t), "'"));
  }

  absl::Status Expect(TokenKind kind, absl::string_view what) {
    if (Accept(kind)) return absl::OkStatus();
    const Token& t = Peek();
    if (t.kind == TokenKind::kEnd) {
      return CompileError(t.begin, absl::StrCat("expected ", what, " before the end"));
    }
    return CompileError(t.begin, absl::StrCat("expected ", what, ", found '", TokenText(t), "'"));
  }

  static NodePtr MakeNode(NodeKind kind, uint32_t pos, uint32_t begin, uint32_t end) {
    return std::make_unique<Node>(kind, pos, begin, end);
  }

  // Sets the node's height from its children and enforces max_depth.
  absl::StatusOr<NodePtr> Seal(NodePtr node) const {
    int height = 0;
    for (const NodePtr& child : node->children) height = std::max(height, child->height);
    node->height = height + 1;
    if (node->height > limits_.max_depth) {
      return CompileError(
          node->pos, absl::StrCat("expression nests deeper than the limit of ", limits_.max_depth));
    }
    return node;
  }

  absl::StatusOr<NodePtr> Binary(NodeKind kind, uint32_t pos, NodePtr lhs, NodePtr rhs) const {
    NodePtr n = MakeNode(kind, pos, lhs->begin, rhs->end);
    n->children.push_back(std::move(lhs));
    n->children.push_back(std::move(rhs));
    return Seal(std::move(n));
  }

  absl::StatusOr<NodePtr> ParseExpr() {
    DepthGuard guard(depth_);
    if (depth_ > limits_.max_depth) {
      return CompileError(Peek().begin, absl::StrCat("expression nests deeper than the limit of ",
                                                     limits_.max_depth));
    }
    KBS_ASSIGN_OR_RETURN(NodePtr cond, ParseChain(TokenKind::kOr));
    if (Peek().kind != TokenKind::kQuestion) return cond;
    uint32_t pos = Advance().begin;
    KBS_ASSIGN_OR_RETURN(NodePtr then, ParseChain(TokenKind::kOr));
    KBS_RETURN_IF_ERROR(Expect(TokenKind::kColon, "':' of the conditional"));
    KBS_ASSIGN_OR_RETURN(NodePtr otherwise, ParseExpr());
    NodePtr n = MakeNode(NodeKind::kTernary, pos, cond->begin, otherwise->end);
    n->children.push_back(std::move(cond));
    n->children.push_back(std::move(then));
    n->children.push_back(std::move(otherwise));
    return Seal(std::move(n));
  }

  // ConditionalOr (op == kOr) and ConditionalAnd (op == kAnd).
  absl::StatusOr<NodePtr> ParseChain(TokenKind op) {
    auto operand = [&]() -> absl::StatusOr<NodePtr> {
      return op == TokenKind::kOr ? ParseChain(TokenKind::kAnd) : ParseRelation();
    };
    std::vector<NodePtr> operands;
    std::vector<uint32_t> positions;  // positions[i]: the operator after operands[i]
    KBS_ASSIGN_OR_RETURN(NodePtr first, operand());
    operands.push_back(std::move(first));
    while (Peek().kind == op) {
      positions.push_back(Advance().begin);
      KBS_ASSIGN_OR_RETURN(NodePtr next, operand());
      operands.push_back(std::move(next));
    }
    if (operands.size() == 1) return std::move(operands[0]);
    return Balance(op == TokenKind::kOr ? NodeKind::kOr : NodeKind::kAnd, operands, positions, 0,
                   operands.size());
  }

  absl::StatusOr<NodePtr> Balance(NodeKind kind, std::vector<NodePtr>& operands,
                                  const std::vector<uint32_t>& positions, size_t lo, size_t hi) {
    if (hi - lo == 1) return std::move(operands[lo]);
    size_t mid = lo + (hi - lo) / 2;
    KBS_ASSIGN_OR_RETURN(NodePtr lhs, Balance(kind, operands, positions, lo, mid));
    KBS_ASSIGN_OR_RETURN(NodePtr rhs, Balance(kind, operands, positions, mid, hi));
    return Binary(kind, positions[mid - 1], std::move(lhs), std::move(rhs));
  }

  absl::StatusOr<NodePtr> ParseRelation() {
    KBS_ASSIGN_OR_RETURN(NodePtr lhs, ParseUnary());
    while (true) {
      const Token& t = Peek();
      NodeKind kind;
      switch (t.kind) {
        case TokenKind::kEq:
          kind = NodeKind::kEq;
          break;
        case TokenKind::kNe:
          kind = NodeKind::kNe;
          break;
        case TokenKind::kLt:
          kind = NodeKind::kLt;
          break;
        case TokenKind::kLe:
          kind = NodeKind::kLe;
          break;
        case TokenKind::kGt:
          kind = NodeKind::kGt;
          break;
        case TokenKind::kGe:
          kind = NodeKind::kGe;
          break;
        case TokenKind::kIn:
          kind = NodeKind::kIn;
          break;
        case TokenKind::kPlus:
        case TokenKind::kMinus:
        case TokenKind::kStar:
        case TokenKind::kSlash:
        case TokenKind::kPercent:
          return CompileError(
              t.begin, absl::StrCat("operator '", src_.substr(t.begin, 1),
                                    "' is not supported (policy conditions have no arithmetic)"));
        default:
          return lhs;
      }
      uint32_t pos = Advance().begin;
      KBS_ASSIGN_OR_RETURN(NodePtr rhs, ParseUnary());
      KBS_ASSIGN_OR_RETURN(lhs, Binary(kind, pos, std::move(lhs), std::move(rhs)));
    }
  }

  absl::StatusOr<NodePtr> ParseUnary() {
    TokenKind op = Peek().kind;
    if (op != TokenKind::kNot && op != TokenKind::kMinus) return ParseMember();
    std::vector<uint32_t> positions;
    while (Peek().kind == op) positions.push_back(Advance().begin);
    KBS_ASSIGN_OR_RETURN(NodePtr operand, ParseMember());
    if (op == TokenKind::kMinus) {
      // Fold minus signs into a numeric literal operand.
      while (!positions.empty() && operand->kind == NodeKind::kConst &&
             operand->constant.is_number()) {
        uint32_t pos = positions.back();
        if (operand->needs_negation) {
          operand->needs_negation = false;  // the value is already INT64_MIN
        } else if (operand->constant.is_int()) {
          if (operand->constant.int_value() == std::numeric_limits<int64_t>::min()) {
            return CompileError(pos, "integer overflow in negation");
          }
          operand->constant = Value::Int(-operand->constant.int_value());
        } else {
          operand->constant = Value::Double(-operand->constant.double_value());
        }
        operand->begin = pos;
        operand->pos = pos;
        positions.pop_back();
      }
    }
    while (!positions.empty()) {
      uint32_t pos = positions.back();
      positions.pop_back();
      NodePtr n =
          MakeNode(op == TokenKind::kNot ? NodeKind::kNot : NodeKind::kNeg, pos, pos, operand->end);
      n->children.push_back(std::move(operand));
      KBS_ASSIGN_OR_RETURN(operand, Seal(std::move(n)));
    }
    return operand;
  }

  absl::StatusOr<NodePtr> ParseMember() {
    KBS_ASSIGN_OR_RETURN(NodePtr n, ParsePrimary());
    while (true) {
      if (Accept(TokenKind::kDot)) {
        const Token& name = Peek();
        if (name.kind != TokenKind::kIdent) {
          if (name.kind == TokenKind::kEnd) {
            return CompileError(name.begin, "expected a field or method name after '.'");
          }
          return CompileError(name.begin,
                              absl::StrCat("expected a field or method name after '.', found '",
                                           TokenText(name), "'"));
        }
        Advance();
        if (Peek().kind == TokenKind::kLParen) {
          Advance();
          NodePtr call = MakeNode(NodeKind::kCall, name.begin, n->begin, 0);
          call->name = name.text;
          call->receiver_call = true;
          call->children.push_back(std::move(n));
          KBS_RETURN_IF_ERROR(ParseList(TokenKind::kRParen, "')'", call->children));
          call->end = tokens_[next_ - 1].end;
          KBS_ASSIGN_OR_RETURN(n, Seal(std::move(call)));
        } else {
          NodePtr select = MakeNode(NodeKind::kSelect, name.begin, n->begin, name.end);
          select->name = name.text;
          select->children.push_back(std::move(n));
          KBS_ASSIGN_OR_RETURN(n, Seal(std::move(select)));
        }
      } else if (Peek().kind == TokenKind::kLBracket) {
        uint32_t pos = Advance().begin;
        KBS_ASSIGN_OR_RETURN(NodePtr index, ParseExpr());
        KBS_RETURN_IF_ERROR(Expect(TokenKind::kRBracket, "']'"));
        NodePtr node = MakeNode(NodeKind::kIndex, pos, n->begin, tokens_[next_ - 1].end);
        node->children.push_back(std::move(n));
        node->children.push_back(std::move(index));
        KBS_ASSIGN_OR_RETURN(n, Seal(std::move(node)));
      } else {
        return n;
      }
    }
  }

  // Parses `Expr {"," Expr} [","] close` (or just `close`) into `out`.
  absl::Status ParseList(TokenKind close, absl::string_view close_name, std::vector<NodePtr>& out) {
    size_t count = 0;
    while (!Accept(close)) {
      if (++count > limits_.max_literal_elements) {
        return CompileError(Peek().begin, absl::StrCat("more than ", limits_.max_literal_elements,
                                                       " elements in a literal or call"));
      }
      KBS_ASSIGN_OR_RETURN(NodePtr item, ParseExpr());
      out.push_back(std::move(item));
      if (!Accept(TokenKind::kComma)) {
        return Expect(close, absl::StrCat("',' or ", close_name));
      }
    }
    return absl::OkStatus();
  }

  absl::StatusOr<NodePtr> ParsePrimary() {
    const Token& t = Advance();
    switch (t.kind) {
      case TokenKind::kInt: {
        NodePtr n = MakeNode(NodeKind::kConst, t.begin, t.begin, t.end);
        if (t.int_magnitude > kInt64MinMagnitude) {
          return CompileError(t.begin, "integer literal out of range");
        }
        if (t.int_magnitude == kInt64MinMagnitude) {
          n->constant = Value::Int(std::numeric_limits<int64_t>::min());
          n->needs_negation = true;  // the checker rejects it unless negated
        } else {
          n->constant = Value::Int(static_cast<int64_t>(t.int_magnitude));
        }
        return n;
      }
      case TokenKind::kDouble: {
        NodePtr n = MakeNode(NodeKind::kConst, t.begin, t.begin, t.end);
        n->constant = Value::Double(t.double_value);
        return n;
      }
      case TokenKind::kString: {
        NodePtr n = MakeNode(NodeKind::kConst, t.begin, t.begin, t.end);
        n->constant = Value::String(t.text);
        return n;
      }
      case TokenKind::kTrue:
      case TokenKind::kFalse: {
        NodePtr n = MakeNode(NodeKind::kConst, t.begin, t.begin, t.end);
        n->constant = Value::Bool(t.kind == TokenKind::kTrue);
        return n;
      }
      case TokenKind::kNull:
        return MakeNode(NodeKind::kConst, t.begin, t.begin, t.end);
      case TokenKind::kDot: {
        // A leading dot names the root scope: `.tee` is `tee`.
        const Token& name = Peek();
        if (name.kind != TokenKind::kIdent) return Unexpected(name);
        Advance();
        return Identifier(name, t.begin);
      }
      case TokenKind::kIdent:
        return Identifier(t, t.begin);
      case TokenKind::kLParen: {
        KBS_ASSIGN_OR_RETURN(NodePtr inner, ParseExpr());
        KBS_RETURN_IF_ERROR(Expect(TokenKind::kRParen, "')'"));
        return inner;
      }
      case TokenKind::kLBracket: {
        NodePtr n = MakeNode(NodeKind::kList, t.begin, t.begin, 0);
        KBS_RETURN_IF_ERROR(ParseList(TokenKind::kRBracket, "']'", n->children));
        n->end = tokens_[next_ - 1].end;
        return Seal(std::move(n));
      }
      case TokenKind::kLBrace:
        return ParseMap(t);
      default:
        return Unexpected(t);
    }
  }

  absl::StatusOr<NodePtr> Identifier(const Token& name, uint32_t begin) {
    if (Peek().kind != TokenKind::kLParen) {
      NodePtr n = MakeNode(NodeKind::kIdent, name.begin, begin, name.end);
      n->name = name.text;
      return n;
    }
    Advance();
    std::vector<NodePtr> args;
    KBS_RETURN_IF_ERROR(ParseList(TokenKind::kRParen, "')'", args));
    uint32_t end = tokens_[next_ - 1].end;
    if (name.text == "has") {
      // langdef "Macros": has(e.f) tests presence of field f; the argument
      // must be a field selection.
      if (args.size() != 1) {
        return CompileError(name.begin,
                            absl::StrCat("has() takes exactly 1 argument, got ", args.size()));
      }
      if (args[0]->kind != NodeKind::kSelect) {
        return CompileError(args[0]->begin,
                            "has() argument must be a field selection such as has(a.b)");
      }
      NodePtr n = MakeNode(NodeKind::kHas, name.begin, begin, end);
      n->children.push_back(std::move(args[0]));
      return Seal(std::move(n));
    }
    NodePtr n = MakeNode(NodeKind::kCall, name.begin, begin, end);
    n->name = name.text;
    n->children = std::move(args);
    return Seal(std::move(n));
  }

  absl::StatusOr<NodePtr> ParseMap(const Token& open) {
    NodePtr n = MakeNode(NodeKind::kMap, open.begin, open.begin, 0);
    size_t count = 0;
    while (!Accept(TokenKind::kRBrace)) {
      if (++count > limits_.max_literal_elements) {
        return CompileError(Peek().begin, absl::StrCat("more than ", limits_.max_literal_elements,
                                                       " entries in a map literal"));
      }
      KBS_ASSIGN_OR_RETURN(NodePtr key, ParseExpr());
      KBS_RETURN_IF_ERROR(Expect(TokenKind::kColon, "':' after the map key"));
      KBS_ASSIGN_OR_RETURN(NodePtr value, ParseExpr());
      n->children.push_back(std::move(key));
      n->children.push_back(std::move(value));
      if (!Accept(TokenKind::kComma)) {
        KBS_RETURN_IF_ERROR(Expect(TokenKind::kRBrace, "',' or '}'"));
        break;
      }
    }
    n->end = tokens_[next_ - 1].end;
    return Seal(std::move(n));
  }

  absl::string_view src_;
  std::vector<Token> tokens_;
  const Limits& limits_;
  size_t next_ = 0;
  int depth_ = 0;
};

}  // namespace

absl::StatusOr<NodePtr> Parse(absl::string_view source, const Limits& limits) {
  KBS_ASSIGN_OR_RETURN(std::vector<Token> tokens, Lex(source));
  return Parser(source, std::move(tokens), limits).ParseAll();
}

}  // namespace kbs::policy::cel::internal
