// Reference-value sets: named lists of allowed values (e.g. the launch
// measurements a CI pipeline publishes for a pod image), each value with an
// optional expiry. Rules name a set instead of listing values inline, so the
// values change through the admin API without a new policy version.
//
// Set document (YAML or JSON):
//   description: llama runtime builds      # optional
//   values:
//     - "6a6519d7…"                         # no expiry
//     - {value: "0d3f…", expires: "2027-01-31T00:00:00Z"}
#ifndef KBS_POLICY_REFVALUES_H_
#define KBS_POLICY_REFVALUES_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json.h"

namespace kbs::policy {

struct RefValueEntry {
  std::string value;
  std::optional<absl::Time> expires;
};

struct RefValueSet {
  std::string name;
  std::string description;
  std::vector<RefValueEntry> values;
};

// Set names: 1-128 of [A-Za-z0-9_.-], not starting with '.'.
bool IsValidRefValueSetName(absl::string_view name);

// Parses a set document (above) or a bare list of values. InvalidArgument
// lists every problem (entry index and what is wrong). Hex values are
// lowercased, as register claims are.
absl::StatusOr<RefValueSet> ParseRefValueSet(absl::string_view name, absl::string_view text);

// {"name":..,"description":..,"values":[{"value":..,"expires":"RFC 3339"}]}.
common::Json RefValueSetToJson(const RefValueSet& set);

// Lowercases `value` when it is entirely hex digits (register values and
// digests compare case-insensitively); other text is kept as is.
std::string NormalizeRefValue(absl::string_view value);

enum class RefMatch { kMatch, kExpired, kNotInSet, kNoSuchSet };

// An immutable snapshot of every set; replaced as a whole on change.
// Thread-safe.
class RefValues final {
 public:
  static std::shared_ptr<const RefValues> Create(const std::vector<RefValueSet>& sets);
  static std::shared_ptr<const RefValues> Empty();

  // Whether `value` (already normalized) is in set `name` and unexpired at
  // `now`. A value expires at its expiry instant (expires <= now).
  RefMatch Match(absl::string_view name, absl::string_view value, absl::Time now) const;
  bool HasSet(absl::string_view name) const { return sets_.contains(name); }

 private:
  RefValues() = default;
  // name → value → expiry (InfiniteFuture when none).
  absl::flat_hash_map<std::string, absl::flat_hash_map<std::string, absl::Time>> sets_;
};

}  // namespace kbs::policy

#endif  // KBS_POLICY_REFVALUES_H_
