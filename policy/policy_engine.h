// The release-policy seam: given the verified claims of an attested workload
// and the resource it asks for, allow or deny, and say why. An engine
// failure is a non-OK status; a deny is an OK Decision with allow=false.
//
// This release carries the two built-in presets (`deny-all`, `allow-all`);
// the rule-based engine keyed by image digest and measurement plugs in
// behind the same interface.
#ifndef KBS_POLICY_POLICY_ENGINE_H_
#define KBS_POLICY_POLICY_ENGINE_H_

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"

namespace kbs::policy {

struct PolicyInput {
  // "repo/type/tag".
  std::string resource_path;
  // The attested TEEs: the primary first, then devices.
  std::vector<std::string> tees;
  // The verified claims: the attestation token's claims set (EAR). Not
  // owned; valid for the duration of Evaluate().
  const common::Json* claims = nullptr;
};

struct Decision {
  bool allow = false;
  std::string policy_id;
  // The rule that decided.
  std::string rule;
  // For the operator: why. For a deny this is safe to show the client.
  std::string reason;
};

struct PolicyOptions {
  // Whether the operator enabled the `sample` TEE. Even a policy that
  // allows everything never admits `sample` evidence unless it is enabled.
  bool sample_tee_enabled = false;
};

// Immutable after compilation; Evaluate() is thread-safe.
class PolicyEngine {
 public:
  virtual ~PolicyEngine() = default;
  // The policy's identifier (recorded with every decision).
  virtual const std::string& id() const = 0;
  // The normalized document, as GET /kbs/v0/resource-policy returns it.
  virtual const common::Json& document() const = 0;
  virtual absl::StatusOr<Decision> Evaluate(const PolicyInput& input) const = 0;
};

// Compiles a policy document. Accepted forms: `{"preset":"allow-all"}`,
// `{"preset":"deny-all"}` (optionally with `"version":1`), or the bare
// preset name. InvalidArgument lists what is wrong; Rego text gets an
// explicit "not supported" error.
absl::StatusOr<std::unique_ptr<PolicyEngine>> CompilePolicy(absl::string_view document,
                                                            const PolicyOptions& options);

// The policy a fresh KBS starts with: deny everything.
std::unique_ptr<PolicyEngine> DefaultPolicy(const PolicyOptions& options);

}  // namespace kbs::policy

#endif  // KBS_POLICY_POLICY_ENGINE_H_
