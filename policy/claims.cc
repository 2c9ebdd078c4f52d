#include "policy/claims.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace kbs::policy {
namespace {

using common::Json;

constexpr absl::string_view kAnnotated = "ear.veraison.annotated-evidence";
constexpr size_t kMaxImages = 256;

bool IsLowerHex(absl::string_view s) {
  for (char c : s) {
    if (!((c >= '0' && c <= '9') || (c >= 'a' && c <= 'f'))) return false;
  }
  return true;
}

bool IsAnnotationMember(absl::string_view key) {
  return key == "report_data" || key == "runtime_data_claims" || key == "init_data" ||
         key == "init_data_claims" || key == "evidence_sha256";
}

// Where a TEE's claims say whether the guest can be debugged.
std::optional<bool> DebugOf(absl::string_view tee, const Value& claims) {
  if (const Value* v = claims.Find("debug"); v != nullptr && v->is_bool()) return v->bool_value();
  const Value* v = nullptr;
  if (tee == "tdx") v = claims.FindPath("td_attributes.debug");
  if (tee == "sgx") v = claims.FindPath("attributes.debug");
  if (v != nullptr && v->is_bool()) return v->bool_value();
  // The sample TEE is admitted only by name anyway; its evidence says
  // `debug` only when a test wants a debug guest.
  if (tee == "sample" || tee == "sampledevice") return false;
  return std::nullopt;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("policy claims: ", what));
}

// Fills the normalized members from the per-TEE claims already in `root`.
absl::StatusOr<ClaimSet> Finish(ValueMap root, std::string tee, std::vector<std::string> tees,
                                std::optional<std::vector<std::string>> image_refs) {
  ClaimSet out;
  // A copy (shared, cheap): inserting into `root` below may rehash it.
  Value tee_value;
  if (auto it = root.entries.find(tee); it != root.entries.end()) tee_value = it->second;
  const Value* tee_claims = &tee_value;
  if (!tee_claims->is_map()) {
    return Invalid(absl::StrCat("no claims object for TEE ", tee));
  }
  if (!root.entries.contains("debug")) {
    out.debug = DebugOf(tee, *tee_claims);
    if (out.debug.has_value()) root.entries["debug"] = Value::Bool(*out.debug);
  } else {
    const Value& d = root.entries["debug"];
    if (!d.is_bool()) return Invalid("`debug` must be a boolean");
    out.debug = d.bool_value();
  }
  if (!root.entries.contains("tcb_status")) {
    if (const Value* s = tee_claims->Find("tcb_status"); s != nullptr && s->is_string()) {
      root.entries["tcb_status"] = *s;
    }
  }
  ValueList tee_list;
  for (const std::string& t : tees) tee_list.push_back(Value::String(t));
  root.entries["tee"] = Value::String(tee);
  root.entries["tees"] = Value::List(std::move(tee_list));
  if (image_refs.has_value()) {
    if (image_refs->size() > kMaxImages) {
      return Invalid(absl::StrCat("more than ", kMaxImages, " images"));
    }
    std::vector<PodImage> images;
    ValueList refs, digests;
    for (const std::string& ref : *image_refs) {
      images.push_back(ParseImageReference(ref));
      refs.push_back(Value::String(ref));
      if (images.back().digest.has_value()) digests.push_back(Value::String(*images.back().digest));
    }
    root.entries["images"] = Value::List(std::move(refs));
    root.entries["image_digests"] = Value::List(std::move(digests));
    out.images = std::move(images);
  }
  out.tee = std::move(tee);
  out.tees = std::move(tees);
  out.root = Value::Map(std::move(root));
  return out;
}

absl::StatusOr<std::vector<std::string>> StringArray(const Json& json, absl::string_view what) {
  if (!json.is_array()) return Invalid(absl::StrCat(what, " must be an array of strings"));
  std::vector<std::string> out;
  for (const Json& item : json) {
    if (!item.is_string()) return Invalid(absl::StrCat(what, " must be an array of strings"));
    out.push_back(item.get<std::string>());
  }
  return out;
}

}  // namespace

PodImage ParseImageReference(absl::string_view reference) {
  PodImage out;
  out.reference = std::string(reference);
  absl::string_view name = reference;
  std::optional<absl::string_view> digest;
  if (size_t at = reference.find('@'); at != absl::string_view::npos) {
    name = reference.substr(0, at);
    digest = reference.substr(at + 1);
  }
  // A tag follows the last ':' after the last '/' (a ':' before it is a
  // registry port).
  size_t slash = name.rfind('/');
  size_t colon = name.rfind(':');
  if (colon != absl::string_view::npos && (slash == absl::string_view::npos || colon > slash)) {
    name = name.substr(0, colon);
  }
  out.name = std::string(name);
  // Only `<name>@sha256:<64 lowercase hex>` pins a digest: OCI digests are
  // lowercase (OCI image spec, descriptor.md "Digests").
  if (digest.has_value() && !name.empty() && absl::StartsWith(*digest, "sha256:") &&
      digest->size() == 7 + 64 && IsLowerHex(digest->substr(7))) {
    out.digest = std::string(*digest);
  }
  return out;
}

absl::StatusOr<std::vector<EarSubmodule>> EarSubmodules(const Json& ear) {
  const Json* submods = common::FindMember(ear, "submods");
  if (submods == nullptr || !submods->is_object()) return Invalid("the token has no `submods`");
  const Json* cpu0 = common::FindMember(*submods, "cpu0");
  if (cpu0 == nullptr || !cpu0->is_object()) return Invalid("the token has no `submods.cpu0`");
  std::vector<const Json*> ordered = {cpu0};
  for (auto it = submods->begin(); it != submods->end(); ++it) {
    if (it.key() != "cpu0") ordered.push_back(&it.value());
  }
  std::vector<EarSubmodule> out;
  for (const Json* submod : ordered) {
    const Json* annotated = common::FindMember(*submod, kAnnotated);
    if (annotated == nullptr || !annotated->is_object()) {
      return Invalid("a submodule has no annotated evidence");
    }
    EarSubmodule m{"", submod, annotated, nullptr};
    for (auto it = annotated->begin(); it != annotated->end(); ++it) {
      if (IsAnnotationMember(it.key())) continue;
      if (!m.tee.empty()) return Invalid("a submodule names two TEEs");
      m.tee = it.key();
      m.claims = &it.value();
    }
    if (m.tee.empty()) return Invalid("a submodule names no TEE");
    out.push_back(std::move(m));
  }
  return out;
}

absl::StatusOr<ClaimSet> ClaimsFromEar(const Json& ear) {
  auto submodules = EarSubmodules(ear);
  if (!submodules.ok()) return submodules.status();
  ValueMap root;
  std::vector<std::string> tees;
  std::optional<std::vector<std::string>> image_refs;
  for (const EarSubmodule& m : *submodules) {
    root.entries[m.tee] = Value::FromJson(*m.claims);
    tees.push_back(m.tee);
  }
  const EarSubmodule& primary = submodules->front();
  const Json* submod = primary.submodule;
  const Json* annotated = primary.annotated;
  if (const Json* status = common::FindMember(*submod, "ear.status");
      status != nullptr && status->is_string()) {
    root.entries["trust_status"] = Value::String(status->get<std::string>());
  }
  if (const Json* ev = common::FindMember(*annotated, "evidence_sha256");
      ev != nullptr && ev->is_string()) {
    root.entries["evidence_sha256"] = Value::String(ev->get<std::string>());
  }
  if (const Json* digest = common::FindMember(*annotated, "init_data");
      digest != nullptr && digest->is_string()) {
    root.entries["init_data_digest"] = Value::String(digest->get<std::string>());
  }
  if (const Json* data = common::FindMember(*annotated, "init_data_claims");
      data != nullptr && data->is_object()) {
    root.entries["init_data"] = Value::FromJson(*data);
  }
  // trustee's layout for the images the init-data agent policy allows.
  if (const Json* ids = common::FindMember(*submod, "ear.trustee.identifiers");
      ids != nullptr && ids->is_object()) {
    const Json* validated = common::FindMember(*ids, "validated");
    const Json* images =
        validated != nullptr ? common::FindMember(*validated, "container_images") : nullptr;
    if (images != nullptr) {
      auto refs = StringArray(*images, "container_images");
      if (!refs.ok()) return refs.status();
      image_refs = *std::move(refs);
    }
    const Json* rules = validated != nullptr
                            ? common::FindMember(*validated, "agent_policy_rules_sha256")
                            : nullptr;
    if (rules != nullptr && rules->is_string()) {
      root.entries["agent_policy_rules_digest"] = Value::String(rules->get<std::string>());
    }
  }
  return Finish(std::move(root), primary.tee, std::move(tees), std::move(image_refs));
}

absl::StatusOr<ClaimSet> ClaimsFromJson(const Json& claims) {
  if (!claims.is_object()) return Invalid("expected a JSON object");
  if (claims.contains("submods")) return ClaimsFromEar(claims);
  const Json* tee = common::FindMember(claims, "tee");
  if (tee == nullptr || !tee->is_string() || tee->get<std::string>().empty()) {
    return Invalid("`tee` (the attested TEE type) is required");
  }
  ValueMap root;
  std::vector<std::string> tees = {tee->get<std::string>()};
  if (const Json* list = common::FindMember(claims, "tees"); list != nullptr) {
    auto all = StringArray(*list, "`tees`");
    if (!all.ok()) return all.status();
    if (all->empty() || all->front() != tees.front()) {
      return Invalid("`tees` must start with the primary `tee`");
    }
    tees = *std::move(all);
  }
  std::optional<std::vector<std::string>> image_refs;
  for (auto it = claims.begin(); it != claims.end(); ++it) {
    const std::string& key = it.key();
    if (key == "tee" || key == "tees" || key == "image_digests") continue;
    if (key == "images") {
      auto refs = StringArray(it.value(), "`images`");
      if (!refs.ok()) return refs.status();
      image_refs = *std::move(refs);
      continue;
    }
    root.entries[key] = Value::FromJson(it.value());
  }
  std::string primary = tees.front();
  return Finish(std::move(root), std::move(primary), std::move(tees), std::move(image_refs));
}

}  // namespace kbs::policy
