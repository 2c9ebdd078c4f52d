// JSON parsing for untrusted input (nlohmann::json underneath) with the
// limits a network service needs: bounded nesting depth, no duplicate object
// members (RFC 8259 §4 leaves them undefined; I-JSON forbids them, and two
// parsers disagreeing on which duplicate wins is a classic bypass), and
// UTF-8 validation. Errors are absl::Status, never exceptions.
#ifndef KBS_COMMON_JSON_H_
#define KBS_COMMON_JSON_H_

#include <string>
#include <string_view>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "nlohmann/json.hpp"

namespace kbs::common {

using Json = nlohmann::json;

struct JsonLimits {
  // Maximum nesting depth of arrays and objects.
  int max_depth = 64;
};

// Parses exactly one JSON text. InvalidArgument names the line and column
// for syntax errors, the member for duplicates, and the depth for nesting.
absl::StatusOr<Json> ParseJson(absl::string_view text, const JsonLimits& limits = {});

// The first JSON value of a text that goes on after it, e.g. the object in a
// Rego line `policy_data := {...}`.
struct JsonPrefix {
  Json value;
  size_t size = 0;  // bytes of the text it spans, up to its closing bracket
};

// Parses the object or array that starts at text[0] (leading whitespace is
// not skipped) and ignores whatever follows its closing bracket. Only objects
// and arrays: a scalar such as `12` has no end of its own. Limits and errors
// as for ParseJson (line and column count from text[0]).
absl::StatusOr<JsonPrefix> ParseJsonPrefix(absl::string_view text, const JsonLimits& limits = {});

// Parses JSON that this process produced itself (e.g. claims kept in a
// session): no duplicate or depth bookkeeping. Never use for client input.
absl::StatusOr<Json> ParseTrustedJson(absl::string_view text);

// Compact serialization (UTF-8 output, no ASCII escaping). Never throws:
// strings in a Json come from ParseJson or from our own code and are valid
// UTF-8; invalid sequences are replaced rather than aborting.
std::string DumpJson(const Json& value);

// Typed member access for request decoding. `where` names the enclosing
// object in error messages (e.g. "runtime-data").
const Json* FindMember(const Json& object, absl::string_view key);
absl::StatusOr<std::string> GetStringMember(const Json& object, absl::string_view key,
                                            absl::string_view where);
absl::StatusOr<const Json*> GetObjectMember(const Json& object, absl::string_view key,
                                            absl::string_view where);
// Human-readable JSON type name for error messages.
absl::string_view JsonTypeName(const Json& value);

}  // namespace kbs::common

#endif  // KBS_COMMON_JSON_H_
