#include "common/jcs.h"

#include <algorithm>
#include <charconv>
#include <cmath>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kbs::common {
namespace {

// Converts UTF-8 to UTF-16 code units for member ordering (RFC 8785 §3.2.3).
// Input strings were validated as UTF-8 by the parser.
std::u16string ToUtf16(absl::string_view s) {
  std::u16string out;
  out.reserve(s.size());
  for (size_t i = 0; i < s.size();) {
    unsigned char c = static_cast<unsigned char>(s[i]);
    uint32_t cp;
    size_t len;
    if (c < 0x80) {
      cp = c;
      len = 1;
    } else if ((c >> 5) == 0x6) {
      cp = c & 0x1F;
      len = 2;
    } else if ((c >> 4) == 0xE) {
      cp = c & 0x0F;
      len = 3;
    } else {
      cp = c & 0x07;
      len = 4;
    }
    if (i + len > s.size()) len = s.size() - i;
    for (size_t j = 1; j < len; ++j) {
      cp = (cp << 6) | (static_cast<unsigned char>(s[i + j]) & 0x3F);
    }
    i += std::max<size_t>(len, 1);
    if (cp >= 0x10000) {
      cp -= 0x10000;
      out.push_back(static_cast<char16_t>(0xD800 + (cp >> 10)));
      out.push_back(static_cast<char16_t>(0xDC00 + (cp & 0x3FF)));
    } else {
      out.push_back(static_cast<char16_t>(cp));
    }
  }
  return out;
}

}  // namespace

void AppendJcsString(absl::string_view s, std::string& out) {
  static constexpr char kHex[] = "0123456789abcdef";
  out.push_back('"');
  // Plain characters are copied in runs; only the few that need escaping
  // are handled one by one.
  size_t run = 0;
  for (size_t i = 0; i < s.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(s[i]);
    if (c >= 0x20 && c != '"' && c != '\\') continue;
    out.append(s.data() + run, i - run);
    run = i + 1;
    switch (c) {
      case '"':
        out += "\\\"";
        break;
      case '\\':
        out += "\\\\";
        break;
      case '\b':
        out += "\\b";
        break;
      case '\f':
        out += "\\f";
        break;
      case '\n':
        out += "\\n";
        break;
      case '\r':
        out += "\\r";
        break;
      case '\t':
        out += "\\t";
        break;
      default:
        out += "\\u00";
        out.push_back(kHex[c >> 4]);
        out.push_back(kHex[c & 0xF]);
    }
  }
  out.append(s.data() + run, s.size() - run);
  out.push_back('"');
}

namespace {

absl::Status Append(const Json& value, std::string& out) {
  switch (value.type()) {
    case Json::value_t::null:
      out += "null";
      return absl::OkStatus();
    case Json::value_t::boolean:
      out += value.get<bool>() ? "true" : "false";
      return absl::OkStatus();
    case Json::value_t::number_integer: {
      // I-JSON: every number is an IEEE-754 double.
      KBS_ASSIGN_OR_RETURN(std::string n,
                           FormatJcsNumber(static_cast<double>(value.get<int64_t>())));
      out += n;
      return absl::OkStatus();
    }
    case Json::value_t::number_unsigned: {
      KBS_ASSIGN_OR_RETURN(std::string n,
                           FormatJcsNumber(static_cast<double>(value.get<uint64_t>())));
      out += n;
      return absl::OkStatus();
    }
    case Json::value_t::number_float: {
      KBS_ASSIGN_OR_RETURN(std::string n, FormatJcsNumber(value.get<double>()));
      out += n;
      return absl::OkStatus();
    }
    case Json::value_t::string:
      AppendJcsString(value.get_ref<const std::string&>(), out);
      return absl::OkStatus();
    case Json::value_t::array: {
      out.push_back('[');
      bool first = true;
      for (const Json& element : value) {
        if (!first) out.push_back(',');
        first = false;
        KBS_RETURN_IF_ERROR(Append(element, out));
      }
      out.push_back(']');
      return absl::OkStatus();
    }
    case Json::value_t::object: {
      std::vector<std::pair<std::u16string, Json::const_iterator>> members;
      members.reserve(value.size());
      for (auto it = value.begin(); it != value.end(); ++it) {
        members.emplace_back(ToUtf16(it.key()), it);
      }
      std::sort(members.begin(), members.end(),
                [](const auto& a, const auto& b) { return a.first < b.first; });
      out.push_back('{');
      bool first = true;
      for (const auto& [unused, it] : members) {
        if (!first) out.push_back(',');
        first = false;
        AppendJcsString(it.key(), out);
        out.push_back(':');
        KBS_RETURN_IF_ERROR(Append(it.value(), out));
      }
      out.push_back('}');
      return absl::OkStatus();
    }
    case Json::value_t::binary:
    case Json::value_t::discarded:
      break;
  }
  return absl::InvalidArgumentError("JCS: value has no JSON representation");
}

}  // namespace

absl::StatusOr<std::string> FormatJcsNumber(double value) {
  if (!std::isfinite(value)) {
    return absl::InvalidArgumentError("JCS: NaN and Infinity are not allowed");
  }
  if (value == 0) return std::string("0");  // Also -0 (ES6 §7.1.12.1 step 2).
  std::string out;
  if (value < 0) {
    out.push_back('-');
    value = -value;
  }
  // Shortest round-trip digits (the `k` smallest in ES6's definition),
  // obtained in scientific form "d.ddde±xx".
  char buf[64];
  auto result = std::to_chars(buf, buf + sizeof(buf), value, std::chars_format::scientific);
  absl::string_view sci(buf, result.ptr - buf);
  size_t e_pos = sci.find('e');
  std::string digits;
  for (char c : sci.substr(0, e_pos)) {
    if (c != '.') digits.push_back(c);
  }
  int exp10 = 0;
  std::from_chars(sci.data() + e_pos + 1 + (sci[e_pos + 1] == '+'), sci.data() + sci.size(), exp10);
  const int k = static_cast<int>(digits.size());
  const int n = exp10 + 1;
  if (k <= n && n <= 21) {
    out += digits;
    out.append(n - k, '0');
  } else if (0 < n && n <= 21) {
    out += digits.substr(0, n);
    out.push_back('.');
    out += digits.substr(n);
  } else if (-6 < n && n <= 0) {
    out += "0.";
    out.append(-n, '0');
    out += digits;
  } else {
    out.push_back(digits[0]);
    if (k > 1) {
      out.push_back('.');
      out += digits.substr(1);
    }
    out.push_back('e');
    out.push_back(n - 1 >= 0 ? '+' : '-');
    out += std::to_string(std::abs(n - 1));
  }
  return out;
}

absl::StatusOr<std::string> CanonicalizeJson(const Json& value) {
  std::string out;
  KBS_RETURN_IF_ERROR(Append(value, out));
  return out;
}

}  // namespace kbs::common
