#include "policy/policy_engine.h"

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kbs::policy {
namespace {

using common::Json;

bool IsSampleTee(absl::string_view tee) { return tee == "sample" || tee == "sampledevice"; }

class PresetPolicy final : public PolicyEngine {
 public:
  PresetPolicy(bool allow, const PolicyOptions& options)
      : allow_(allow),
        options_(options),
        id_(allow ? "preset:allow-all" : "preset:deny-all"),
        document_(Json{{"version", 1}, {"preset", allow ? "allow-all" : "deny-all"}}) {}

  const std::string& id() const override { return id_; }
  const Json& document() const override { return document_; }

  absl::StatusOr<Decision> Evaluate(const PolicyInput& input) const override {
    Decision d;
    d.policy_id = id_;
    if (!allow_) {
      d.rule = "deny-all";
      d.reason = "the active policy (preset deny-all) denies every resource";
      return d;
    }
    if (!options_.sample_tee_enabled) {
      for (const std::string& tee : input.tees) {
        if (IsSampleTee(tee)) {
          d.rule = "allow-all";
          d.reason = absl::StrCat("preset allow-all never admits the `", tee,
                                  "` TEE unless the sample TEE is enabled");
          return d;
        }
      }
    }
    d.allow = true;
    d.rule = "allow-all";
    d.reason = "the active policy (preset allow-all) allows every attested workload";
    return d;
  }

 private:
  bool allow_;
  PolicyOptions options_;
  std::string id_;
  Json document_;
};

absl::StatusOr<std::unique_ptr<PolicyEngine>> FromPresetName(absl::string_view name,
                                                             const PolicyOptions& options) {
  if (name == "allow-all") return std::make_unique<PresetPolicy>(true, options);
  if (name == "deny-all") return std::make_unique<PresetPolicy>(false, options);
  return absl::InvalidArgumentError(absl::StrCat("unknown policy preset \"", name.substr(0, 64),
                                                 "\" (expected allow-all or deny-all)"));
}

}  // namespace

absl::StatusOr<std::unique_ptr<PolicyEngine>> CompilePolicy(absl::string_view document,
                                                            const PolicyOptions& options) {
  absl::string_view text = absl::StripAsciiWhitespace(document);
  if (text.empty()) return absl::InvalidArgumentError("policy document is empty");
  if (absl::StartsWith(text, "package ") || absl::StrContains(text, "\npackage ")) {
    return absl::InvalidArgumentError(
        "Rego policies are not supported: this KBS uses its own policy documents "
        "(see docs/policy.md); use {\"preset\":\"allow-all\"} or {\"preset\":\"deny-all\"}");
  }
  if (text.front() != '{') return FromPresetName(text, options);

  KBS_ASSIGN_OR_RETURN(Json doc, common::ParseJson(text));
  std::vector<std::string> errors;
  std::string preset;
  for (auto it = doc.begin(); it != doc.end(); ++it) {
    if (it.key() == "version") {
      if (!it.value().is_number_integer() || it.value().get<int64_t>() != 1) {
        errors.push_back("`version` must be 1");
      }
    } else if (it.key() == "preset") {
      if (!it.value().is_string()) {
        errors.push_back("`preset` must be a string");
      } else {
        preset = it.value().get<std::string>();
      }
    } else {
      errors.push_back(absl::StrCat("unknown field `", it.key().substr(0, 64), "`"));
    }
  }
  if (preset.empty() && errors.empty()) errors.push_back("missing field `preset`");
  if (!errors.empty()) {
    std::string message = "invalid policy document:";
    for (const std::string& e : errors) absl::StrAppend(&message, " ", e, ";");
    message.pop_back();
    return absl::InvalidArgumentError(message);
  }
  return FromPresetName(preset, options);
}

std::unique_ptr<PolicyEngine> DefaultPolicy(const PolicyOptions& options) {
  return std::make_unique<PresetPolicy>(false, options);
}

}  // namespace kbs::policy
