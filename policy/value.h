// The values a release policy reasons about: the claims of an attested
// workload (built once per decision from the attestation token's claims) and
// the constants of policy expressions. A small, immutable JSON-like model:
// null, bool, int, double, string, list and map (string keys). Lists and
// maps are shared, so copying a Value never copies a claims tree.
#ifndef KBS_POLICY_VALUE_H_
#define KBS_POLICY_VALUE_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/strings/string_view.h"
#include "common/json.h"

namespace kbs::policy {

class Value;
struct ValueMap;
using ValueList = std::vector<Value>;

class Value final {
 public:
  enum class Kind { kNull, kBool, kInt, kDouble, kString, kList, kMap };

  Value() = default;  // null
  static Value Bool(bool v);
  static Value Int(int64_t v);
  static Value Double(double v);
  static Value String(std::string v);
  static Value List(ValueList items);
  static Value Map(ValueMap entries);
  // JSON numbers become Int when integral and in range, otherwise Double.
  static Value FromJson(const common::Json& json);

  Kind kind() const { return kind_; }
  bool is_null() const { return kind_ == Kind::kNull; }
  bool is_bool() const { return kind_ == Kind::kBool; }
  bool is_int() const { return kind_ == Kind::kInt; }
  bool is_double() const { return kind_ == Kind::kDouble; }
  bool is_number() const { return kind_ == Kind::kInt || kind_ == Kind::kDouble; }
  bool is_string() const { return kind_ == Kind::kString; }
  bool is_list() const { return kind_ == Kind::kList; }
  bool is_map() const { return kind_ == Kind::kMap; }

  // Accessors; calling the wrong one for kind() returns a default (false, 0,
  // "", empty) rather than failing.
  bool bool_value() const { return kind_ == Kind::kBool && bool_; }
  int64_t int_value() const { return kind_ == Kind::kInt ? int_ : 0; }
  double double_value() const;  // Int or Double as double
  const std::string& string_value() const;
  const ValueList& list() const;
  const ValueMap& map() const;

  // Map member, or nullptr when this is not a map or has no such key.
  const Value* Find(absl::string_view key) const;
  // Follows a dotted path ("snp.measurement") through nested maps.
  const Value* FindPath(absl::string_view dotted) const;

  common::Json ToJson() const;
  // Compact, human-readable rendering for explanations: strings quoted, long
  // strings and collections cut at about `max_chars` with "…".
  std::string Render(size_t max_chars = 80) const;
  static absl::string_view KindName(Kind kind);

  // Structural equality; Int and Double compare numerically.
  friend bool operator==(const Value& a, const Value& b);
  friend bool operator!=(const Value& a, const Value& b) { return !(a == b); }

 private:
  Kind kind_ = Kind::kNull;
  bool bool_ = false;
  int64_t int_ = 0;
  double double_ = 0;
  std::shared_ptr<const std::string> string_;
  std::shared_ptr<const ValueList> list_;
  std::shared_ptr<const ValueMap> map_;
};

struct ValueMap {
  absl::flat_hash_map<std::string, Value> entries;
};

}  // namespace kbs::policy

#endif  // KBS_POLICY_VALUE_H_
