// What a release policy sees about an attested workload (docs/policy.md
// "Claims"): every verifier's claims under its TEE's name (`snp.*`, `tdx.*`,
// `sample.*`), plus a normalized set: `tee`, `tees`, `debug`, `tcb_status`
// where the TEE has one, `init_data_digest`, `images` and `image_digests`.
//
// Built once per decision from the attestation token's claims (EAR), which
// only verification produces; or, for dry runs (`kbsctl policy test`,
// EvaluatePolicy), from a JSON object in the same shape the conditions see.
#ifndef KBS_POLICY_CLAIMS_H_
#define KBS_POLICY_CLAIMS_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"
#include "policy/value.h"

namespace kbs::policy {

// A container image the pod may run, from its verified init-data.
struct PodImage {
  std::string reference;  // as stated, e.g. "ghcr.io/acme/llm@sha256:9f1c…"
  std::string name;       // without tag or digest
  // "sha256:<64 lowercase hex>" when the reference pins a digest. A
  // reference by tag alone has none and can never satisfy a digest rule.
  std::optional<std::string> digest;
};

// Splits an OCI image reference into name, tag and digest. Only a
// well-formed `@sha256:<64 hex>` counts as a digest (lowercased).
PodImage ParseImageReference(absl::string_view reference);

struct ClaimSet {
  // The activation for conditions: a map with the members above.
  Value root;
  std::string tee;                // the primary TEE
  std::vector<std::string> tees;  // primary first, then devices
  // nullopt when the TEE's claims do not say (fails closed: not admitted
  // unless the rule allows debug guests).
  std::optional<bool> debug;
  // nullopt when no verified init-data carried an agent policy.
  std::optional<std::vector<PodImage>> images;
};

// One attested TEE in EAR token claims (the layout kbs/token writes).
struct EarSubmodule {
  std::string tee;                          // the TEE named in its annotated evidence
  const common::Json* submodule = nullptr;  // submods.<id>
  const common::Json* annotated = nullptr;  // its "ear.veraison.annotated-evidence"
  const common::Json* claims = nullptr;     // annotated[tee]
};
// The submodules of `ear`, cpu0 (the primary TEE) first, then devices.
// InvalidArgument when the layout is not ours (no cpu0, a submodule naming
// no TEE or two). Pointers are into `ear`.
absl::StatusOr<std::vector<EarSubmodule>> EarSubmodules(const common::Json& ear);

// From our EAR token claims (kbs/token): submods.<id>["ear.veraison.annotated-evidence"]
// holds each TEE's claims; cpu0 also holds init_data and, when the
// init-data carried an agent policy, ["ear.trustee.identifiers"].validated.container_images.
absl::StatusOr<ClaimSet> ClaimsFromEar(const common::Json& ear);

// From the policy's own view, for dry runs: {"tee": "snp", "snp": {...},
// "images": ["ref", ...], "init_data_digest": "..", "debug": false, ...}.
// `tee` is required; `debug` and `tcb_status` are derived from the TEE's
// claims when absent. A JSON object with `submods` is read as EAR claims.
absl::StatusOr<ClaimSet> ClaimsFromJson(const common::Json& claims);

}  // namespace kbs::policy

#endif  // KBS_POLICY_CLAIMS_H_
