// Strict base64 (RFC 4648 §4, padded), base64url (§5, unpadded, as JOSE and
// the KBS protocol use it) and hex codecs. Decoders accept only the canonical
// encoding: no whitespace, no stray padding, no non-zero trailing bits, so a
// value has exactly one accepted spelling.
#ifndef KBS_COMMON_ENCODING_H_
#define KBS_COMMON_ENCODING_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/bytes.h"

namespace kbs::common {

std::string Base64Encode(absl::Span<const uint8_t> data);
std::string Base64UrlEncode(absl::Span<const uint8_t> data);
inline std::string Base64Encode(absl::string_view s) { return Base64Encode(AsSpan(s)); }
inline std::string Base64UrlEncode(absl::string_view s) { return Base64UrlEncode(AsSpan(s)); }

// InvalidArgument when `in` is not canonical padded standard base64.
absl::StatusOr<std::string> Base64Decode(absl::string_view in);
// InvalidArgument when `in` is not canonical unpadded base64url.
absl::StatusOr<std::string> Base64UrlDecode(absl::string_view in);

// Lowercase hex.
std::string HexEncode(absl::Span<const uint8_t> data);
inline std::string HexEncode(absl::string_view s) { return HexEncode(AsSpan(s)); }
// Accepts upper or lower case; InvalidArgument on odd length or a non-hex
// character.
absl::StatusOr<std::string> HexDecode(absl::string_view in);

}  // namespace kbs::common

#endif  // KBS_COMMON_ENCODING_H_
