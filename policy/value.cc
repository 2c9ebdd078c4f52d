#include "policy/value.h"

#include <cmath>
#include <limits>

#include "absl/strings/str_cat.h"

namespace kbs::policy {
namespace {

const std::string& EmptyString() {
  static const std::string* const kEmpty = new std::string();
  return *kEmpty;
}
const ValueList& EmptyList() {
  static const ValueList* const kEmpty = new ValueList();
  return *kEmpty;
}
const ValueMap& EmptyMap() {
  static const ValueMap* const kEmpty = new ValueMap();
  return *kEmpty;
}

// Appends `text` to `out`, stopping at `budget` characters.
void AppendBounded(std::string& out, absl::string_view text, size_t budget) {
  if (out.size() >= budget) return;
  size_t room = budget - out.size();
  if (text.size() <= room) {
    absl::StrAppend(&out, text);
  } else {
    // Do not cut a UTF-8 sequence in half.
    size_t cut = room;
    while (cut > 0 && (static_cast<unsigned char>(text[cut]) & 0xC0) == 0x80) --cut;
    absl::StrAppend(&out, text.substr(0, cut), "…");
  }
}

void RenderInto(const Value& v, std::string& out, size_t budget) {
  if (out.size() >= budget) return;
  switch (v.kind()) {
    case Value::Kind::kNull:
      AppendBounded(out, "null", budget);
      return;
    case Value::Kind::kBool:
      AppendBounded(out, v.bool_value() ? "true" : "false", budget);
      return;
    case Value::Kind::kInt:
      AppendBounded(out, absl::StrCat(v.int_value()), budget);
      return;
    case Value::Kind::kDouble:
      AppendBounded(out, absl::StrCat(v.double_value()), budget);
      return;
    case Value::Kind::kString:
      out.push_back('"');
      AppendBounded(out, v.string_value(), budget);
      if (out.size() < budget + 4) out.push_back('"');
      return;
    case Value::Kind::kList: {
      out.push_back('[');
      bool first = true;
      for (const Value& item : v.list()) {
        if (out.size() >= budget) {
          AppendBounded(out, "…", budget + 4);
          break;
        }
        if (!first) out.append(", ");
        first = false;
        RenderInto(item, out, budget);
      }
      out.push_back(']');
      return;
    }
    case Value::Kind::kMap: {
      out.push_back('{');
      bool first = true;
      for (const auto& [key, item] : v.map().entries) {
        if (out.size() >= budget) {
          AppendBounded(out, "…", budget + 4);
          break;
        }
        if (!first) out.append(", ");
        first = false;
        absl::StrAppend(&out, key, ": ");
        RenderInto(item, out, budget);
      }
      out.push_back('}');
      return;
    }
  }
}

}  // namespace

Value Value::Bool(bool v) {
  Value out;
  out.kind_ = Kind::kBool;
  out.bool_ = v;
  return out;
}

Value Value::Int(int64_t v) {
  Value out;
  out.kind_ = Kind::kInt;
  out.int_ = v;
  return out;
}

Value Value::Double(double v) {
  Value out;
  out.kind_ = Kind::kDouble;
  out.double_ = v;
  return out;
}

Value Value::String(std::string v) {
  Value out;
  out.kind_ = Kind::kString;
  out.string_ = std::make_shared<const std::string>(std::move(v));
  return out;
}

Value Value::List(ValueList items) {
  Value out;
  out.kind_ = Kind::kList;
  out.list_ = std::make_shared<const ValueList>(std::move(items));
  return out;
}

Value Value::Map(ValueMap entries) {
  Value out;
  out.kind_ = Kind::kMap;
  out.map_ = std::make_shared<const ValueMap>(std::move(entries));
  return out;
}

Value Value::FromJson(const common::Json& json) {
  switch (json.type()) {
    case common::Json::value_t::boolean:
      return Bool(json.get<bool>());
    case common::Json::value_t::number_integer:
      return Int(json.get<int64_t>());
    case common::Json::value_t::number_unsigned: {
      uint64_t u = json.get<uint64_t>();
      if (u <= static_cast<uint64_t>(std::numeric_limits<int64_t>::max())) {
        return Int(static_cast<int64_t>(u));
      }
      return Double(static_cast<double>(u));
    }
    case common::Json::value_t::number_float: {
      double d = json.get<double>();
      if (std::isfinite(d) && d == std::trunc(d) && std::fabs(d) < 9.007199254740992e15) {
        return Int(static_cast<int64_t>(d));
      }
      return Double(d);
    }
    case common::Json::value_t::string:
      return String(json.get_ref<const std::string&>());
    case common::Json::value_t::array: {
      ValueList items;
      items.reserve(json.size());
      for (const auto& item : json) items.push_back(FromJson(item));
      return List(std::move(items));
    }
    case common::Json::value_t::object: {
      ValueMap entries;
      entries.entries.reserve(json.size());
      for (auto it = json.begin(); it != json.end(); ++it) {
        entries.entries.emplace(it.key(), FromJson(it.value()));
      }
      return Map(std::move(entries));
    }
    default:
      return Value();
  }
}

double Value::double_value() const {
  if (kind_ == Kind::kDouble) return double_;
  if (kind_ == Kind::kInt) return static_cast<double>(int_);
  return 0;
}

const std::string& Value::string_value() const {
  return kind_ == Kind::kString ? *string_ : EmptyString();
}

const ValueList& Value::list() const { return kind_ == Kind::kList ? *list_ : EmptyList(); }

const ValueMap& Value::map() const { return kind_ == Kind::kMap ? *map_ : EmptyMap(); }

const Value* Value::Find(absl::string_view key) const {
  if (kind_ != Kind::kMap) return nullptr;
  auto it = map_->entries.find(key);
  return it == map_->entries.end() ? nullptr : &it->second;
}

const Value* Value::FindPath(absl::string_view dotted) const {
  const Value* cur = this;
  while (cur != nullptr) {
    size_t dot = dotted.find('.');
    if (dot == absl::string_view::npos) return cur->Find(dotted);
    cur = cur->Find(dotted.substr(0, dot));
    dotted.remove_prefix(dot + 1);
  }
  return nullptr;
}

common::Json Value::ToJson() const {
  switch (kind_) {
    case Kind::kNull:
      return nullptr;
    case Kind::kBool:
      return bool_;
    case Kind::kInt:
      return int_;
    case Kind::kDouble:
      return double_;
    case Kind::kString:
      return *string_;
    case Kind::kList: {
      common::Json out = common::Json::array();
      for (const Value& item : *list_) out.push_back(item.ToJson());
      return out;
    }
    case Kind::kMap: {
      common::Json out = common::Json::object();
      for (const auto& [key, item] : map_->entries) out[key] = item.ToJson();
      return out;
    }
  }
  return nullptr;
}

std::string Value::Render(size_t max_chars) const {
  std::string out;
  RenderInto(*this, out, max_chars);
  return out;
}

absl::string_view Value::KindName(Kind kind) {
  switch (kind) {
    case Kind::kNull:
      return "null";
    case Kind::kBool:
      return "bool";
    case Kind::kInt:
      return "int";
    case Kind::kDouble:
      return "double";
    case Kind::kString:
      return "string";
    case Kind::kList:
      return "list";
    case Kind::kMap:
      return "map";
  }
  return "?";
}

bool operator==(const Value& a, const Value& b) {
  if (a.is_number() && b.is_number()) {
    if (a.is_int() && b.is_int()) return a.int_ == b.int_;
    return a.double_value() == b.double_value();
  }
  if (a.kind_ != b.kind_) return false;
  switch (a.kind_) {
    case Value::Kind::kNull:
      return true;
    case Value::Kind::kBool:
      return a.bool_ == b.bool_;
    case Value::Kind::kString:
      return a.string_ == b.string_ || *a.string_ == *b.string_;
    case Value::Kind::kList:
      return a.list_ == b.list_ || *a.list_ == *b.list_;
    case Value::Kind::kMap: {
      if (a.map_ == b.map_) return true;
      if (a.map_->entries.size() != b.map_->entries.size()) return false;
      for (const auto& [key, item] : a.map_->entries) {
        const Value* other = b.Find(key);
        if (other == nullptr || *other != item) return false;
      }
      return true;
    }
    default:
      return false;
  }
}

}  // namespace kbs::policy
