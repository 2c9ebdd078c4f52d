// Persists the active release-policy document in the KBS database, so a
// restart keeps the operator's choice.
#ifndef KBS_KBS_CORE_POLICY_STORE_H_
#define KBS_KBS_CORE_POLICY_STORE_H_

#include <memory>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/clock.h"
#include "kbs/storage/sqlite.h"

namespace kbs {

// Thread-safe.
class PolicyStore final {
 public:
  static absl::StatusOr<std::unique_ptr<PolicyStore>> Create(storage::SqliteDatabase* db,
                                                             const common::Clock* clock);
  // The stored document, or nullopt if none was ever set.
  absl::StatusOr<std::optional<std::string>> Load();
  absl::Status Save(absl::string_view document);

 private:
  PolicyStore(storage::SqliteDatabase* db, const common::Clock* clock) : db_(db), clock_(clock) {}
  storage::SqliteDatabase* db_;
  const common::Clock* clock_;
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_POLICY_STORE_H_
