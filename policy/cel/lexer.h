// Tokenizer for the CEL subset (cel-spec doc/langdef.md, "Syntax": the
// lexical rules). Input must be valid UTF-8. Produces the whole token list
// at once (the source is bounded by Limits::max_expression_bytes) ending in a
// kEnd token. Errors are InvalidArgument "column N: ..." where N is the
// 1-based byte column.
//
// Supported: identifiers, the keywords true/false/null/in, decimal and hex
// int literals, double literals, quoted strings ('..', "..", triple-quoted,
// raw r'..') with the CEL escapes, `//` comments, and the punctuation of the
// grammar. Unsigned (1u) and bytes (b'..') literals and CEL's reserved words
// are rejected with a message naming them.
#ifndef KBS_POLICY_CEL_LEXER_H_
#define KBS_POLICY_CEL_LEXER_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kbs::policy::cel::internal {

enum class TokenKind : uint8_t {
  kEnd,
  kIdent,
  kInt,
  kDouble,
  kString,
  kTrue,
  kFalse,
  kNull,
  kIn,
  kLParen,
  kRParen,
  kLBracket,
  kRBracket,
  kLBrace,
  kRBrace,
  kDot,
  kComma,
  kColon,
  kQuestion,
  kNot,
  kMinus,
  kPlus,
  kStar,
  kSlash,
  kPercent,
  kEq,
  kNe,
  kLt,
  kLe,
  kGt,
  kGe,
  kAnd,
  kOr,
};

struct Token {
  TokenKind kind = TokenKind::kEnd;
  uint32_t begin = 0;  // byte span [begin, end) in the source
  uint32_t end = 0;
  std::string text;            // kIdent: the name; kString: the decoded value
  uint64_t int_magnitude = 0;  // kInt: the value without any sign
  double double_value = 0;     // kDouble
};

absl::StatusOr<std::vector<Token>> Lex(absl::string_view source);

}  // namespace kbs::policy::cel::internal

#endif  // KBS_POLICY_CEL_LEXER_H_
