// The verifiers this KBS runs, by TEE name. Built once in main and then
// read-only (thread-safe for lookups).
#ifndef KBS_VERIFIER_VERIFIER_SET_H_
#define KBS_VERIFIER_VERIFIER_SET_H_

#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "verifier/verifier.h"

namespace kbs::verifier {

// The TEE names of the KBS protocol's `Tee` enum (kbs-protocol.md §7.1).
bool IsKnownTee(absl::string_view tee);

class VerifierSet final {
 public:
  // AlreadyExists if a verifier for the same TEE was added.
  absl::Status Add(std::unique_ptr<Verifier> verifier);
  // nullptr when no verifier handles `tee`.
  const Verifier* Find(absl::string_view tee) const;
  std::vector<std::string> Tees() const;

 private:
  std::map<std::string, std::unique_ptr<Verifier>, std::less<>> verifiers_;
};

}  // namespace kbs::verifier

#endif  // KBS_VERIFIER_VERIFIER_SET_H_
