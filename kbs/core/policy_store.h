// Persists release policies in the KBS database: every accepted version
// (immutable, keyed by its version id), which version is active and which
// runs in shadow beside it, the activation history, and the
// reference-value sets. A restart keeps the operator's choices.
#ifndef KBS_KBS_CORE_POLICY_STORE_H_
#define KBS_KBS_CORE_POLICY_STORE_H_

#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "kbs/storage/sqlite.h"

namespace kbs {

struct StoredPolicy {
  std::string id;
  std::string source;  // the text as the operator sent it (YAML or JSON)
  absl::Time created;
};

struct PolicyState {
  std::optional<std::string> active;
  std::optional<std::string> shadow;
};

struct PolicyEvent {
  int64_t seq = 0;
  absl::Time at;
  std::string action;  // "activate" | "shadow" | "shadow-off"
  std::string version;
};

// Thread-safe.
class PolicyStore final {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyStore>> Create(storage::SqliteDatabase* db,
                                                             const common::Clock* clock);

  // Stores `source` as version `id` (kept if it exists) and records the
  // activation in `slot` ("active" or "shadow"), in one transaction.
  absl::Status SaveAndActivate(absl::string_view id, absl::string_view source,
                               absl::string_view slot);
  // Activates a stored version (`id` or a unique prefix of at least 12
  // characters) in `slot`; NotFound / InvalidArgument (ambiguous) otherwise.
  absl::StatusOr<StoredPolicy> Activate(absl::string_view id, absl::string_view slot);
  // Clears the shadow slot.
  absl::Status ClearShadow();

  absl::StatusOr<PolicyState> LoadState();
  absl::StatusOr<std::optional<StoredPolicy>> Get(absl::string_view id);
  // Every stored version, newest first, and the activation log, newest first.
  absl::StatusOr<std::vector<StoredPolicy>> Versions(size_t limit);
  absl::StatusOr<std::vector<PolicyEvent>> Events(size_t limit);
  // The single document the first release kept (table resource_policy), if
  // any and not yet migrated.
  absl::StatusOr<std::optional<std::string>> LoadLegacy();

  // Reference-value sets, as canonical JSON text.
  absl::Status PutRefValues(absl::string_view name, absl::string_view json);
  // NotFound when there is no such set.
  absl::Status DeleteRefValues(absl::string_view name);
  absl::StatusOr<std::vector<std::pair<std::string, std::string>>> LoadRefValues();

 private:
  PolicyStore(storage::SqliteDatabase* db, const common::Clock* clock) : db_(db), clock_(clock) {}
  absl::StatusOr<StoredPolicy> Resolve(storage::SqliteConnection& c, absl::string_view id);
  absl::Status Record(storage::SqliteConnection& c, absl::string_view slot, absl::string_view id);

  storage::SqliteDatabase* db_;
  const common::Clock* clock_;
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_POLICY_STORE_H_
