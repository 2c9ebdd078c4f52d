#include "policy/refvalues.h"

#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "policy/yaml_util.h"

namespace kbs::policy {
namespace {

constexpr size_t kMaxValues = 100000;
constexpr size_t kMaxValueBytes = 1024;

}  // namespace

bool IsValidRefValueSetName(absl::string_view name) {
  if (name.empty() || name.size() > 128 || name.front() == '.') return false;
  for (char c : name) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

std::string NormalizeRefValue(absl::string_view value) {
  auto all_hex = [](absl::string_view s) {
    for (char c : s) {
      if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
    }
    return true;
  };
  if (all_hex(value)) return absl::AsciiStrToLower(value);
  // Image digests, bare or pinned to a name: "[name@]sha256:<hex>".
  size_t digest = value.find("sha256:");
  if (digest != absl::string_view::npos && (digest == 0 || value[digest - 1] == '@') &&
      all_hex(value.substr(digest + 7))) {
    return absl::StrCat(value.substr(0, digest + 7),
                        absl::AsciiStrToLower(value.substr(digest + 7)));
  }
  return std::string(value);
}

absl::StatusOr<RefValueSet> ParseRefValueSet(absl::string_view name, absl::string_view text) {
  if (!IsValidRefValueSetName(name)) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid reference-value set name \"", name.substr(0, 64),
                     "\": 1-128 characters of [A-Za-z0-9_.-], not starting with '.'"));
  }
  PolicyError load_error;
  std::optional<YAML::Node> root = internal::LoadYaml(text, 16, load_error);
  if (!root.has_value()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference values ", name, ": ", load_error.ToString()));
  }
  RefValueSet set;
  set.name = std::string(name);
  std::vector<std::string> errors;
  auto error = [&](const YAML::Node& node, absl::string_view what) {
    SourcePos pos = internal::PosOf(node);
    errors.push_back(pos.line > 0 ? absl::StrCat("line ", pos.line, ": ", what)
                                  : std::string(what));
  };
  try {
    // yaml-cpp's Node::operator= writes through to the node it refers to;
    // std::optional rebinds.
    std::optional<YAML::Node> values;
    if (root->IsSequence()) {
      values = *root;
    } else if (root->IsMap()) {
      std::set<std::string> seen;
      for (auto it = root->begin(); it != root->end(); ++it) {
        std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
        if (!seen.insert(key).second) {
          error(it->first, absl::StrCat("duplicate key `", key.substr(0, 64), "`"));
          continue;
        }
        if (key == "values") {
          values.emplace(it->second);
        } else if (key == "description" && it->second.IsScalar()) {
          set.description = it->second.Scalar();
        } else if (key != "name") {
          error(it->first, absl::StrCat("unknown field `", key.substr(0, 64), "`"));
        }
      }
      if (!values) error(*root, "missing `values`");
    } else {
      error(*root, "expected a list of values or a mapping with `values`");
    }
    if (values && !values->IsSequence()) {
      error(*values, "`values` must be a list");
    } else if (values && values->size() > kMaxValues) {
      error(*values, absl::StrCat("more than ", kMaxValues, " values"));
    } else if (values) {
      size_t index = 0;
      for (const YAML::Node& item : *values) {
        ++index;
        RefValueEntry entry;
        std::optional<YAML::Node> value_node;
        if (!item.IsMap()) value_node.emplace(item);
        if (item.IsMap()) {
          std::set<std::string> seen;
          for (auto it = item.begin(); it != item.end(); ++it) {
            std::string key = it->first.IsScalar() ? it->first.Scalar() : "";
            if (!seen.insert(key).second) {
              error(it->first,
                    absl::StrCat("values[", index, "]: duplicate key `", key.substr(0, 64), "`"));
              continue;
            }
            if (key == "value") {
              value_node.emplace(it->second);
            } else if (key == "expires") {
              absl::Time t;
              std::string err;
              if (!it->second.IsScalar() ||
                  !absl::ParseTime(absl::RFC3339_full, it->second.Scalar(), &t, &err)) {
                error(it->second,
                      absl::StrCat("values[", index, "].expires: not an RFC 3339 time"));
              } else {
                entry.expires = t;
              }
            } else {
              error(it->first,
                    absl::StrCat("values[", index, "]: unknown field `", key.substr(0, 64), "`"));
            }
          }
        }
        if (!value_node || !value_node->IsScalar() || value_node->Scalar().empty()) {
          error(item, absl::StrCat("values[", index, "]: expected a non-empty string value"));
          continue;
        }
        if (value_node->Scalar().size() > kMaxValueBytes) {
          error(item, absl::StrCat("values[", index, "]: longer than ", kMaxValueBytes, " bytes"));
          continue;
        }
        entry.value = NormalizeRefValue(value_node->Scalar());
        set.values.push_back(std::move(entry));
      }
    }
  } catch (const YAML::Exception& e) {
    errors.push_back(absl::StrCat("cannot read the document: ", e.msg));
  } catch (const std::exception& e) {
    // Nothing else here throws by design; a hostile document (e.g. an
    // allocation failure) must still never take the server down.
    errors.push_back(absl::StrCat("cannot read the document: ", e.what()));
  }
  if (!errors.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("reference values ", name, ": ", absl::StrJoin(errors, "; ")));
  }
  return set;
}

common::Json RefValueSetToJson(const RefValueSet& set) {
  common::Json values = common::Json::array();
  for (const RefValueEntry& e : set.values) {
    common::Json v = {{"value", e.value}};
    if (e.expires.has_value()) {
      v["expires"] = absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", *e.expires, absl::UTCTimeZone());
    }
    values.push_back(std::move(v));
  }
  common::Json out = {{"name", set.name}, {"values", std::move(values)}};
  if (!set.description.empty()) out["description"] = set.description;
  return out;
}

std::shared_ptr<const RefValues> RefValues::Create(const std::vector<RefValueSet>& sets) {
  std::shared_ptr<RefValues> out(new RefValues());
  for (const RefValueSet& set : sets) {
    auto& values = out->sets_[set.name];
    for (const RefValueEntry& e : set.values) {
      absl::Time expires = e.expires.value_or(absl::InfiniteFuture());
      auto [it, inserted] = values.emplace(e.value, expires);
      // Listed twice: the later expiry wins.
      if (!inserted && expires > it->second) it->second = expires;
    }
  }
  return out;
}

std::shared_ptr<const RefValues> RefValues::Empty() {
  return std::shared_ptr<const RefValues>(new RefValues());
}

RefMatch RefValues::Match(absl::string_view name, absl::string_view value, absl::Time now) const {
  auto set = sets_.find(name);
  if (set == sets_.end()) return RefMatch::kNoSuchSet;
  auto it = set->second.find(value);
  if (it == set->second.end()) return RefMatch::kNotInSet;
  return it->second <= now ? RefMatch::kExpired : RefMatch::kMatch;
}

}  // namespace kbs::policy
