#include "policy/cel/lexer.h"

#include <charconv>
#include <limits>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "policy/cel/ast.h"

namespace kbs::policy::cel::internal {
namespace {

bool IsIdentStart(char c) { return absl::ascii_isalpha(c) || c == '_'; }
bool IsIdentChar(char c) { return absl::ascii_isalnum(c) || c == '_'; }

int HexDigit(char c) {
  if (c >= '0' && c <= '9') return c - '0';
  if (c >= 'a' && c <= 'f') return c - 'a' + 10;
  if (c >= 'A' && c <= 'F') return c - 'A' + 10;
  return -1;
}

// Offset of the first byte that does not start a well-formed UTF-8 sequence
// (RFC 3629: no overlong forms, no surrogates, nothing above U+10FFFF), or
// npos.
size_t FirstInvalidUtf8(absl::string_view s) {
  size_t i = 0;
  while (i < s.size()) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    if (c < 0x80) {
      ++i;
      continue;
    }
    size_t len;
    uint32_t min;
    uint32_t cp;
    if ((c & 0xE0) == 0xC0) {
      len = 2, min = 0x80, cp = c & 0x1F;
    } else if ((c & 0xF0) == 0xE0) {
      len = 3, min = 0x800, cp = c & 0x0F;
    } else if ((c & 0xF8) == 0xF0) {
      len = 4, min = 0x10000, cp = c & 0x07;
    } else {
      return i;
    }
    if (s.size() - i < len) return i;
    for (size_t k = 1; k < len; ++k) {
      unsigned char cc = static_cast<unsigned char>(s[i + k]);
      if ((cc & 0xC0) != 0x80) return i;
      cp = (cp << 6) | (cc & 0x3F);
    }
    if (cp < min || cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) return i;
    i += len;
  }
  return absl::string_view::npos;
}

void AppendUtf8(std::string& out, uint32_t cp) {
  if (cp < 0x80) {
    out.push_back(static_cast<char>(cp));
  } else if (cp < 0x800) {
    out.push_back(static_cast<char>(0xC0 | (cp >> 6)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else if (cp < 0x10000) {
    out.push_back(static_cast<char>(0xE0 | (cp >> 12)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  } else {
    out.push_back(static_cast<char>(0xF0 | (cp >> 18)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 12) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | ((cp >> 6) & 0x3F)));
    out.push_back(static_cast<char>(0x80 | (cp & 0x3F)));
  }
}

// CEL reserved words that are not keywords of the language itself
// (langdef "Syntax": they may not be used as identifiers).
bool IsReserved(absl::string_view word) {
  static constexpr absl::string_view kReserved[] = {
      "as",  "break", "const",   "continue",  "else",   "for", "function", "if",   "import",
      "let", "loop",  "package", "namespace", "return", "var", "void",     "while"};
  for (absl::string_view r : kReserved) {
    if (word == r) return true;
  }
  return false;
}

class Lexer {
 public:
  explicit Lexer(absl::string_view source) : src_(source) {}

  absl::StatusOr<std::vector<Token>> Run() {
    if (size_t bad = FirstInvalidUtf8(src_); bad != absl::string_view::npos) {
      return CompileError(bad, "invalid UTF-8");
    }
    std::vector<Token> tokens;
    while (true) {
      SkipSpaceAndComments();
      Token t;
      t.begin = static_cast<uint32_t>(pos_);
      if (pos_ >= src_.size()) {
        t.end = t.begin;
        tokens.push_back(std::move(t));
        return tokens;
      }
      absl::Status status = Next(t);
      if (!status.ok()) return status;
      t.end = static_cast<uint32_t>(pos_);
      tokens.push_back(std::move(t));
    }
  }

 private:
  char At(size_t i) const { return i < src_.size() ? src_[i] : '\0'; }

  void SkipSpaceAndComments() {
    while (pos_ < src_.size()) {
      char c = src_[pos_];
      if (c == ' ' || c == '\t' || c == '\n' || c == '\r' || c == '\f') {
        ++pos_;
      } else if (c == '/' && At(pos_ + 1) == '/') {
        while (pos_ < src_.size() && src_[pos_] != '\n') ++pos_;
      } else {
        return;
      }
    }
  }

  absl::Status Next(Token& t) {
    char c = src_[pos_];
    if (IsIdentStart(c)) return Word(t);
    if (absl::ascii_isdigit(c) || (c == '.' && absl::ascii_isdigit(At(pos_ + 1)))) {
      return Number(t);
    }
    if (c == '\'' || c == '"') return String(t, /*raw=*/false);
    char n = At(pos_ + 1);
    auto two = [&](TokenKind kind) {
      t.kind = kind;
      pos_ += 2;
      return absl::OkStatus();
    };
    auto one = [&](TokenKind kind) {
      t.kind = kind;
      pos_ += 1;
      return absl::OkStatus();
    };
    switch (c) {
      case '=':
        if (n == '=') return two(TokenKind::kEq);
        return CompileError(pos_, "unexpected '='; use '==' to compare");
      case '!':
        return n == '=' ? two(TokenKind::kNe) : one(TokenKind::kNot);
      case '<':
        return n == '=' ? two(TokenKind::kLe) : one(TokenKind::kLt);
      case '>':
        return n == '=' ? two(TokenKind::kGe) : one(TokenKind::kGt);
      case '&':
        if (n == '&') return two(TokenKind::kAnd);
        return CompileError(pos_, "unexpected '&'; use '&&'");
      case '|':
        if (n == '|') return two(TokenKind::kOr);
        return CompileError(pos_, "unexpected '|'; use '||'");
      case '(':
        return one(TokenKind::kLParen);
      case ')':
        return one(TokenKind::kRParen);
      case '[':
        return one(TokenKind::kLBracket);
      case ']':
        return one(TokenKind::kRBracket);
      case '{':
        return one(TokenKind::kLBrace);
      case '}':
        return one(TokenKind::kRBrace);
      case '.':
        return one(TokenKind::kDot);
      case ',':
        return one(TokenKind::kComma);
      case ':':
        return one(TokenKind::kColon);
      case '?':
        return one(TokenKind::kQuestion);
      case '-':
        return one(TokenKind::kMinus);
      case '+':
        return one(TokenKind::kPlus);
      case '*':
        return one(TokenKind::kStar);
      case '/':
        return one(TokenKind::kSlash);
      case '%':
        return one(TokenKind::kPercent);
      default:
        break;
    }
    if (absl::ascii_isprint(c)) {
      return CompileError(pos_,
                          absl::StrCat("unexpected character '", absl::string_view(&c, 1), "'"));
    }
    return CompileError(
        pos_, absl::StrFormat("unexpected character 0x%02x", static_cast<unsigned char>(c)));
  }

  // Identifiers, keywords, and the r/b prefixes of string literals.
  absl::Status Word(Token& t) {
    size_t start = pos_;
    while (pos_ < src_.size() && IsIdentChar(src_[pos_])) ++pos_;
    absl::string_view word = src_.substr(start, pos_ - start);
    char next = At(pos_);
    if ((next == '\'' || next == '"') && word.size() <= 2) {
      std::string prefix = absl::AsciiStrToLower(word);
      if (prefix == "b" || prefix == "rb" || prefix == "br") {
        return CompileError(start, "bytes literals are not supported");
      }
      if (prefix == "r") return String(t, /*raw=*/true);
    }
    if (word == "true") {
      t.kind = TokenKind::kTrue;
    } else if (word == "false") {
      t.kind = TokenKind::kFalse;
    } else if (word == "null") {
      t.kind = TokenKind::kNull;
    } else if (word == "in") {
      t.kind = TokenKind::kIn;
    } else if (IsReserved(word)) {
      return CompileError(start, absl::StrCat("'", word, "' is a reserved word"));
    } else {
      t.kind = TokenKind::kIdent;
      t.text = std::string(word);
    }
    return absl::OkStatus();
  }

  // langdef: INT_LIT = DIGIT+ | "0x" HEXDIGIT+; FLOAT_LIT = DIGIT* "." DIGIT+
  // EXPONENT? | DIGIT+ EXPONENT. The sign is the unary minus operator.
  absl::Status Number(Token& t) {
    size_t start = pos_;
    if (src_[pos_] == '0' && (At(pos_ + 1) == 'x' || At(pos_ + 1) == 'X')) {
      pos_ += 2;
      uint64_t value = 0;
      size_t digits = 0;
      while (HexDigit(At(pos_)) >= 0) {
        if (value > (std::numeric_limits<uint64_t>::max() >> 4)) {
          return CompileError(start, "integer literal out of range");
        }
        value = (value << 4) | static_cast<uint64_t>(HexDigit(src_[pos_]));
        ++pos_;
        ++digits;
      }
      if (digits == 0) return CompileError(start, "malformed hex literal");
      t.kind = TokenKind::kInt;
      t.int_magnitude = value;
      return CheckNumberEnd(start, /*is_int=*/true);
    }
    bool is_double = false;
    while (absl::ascii_isdigit(At(pos_))) ++pos_;
    if (At(pos_) == '.' && absl::ascii_isdigit(At(pos_ + 1))) {
      is_double = true;
      ++pos_;
      while (absl::ascii_isdigit(At(pos_))) ++pos_;
    }
    if (At(pos_) == 'e' || At(pos_) == 'E') {
      size_t e = pos_ + 1;
      if (At(e) == '+' || At(e) == '-') ++e;
      if (!absl::ascii_isdigit(At(e))) return CompileError(start, "malformed exponent");
      is_double = true;
      pos_ = e;
      while (absl::ascii_isdigit(At(pos_))) ++pos_;
    }
    absl::string_view text = src_.substr(start, pos_ - start);
    if (is_double) {
      double value = 0;
      auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
      if (ec != std::errc() || ptr != text.data() + text.size()) {
        return CompileError(start, "double literal out of range");
      }
      t.kind = TokenKind::kDouble;
      t.double_value = value;
      return CheckNumberEnd(start, /*is_int=*/false);
    }
    uint64_t value = 0;
    auto [ptr, ec] = std::from_chars(text.data(), text.data() + text.size(), value);
    if (ec != std::errc() || ptr != text.data() + text.size()) {
      return CompileError(start, "integer literal out of range");
    }
    t.kind = TokenKind::kInt;
    t.int_magnitude = value;
    return CheckNumberEnd(start, /*is_int=*/true);
  }

  absl::Status CheckNumberEnd(size_t start, bool is_int) {
    char c = At(pos_);
    if (is_int && (c == 'u' || c == 'U')) {
      return CompileError(start, "unsigned integer literals (1u) are not supported");
    }
    if (IsIdentChar(c)) return CompileError(pos_, "unexpected character after number");
    return absl::OkStatus();
  }

  // langdef: quoted strings, optionally triple-quoted (may span lines) and
  // raw (no escape processing). pos_ is at the opening quote.
  absl::Status String(Token& t, bool raw) {
    size_t start = raw ? pos_ - 1 : pos_;
    char q = src_[pos_];
    const char triple[3] = {q, q, q};
    absl::string_view closing_triple(triple, 3);
    bool is_triple = src_.substr(pos_, 3) == closing_triple;
    pos_ += is_triple ? 3 : 1;
    std::string out;
    while (true) {
      if (pos_ >= src_.size()) return CompileError(start, "unterminated string literal");
      char c = src_[pos_];
      if (is_triple) {
        if (src_.substr(pos_, 3) == closing_triple) {
          pos_ += 3;
          break;
        }
      } else if (c == q) {
        ++pos_;
        break;
      } else if (c == '\n' || c == '\r') {
        return CompileError(start, "unterminated string literal (newline in a quoted string)");
      }
      if (c == '\\' && !raw) {
        absl::Status status = Escape(out);
        if (!status.ok()) return status;
      } else {
        out.push_back(c);
        ++pos_;
      }
    }
    t.kind = TokenKind::kString;
    t.text = std::move(out);
    return absl::OkStatus();
  }

  // langdef "String and Bytes Values": \\ \' \" \` \? \a \b \f \n \r \t \v,
  // \xHH, \uHHHH, \UHHHHHHHH and octal \ooo. In string literals the numeric
  // escapes denote Unicode code points, appended as UTF-8.
  absl::Status Escape(std::string& out) {
    size_t at = pos_;
    char e = At(pos_ + 1);
    pos_ += 2;
    switch (e) {
      case 'a':
        out.push_back('\a');
        return absl::OkStatus();
      case 'b':
        out.push_back('\b');
        return absl::OkStatus();
      case 'f':
        out.push_back('\f');
        return absl::OkStatus();
      case 'n':
        out.push_back('\n');
        return absl::OkStatus();
      case 'r':
        out.push_back('\r');
        return absl::OkStatus();
      case 't':
        out.push_back('\t');
        return absl::OkStatus();
      case 'v':
        out.push_back('\v');
        return absl::OkStatus();
      case '\\':
      case '\'':
      case '"':
      case '`':
      case '?':
        out.push_back(e);
        return absl::OkStatus();
      default:
        break;
    }
    int digits = 0;
    int base = 16;
    if (e == 'x' || e == 'X') {
      digits = 2;
    } else if (e == 'u') {
      digits = 4;
    } else if (e == 'U') {
      digits = 8;
    } else if (e >= '0' && e <= '3') {
      digits = 2;  // the first of three octal digits is e itself
      base = 8;
    } else {
      if (at + 1 >= src_.size()) return CompileError(at, "unterminated string literal");
      // Show the escape as written (a possibly multi-byte character).
      size_t len = 1;
      while (at + 1 + len < src_.size() &&
             (static_cast<unsigned char>(src_[at + 1 + len]) & 0xC0) == 0x80) {
        ++len;
      }
      pos_ = at + 1 + len;
      return CompileError(
          at, absl::StrCat("invalid escape sequence '\\", src_.substr(at + 1, len), "'"));
    }
    uint32_t cp = base == 8 ? static_cast<uint32_t>(e - '0') : 0;
    for (int i = 0; i < digits; ++i) {
      int d = HexDigit(At(pos_));
      if (d < 0 || d >= base) {
        return CompileError(at, base == 8 ? "octal escape needs three digits"
                                          : absl::StrCat("\\", absl::string_view(&e, 1),
                                                         " escape needs ", digits, " hex digits"));
      }
      cp = cp * static_cast<uint32_t>(base) + static_cast<uint32_t>(d);
      ++pos_;
    }
    if (cp > 0x10FFFF || (cp >= 0xD800 && cp <= 0xDFFF)) {
      return CompileError(at, "escape is not a valid Unicode code point");
    }
    AppendUtf8(out, cp);
    return absl::OkStatus();
  }

  absl::string_view src_;
  size_t pos_ = 0;
};

}  // namespace

absl::StatusOr<std::vector<Token>> Lex(absl::string_view source) { return Lexer(source).Run(); }

}  // namespace kbs::policy::cel::internal
