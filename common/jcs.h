// JSON Canonicalization Scheme (RFC 8785): the byte form that both the CoCo
// attestation agent and this KBS hash to bind runtime data to TEE evidence
// (kbs-protocol.md §2.4). Output: no whitespace, object members sorted by
// their UTF-16 code units (§3.2.3), strings escaped per §3.2.2.2, numbers
// as ECMAScript's Number.prototype.toString (§3.2.2.3).
#ifndef KBS_COMMON_JCS_H_
#define KBS_COMMON_JCS_H_

#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace kbs::common {

// InvalidArgument for values JCS cannot represent (NaN, infinities) or
// binary JSON values.
absl::StatusOr<std::string> CanonicalizeJson(const Json& value);

// Appends `utf8` as a JCS string literal (RFC 8785 §3.2.2.2). The input must
// be valid UTF-8 (it is copied as is, except for the escapes).
void AppendJcsString(absl::string_view utf8, std::string& out);

// ECMAScript Number::toString for a finite double (RFC 8785 §3.2.2.3).
// InvalidArgument for NaN and infinities.
absl::StatusOr<std::string> FormatJcsNumber(double value);

}  // namespace kbs::common

#endif  // KBS_COMMON_JCS_H_
