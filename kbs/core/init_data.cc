#include "kbs/core/init_data.h"

#include <toml++/toml.h>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs {

absl::StatusOr<InitData> ParseInitData(absl::string_view format, absl::string_view body) {
  if (format != "toml") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported init-data format \"", format.substr(0, 32), "\" (only toml)"));
  }
  // Debian's toml++ is built with exceptions; they stay inside this function.
  toml::table table;
  try {
    table = toml::parse(std::string_view(body.data(), body.size()));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(
        absl::StrCat("init-data is not valid TOML at line ", err.source().begin.line, ", column ",
                     err.source().begin.column, ": ", std::string(err.description())));
  }
  InitData out;
  std::optional<std::string> algorithm = table["algorithm"].value<std::string>();
  if (!algorithm.has_value()) {
    return absl::InvalidArgumentError("init-data: missing string `algorithm`");
  }
  KBS_ASSIGN_OR_RETURN(out.algorithm, common::ParseHashAlgorithm(*algorithm));
  out.version = table["version"].value_or<std::string>("");
  out.digest = common::Digest(out.algorithm, body);
  if (const toml::node* data = table.get("data"); data != nullptr) {
    const toml::table* data_table = data->as_table();
    if (data_table == nullptr) {
      return absl::InvalidArgumentError("init-data: `data` must be a table");
    }
    for (const auto& [key, value] : *data_table) {
      std::string name(key.str());
      if (const auto* s = value.as_string(); s != nullptr) {
        const std::string& text = s->get();
        if (text.size() <= kMaxInlineInitDataEntry) {
          out.claims[name] = text;
        } else {
          out.claims[name] = common::Json{{"sha256", common::HexEncode(common::Sha256(text))},
                                          {"bytes", text.size()}};
        }
      } else {
        // kbs-types models [data] as a map of strings.
        return absl::InvalidArgumentError(
            absl::StrCat("init-data: [data].", name.substr(0, 64), " must be a string"));
      }
    }
  }
  return out;
}

}  // namespace kbs
