#include "common/json.h"

#include <string>
#include <unordered_set>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kbs::common {
namespace {

// Thrown from the parser callback to abort parsing; caught in ParseJson and
// never escapes this file.
struct LimitExceeded {
  std::string message;
};

std::string StripNlohmannPrefix(absl::string_view what) {
  // "[json.exception.parse_error.101] parse error at ..." -> "parse error at ..."
  if (absl::StartsWith(what, "[json.exception.")) {
    size_t close = what.find("] ");
    if (close != absl::string_view::npos) what.remove_prefix(close + 2);
  }
  return std::string(what);
}

}  // namespace

absl::StatusOr<Json> ParseJson(absl::string_view text, const JsonLimits& limits) {
  std::vector<std::unordered_set<std::string>> keys_per_level;
  auto callback = [&](int depth, Json::parse_event_t event, Json& parsed) -> bool {
    switch (event) {
      case Json::parse_event_t::object_start:
        if (depth >= limits.max_depth) {
          throw LimitExceeded{absl::StrCat("nesting deeper than ", limits.max_depth, " levels")};
        }
        keys_per_level.emplace_back();
        break;
      case Json::parse_event_t::array_start:
        if (depth >= limits.max_depth) {
          throw LimitExceeded{absl::StrCat("nesting deeper than ", limits.max_depth, " levels")};
        }
        break;
      case Json::parse_event_t::key:
        if (!keys_per_level.empty() &&
            !keys_per_level.back().insert(parsed.get<std::string>()).second) {
          throw LimitExceeded{absl::StrCat("duplicate member \"", parsed.get<std::string>(), "\"")};
        }
        break;
      case Json::parse_event_t::object_end:
        if (!keys_per_level.empty()) keys_per_level.pop_back();
        break;
      default:
        break;
    }
    return true;
  };
  try {
    return Json::parse(text.begin(), text.end(), callback,
                       /*allow_exceptions=*/true, /*ignore_comments=*/false);
  } catch (const LimitExceeded& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.message));
  } catch (const Json::exception& e) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid JSON: ", StripNlohmannPrefix(e.what())));
  } catch (const std::exception& e) {
    return absl::InvalidArgumentError(absl::StrCat("invalid JSON: ", e.what()));
  }
}

absl::StatusOr<JsonPrefix> ParseJsonPrefix(absl::string_view text, const JsonLimits& limits) {
  if (text.empty() || (text.front() != '{' && text.front() != '[')) {
    return absl::InvalidArgumentError("invalid JSON: expected an object or an array");
  }
  // Find the bracket that closes text[0], skipping over string contents.
  // Where that span is valid JSON it is exactly the value a JSON parser reads
  // from text[0]; where it is not (brackets that close early or never),
  // ParseJson rejects it. So this scan never decides what is accepted.
  size_t end = text.size();
  size_t depth = 0;
  bool in_string = false;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (in_string) {
      if (c == '\\') {
        ++i;  // the escaped character cannot end the string
      } else if (c == '"') {
        in_string = false;
      }
    } else if (c == '"') {
      in_string = true;
    } else if (c == '{' || c == '[') {
      ++depth;
    } else if ((c == '}' || c == ']') && --depth == 0) {
      end = i + 1;
      break;
    }
  }
  KBS_ASSIGN_OR_RETURN(Json value, ParseJson(text.substr(0, end), limits));
  return JsonPrefix{std::move(value), end};
}

absl::StatusOr<Json> ParseTrustedJson(absl::string_view text) {
  Json out = Json::parse(text.begin(), text.end(), nullptr, /*allow_exceptions=*/false);
  if (out.is_discarded()) return absl::InternalError("stored JSON does not parse");
  return out;
}

std::string DumpJson(const Json& value) {
  return value.dump(-1, ' ', /*ensure_ascii=*/false, Json::error_handler_t::replace);
}

const Json* FindMember(const Json& object, absl::string_view key) {
  if (!object.is_object()) return nullptr;
  auto it = object.find(std::string_view(key.data(), key.size()));
  return it == object.end() ? nullptr : &*it;
}

absl::string_view JsonTypeName(const Json& value) { return value.type_name(); }

namespace {

// The member `key` of `object` if it has the type `is_type` checks for.
absl::StatusOr<const Json*> TypedMember(const Json& object, absl::string_view key,
                                        absl::string_view where, bool (Json::*is_type)() const,
                                        absl::string_view type_name) {
  const Json* member = FindMember(object, key);
  if (member == nullptr) {
    return absl::InvalidArgumentError(absl::StrCat("missing field `", key, "` in ", where));
  }
  if (!(member->*is_type)()) {
    return absl::InvalidArgumentError(absl::StrCat("field `", key, "` in ", where, " must be ",
                                                   type_name, ", not ", member->type_name()));
  }
  return member;
}

}  // namespace

absl::StatusOr<std::string> GetStringMember(const Json& object, absl::string_view key,
                                            absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(const Json* member,
                       TypedMember(object, key, where, &Json::is_string, "a string"));
  return member->get<std::string>();
}

absl::StatusOr<const Json*> GetObjectMember(const Json& object, absl::string_view key,
                                            absl::string_view where) {
  return TypedMember(object, key, where, &Json::is_object, "an object");
}

}  // namespace kbs::common
