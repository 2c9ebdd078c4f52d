// Init-data (kbs-protocol.md §6.6): the TOML document the pod was launched
// with, sent in /attest as {"format":"toml","body":"..."}. Its digest, over
// the raw bytes as sent with the algorithm the document declares, must equal
// the TEE's init-data field (HOST_DATA, MRCONFIGID, ...).
#ifndef KBS_KBS_CORE_INIT_DATA_H_
#define KBS_KBS_CORE_INIT_DATA_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"
#include "common/json.h"

namespace kbs {

// Entries of [data] larger than this are summarized by digest in claims,
// so tokens stay compact.
inline constexpr size_t kMaxInlineInitDataEntry = 2048;

// More containers than this in the agent policy's policy_data is an error.
inline constexpr size_t kMaxAgentPolicyContainers = 256;

// A container image the pod's agent policy lets it run, taken from the
// policy's `io.kubernetes.cri.image-name` annotation. Only a digest pins the
// image content; a tag can be moved to other content, so a rule that needs a
// digest must never be satisfied by an entry without one.
struct ContainerImage {
  std::string reference;              // as the annotation states it
  std::string name;                   // repository part, without tag or digest
  std::optional<std::string> digest;  // "sha256:<64 hex>" when pinned by digest
  std::string note;                   // why it has no digest, if it has none
};

struct InitData {
  common::HashAlgorithm algorithm = common::HashAlgorithm::kSha256;
  std::string version;
  std::string digest;  // raw bytes
  // The [data] table: small string entries verbatim, larger ones as
  // {"sha256": "<hex>", "bytes": N}.
  common::Json claims = common::Json::object();
  // [data] had a "policy.rego" (the Kata agent policy) with a line starting
  // `policy_data := {`.
  bool has_agent_policy = false;
  // SHA-256 of policy.rego with the policy_data JSON cut out: the agent
  // policy's rules. A policy whose rules let the pod run anything makes its
  // image list meaningless, so `images` rules should pin this digest.
  std::string agent_policy_rules_digest;  // raw, when has_agent_policy
  // The workload images of policy_data.containers, in container order with
  // duplicate references removed; the pod sandbox (pause) container is left
  // out. A workload container without an image-name annotation gives an entry
  // with an empty reference, which matches nothing. Empty when policy_data
  // has no `containers`: that does not mean the pod runs no image.
  std::vector<ContainerImage> images;
};

// Parses init-data. InvalidArgument for an unsupported format, invalid TOML
// (with line and column), a missing or unknown `algorithm`, a non-table
// [data], or, when "policy.rego" has `policy_data := {`, a policy_data that is
// not JSON within common::ParseJson's limits (depth, duplicate members), is
// defined twice, or whose `containers` is not an array of at most
// kMaxAgentPolicyContainers objects with string annotations.
absl::StatusOr<InitData> ParseInitData(absl::string_view format, absl::string_view body);

// Splits an image reference: `name[:tag]@sha256:<64 lowercase hex>` gives
// `name` and the digest; `name[:tag]` gives `name` alone (a `:` before the
// last `/` is a registry port, not a tag). Any other digest part (another
// algorithm, wrong length, uppercase) leaves no digest and says why in
// `note`. Nothing is normalized: `nginx` stays `nginx`, not
// `docker.io/library/nginx`.
ContainerImage ParseImageReference(absl::string_view reference);

// [{"reference": ..., "name": ..., "digest": ...}, ...] with "digest" left
// out where there is none.
common::Json ImagesToJson(const std::vector<ContainerImage>& images);

}  // namespace kbs

#endif  // KBS_KBS_CORE_INIT_DATA_H_
