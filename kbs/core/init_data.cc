#include "kbs/core/init_data.h"

#include <toml++/toml.h>

#include <set>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/encoding.h"
#include "common/status_macros.h"
#include "policy/claims.h"

namespace kbs {
namespace {

using common::Json;

// Annotations that containerd's CRI plugin sets in each container's OCI spec
// and that genpolicy writes into policy_data.containers[i].OCI.Annotations.
// genpolicy (kata-containers src/tools/genpolicy/src/policy.rs,
// get_container_annotations) adds the image-name annotation to every
// container except the pause container, which it inserts as containers[0]
// (pause_container.rs); its settings (genpolicy-settings.json) annotate that
// one `io.kubernetes.cri.container-type: sandbox` and the others `container`.
// The agent policy only lets a policy entry create a container of the same
// container-type (rules.rego, allow_by_container_types), and containerd gives
// `sandbox` to the pause container alone, so a `sandbox` entry runs no
// workload image.
constexpr char kImageNameAnnotation[] = "io.kubernetes.cri.image-name";
constexpr char kContainerTypeAnnotation[] = "io.kubernetes.cri.container-type";
constexpr char kSandboxContainerType[] = "sandbox";

constexpr size_t kSha256HexDigits = 64;

absl::Status PolicyDataError(absl::string_view message) {
  return absl::InvalidArgumentError(absl::StrCat("init-data: policy.rego policy_data: ", message));
}

// Why `digest` (what follows the `@` of a reference) is not a usable pin, or
// "" when it is one.
std::string DigestProblem(absl::string_view digest) {
  size_t colon = digest.find(':');
  if (colon == absl::string_view::npos) {
    return absl::StrCat("digest \"", digest.substr(0, 80), "\" has no algorithm");
  }
  absl::string_view algorithm = digest.substr(0, colon);
  absl::string_view hex = digest.substr(colon + 1);
  if (algorithm != "sha256") {
    return absl::StrCat("digest algorithm \"", algorithm.substr(0, 32), "\" is not sha256");
  }
  if (hex.size() != kSha256HexDigits) {
    return absl::StrCat("sha256 digest has ", hex.size(), " characters, not ", kSha256HexDigits);
  }
  for (char c : hex) {
    if (!absl::ascii_isdigit(c) && !(c >= 'a' && c <= 'f')) {
      return "sha256 digest is not lowercase hex";
    }
  }
  return "";
}

// The offset of the `{` of the first line, among those that start at or after
// `from` (itself a line start), that reads `policy_data := {` (any spaces or
// tabs around `:=`); npos if there is none. genpolicy writes the JSON there
// (policy.rs, generate_policy: "policy_data := {json}").
size_t FindPolicyData(absl::string_view rego, size_t from) {
  auto skip_blanks = [](absl::string_view& s) {
    while (!s.empty() && (s.front() == ' ' || s.front() == '\t')) s.remove_prefix(1);
  };
  for (size_t line = from; line < rego.size();) {
    absl::string_view rest = rego.substr(line);
    if (absl::ConsumePrefix(&rest, "policy_data")) {
      skip_blanks(rest);
      if (absl::ConsumePrefix(&rest, ":=")) {
        skip_blanks(rest);
        if (!rest.empty() && rest.front() == '{') return rego.size() - rest.size();
      }
    }
    size_t newline = rego.find('\n', line);
    if (newline == absl::string_view::npos) break;
    line = newline + 1;
  }
  return absl::string_view::npos;
}

// How many times `policy_data` is defined (`policy_data :=` or
// `policy_data =`, any indentation, anywhere in the text, strings included).
size_t CountPolicyDataDefinitions(absl::string_view rego) {
  auto ident = [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '_';
  };
  size_t count = 0;
  for (size_t pos = rego.find("policy_data"); pos != absl::string_view::npos;
       pos = rego.find("policy_data", pos + 1)) {
    size_t end = pos + std::string_view("policy_data").size();
    if ((pos > 0 && ident(rego[pos - 1])) || (end < rego.size() && ident(rego[end]))) continue;
    while (end < rego.size() && (rego[end] == ' ' || rego[end] == '\t')) ++end;
    if (absl::StartsWith(rego.substr(end), ":=") ||
        (absl::StartsWith(rego.substr(end), "=") && !absl::StartsWith(rego.substr(end), "=="))) {
      ++count;
    }
  }
  return count;
}

// The string annotation `key` of a container, nullopt when absent.
absl::StatusOr<std::optional<std::string>> StringAnnotation(const Json* annotations,
                                                            absl::string_view key,
                                                            absl::string_view where) {
  const Json* value = annotations == nullptr ? nullptr : common::FindMember(*annotations, key);
  if (value == nullptr) return std::nullopt;
  if (!value->is_string()) {
    return PolicyDataError(absl::StrCat(where, ".OCI.Annotations[\"", key,
                                        "\"] must be a string, not ",
                                        common::JsonTypeName(*value)));
  }
  return value->get<std::string>();
}

// The image policy_data.containers[index] may run; nullopt for the sandbox.
absl::StatusOr<std::optional<ContainerImage>> ImageOfContainer(const Json& container,
                                                               size_t index) {
  const std::string where = absl::StrCat("containers[", index, "]");
  if (!container.is_object()) {
    return PolicyDataError(
        absl::StrCat(where, " must be an object, not ", common::JsonTypeName(container)));
  }
  const Json* annotations = nullptr;
  if (const Json* oci = common::FindMember(container, "OCI"); oci != nullptr) {
    if (!oci->is_object()) {
      return PolicyDataError(
          absl::StrCat(where, ".OCI must be an object, not ", common::JsonTypeName(*oci)));
    }
    annotations = common::FindMember(*oci, "Annotations");
    if (annotations != nullptr && !annotations->is_object()) {
      return PolicyDataError(absl::StrCat(where, ".OCI.Annotations must be an object, not ",
                                          common::JsonTypeName(*annotations)));
    }
  }
  KBS_ASSIGN_OR_RETURN(std::optional<std::string> type,
                       StringAnnotation(annotations, kContainerTypeAnnotation, where));
  if (type == kSandboxContainerType) return std::nullopt;
  KBS_ASSIGN_OR_RETURN(std::optional<std::string> reference,
                       StringAnnotation(annotations, kImageNameAnnotation, where));
  if (!reference.has_value()) {
    // Fail closed: the container runs something, and an empty reference
    // matches no rule.
    ContainerImage unknown;
    unknown.note = absl::StrCat("container has no ", kImageNameAnnotation, " annotation");
    return unknown;
  }
  return ParseImageReference(*reference);
}

// Fills out.has_agent_policy and out.images from the agent policy text.
absl::Status ExtractAgentPolicyImages(absl::string_view rego, InitData& out) {
  const size_t open = FindPolicyData(rego, 0);
  if (open == absl::string_view::npos) return absl::OkStatus();
  auto policy_data = common::ParseJsonPrefix(rego.substr(open));
  if (!policy_data.ok()) return PolicyDataError(policy_data.status().message());
  // Exactly one definition anywhere: a second one (indented, with `=`, or
  // inside a raw string) could be what the agent enforces while we read
  // this one.
  if (CountPolicyDataDefinitions(rego) != 1) return PolicyDataError("defined more than once");
  out.has_agent_policy = true;
  // The agent policy's rules without their data: what decides whether the
  // listed images are really all the pod can run.
  out.agent_policy_rules_digest =
      common::Sha256(absl::StrCat(rego.substr(0, open), rego.substr(open + policy_data->size)));
  const Json* containers = common::FindMember(policy_data->value, "containers");
  if (containers == nullptr) return absl::OkStatus();
  if (!containers->is_array()) {
    return PolicyDataError(
        absl::StrCat("`containers` must be an array, not ", common::JsonTypeName(*containers)));
  }
  if (containers->size() > kMaxAgentPolicyContainers) {
    return PolicyDataError(absl::StrCat("has ", containers->size(), " containers, more than ",
                                        kMaxAgentPolicyContainers));
  }
  std::set<std::string> seen;
  for (size_t i = 0; i < containers->size(); ++i) {
    KBS_ASSIGN_OR_RETURN(std::optional<ContainerImage> image,
                         ImageOfContainer((*containers)[i], i));
    if (image.has_value() && seen.insert(image->reference).second) {
      out.images.push_back(*std::move(image));
    }
  }
  return absl::OkStatus();
}

}  // namespace

ContainerImage ParseImageReference(absl::string_view reference) {
  // The policy engine decides what counts as a digest; this adds the note.
  policy::PodImage parsed = policy::ParseImageReference(reference);
  ContainerImage image;
  image.reference = std::move(parsed.reference);
  image.name = std::move(parsed.name);
  image.digest = std::move(parsed.digest);
  if (image.digest.has_value()) return image;
  size_t at = reference.find('@');
  if (reference.empty()) {
    image.note = "empty image reference";
  } else if (at == absl::string_view::npos) {
    image.note = "pinned by tag only, not by digest";
  } else if (image.name.empty()) {
    image.note = "no repository name before the digest";
  } else {
    image.note = DigestProblem(reference.substr(at + 1));
  }
  return image;
}

common::Json ImagesToJson(const std::vector<ContainerImage>& images) {
  Json out = Json::array();
  for (const ContainerImage& image : images) {
    Json entry = {{"reference", image.reference}, {"name", image.name}};
    if (image.digest.has_value()) entry["digest"] = *image.digest;
    out.push_back(std::move(entry));
  }
  return out;
}

absl::StatusOr<InitData> ParseInitData(absl::string_view format, absl::string_view body) {
  if (format != "toml") {
    return absl::InvalidArgumentError(
        absl::StrCat("unsupported init-data format \"", format.substr(0, 32), "\" (only toml)"));
  }
  // Debian's toml++ is built with exceptions; they stay inside this function.
  toml::table table;
  try {
    table = toml::parse(std::string_view(body.data(), body.size()));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(
        absl::StrCat("init-data is not valid TOML at line ", err.source().begin.line, ", column ",
                     err.source().begin.column, ": ", std::string(err.description())));
  }
  InitData out;
  std::optional<std::string> algorithm = table["algorithm"].value<std::string>();
  if (!algorithm.has_value()) {
    return absl::InvalidArgumentError("init-data: missing string `algorithm`");
  }
  KBS_ASSIGN_OR_RETURN(out.algorithm, common::ParseHashAlgorithm(*algorithm));
  out.version = table["version"].value_or<std::string>("");
  out.digest = common::Digest(out.algorithm, body);
  if (const toml::node* data = table.get("data"); data != nullptr) {
    const toml::table* data_table = data->as_table();
    if (data_table == nullptr) {
      return absl::InvalidArgumentError("init-data: `data` must be a table");
    }
    for (const auto& [key, value] : *data_table) {
      std::string name(key.str());
      if (const auto* s = value.as_string(); s != nullptr) {
        const std::string& text = s->get();
        if (name == "policy.rego") {
          KBS_RETURN_IF_ERROR(ExtractAgentPolicyImages(text, out));
        }
        if (text.size() <= kMaxInlineInitDataEntry) {
          out.claims[name] = text;
        } else {
          out.claims[name] = common::Json{{"sha256", common::HexEncode(common::Sha256(text))},
                                          {"bytes", text.size()}};
        }
      } else {
        // kbs-types models [data] as a map of strings.
        return absl::InvalidArgumentError(
            absl::StrCat("init-data: [data].", name.substr(0, 64), " must be a string"));
      }
    }
  }
  return out;
}

}  // namespace kbs
