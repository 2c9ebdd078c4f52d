#include "common/encoding.h"

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"

namespace kbs::common {

std::string Base64Encode(absl::Span<const uint8_t> data) {
  return absl::Base64Escape(AsStringView(data));
}

std::string Base64UrlEncode(absl::Span<const uint8_t> data) {
  return absl::WebSafeBase64Escape(AsStringView(data));
}

// abseil's decoders are lenient (missing padding, embedded whitespace). The
// canonical form is checked by re-encoding: it must reproduce the input.
absl::StatusOr<std::string> Base64Decode(absl::string_view in) {
  std::string out;
  if (!absl::Base64Unescape(in, &out) || Base64Encode(out) != in) {
    return absl::InvalidArgumentError("invalid base64 (standard, padded)");
  }
  return out;
}

absl::StatusOr<std::string> Base64UrlDecode(absl::string_view in) {
  std::string out;
  if (!absl::WebSafeBase64Unescape(in, &out) || Base64UrlEncode(out) != in) {
    return absl::InvalidArgumentError("invalid base64url (unpadded)");
  }
  return out;
}

std::string HexEncode(absl::Span<const uint8_t> data) {
  return absl::BytesToHexString(AsStringView(data));
}

absl::StatusOr<std::string> HexDecode(absl::string_view in) {
  if (in.size() % 2 != 0) {
    return absl::InvalidArgumentError("invalid hex: odd length");
  }
  for (size_t i = 0; i < in.size(); ++i) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(in[i]))) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid hex: non-hex character at offset ", i));
    }
  }
  return absl::HexStringToBytes(in);
}

}  // namespace kbs::common
