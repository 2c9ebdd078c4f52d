#include "policy/policy_engine.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "policy/rule_engine.h"

namespace kbs::policy {
namespace {

using common::Json;

bool IsSampleTee(absl::string_view tee) { return tee == "sample" || tee == "sampledevice"; }

Json LabelsJson(const std::vector<std::pair<std::string, std::string>>& labels) {
  Json out = Json::object();
  for (const auto& [k, v] : labels) out[k] = v;
  return out;
}

// The two built-in policies of the first release.
class PresetPolicy final : public PolicyEngine {
 public:
  PresetPolicy(const PolicyDocument& doc, const PolicyOptions& options)
      : allow_(*doc.preset == "allow-all"),
        name_(*doc.preset),
        options_(options),
        id_(VersionId(doc)),
        document_(CanonicalJson(doc)) {}

  const std::string& id() const override { return id_; }
  const Json& document() const override { return document_; }
  std::vector<std::string> referenced_sets() const override { return {}; }

  absl::StatusOr<Decision> Evaluate(const PolicyInput& input) const override {
    if (input.claims == nullptr) return absl::InternalError("policy input without claims");
    Decision d;
    d.policy_id = id_;
    d.rule = name_;
    if (!allow_) {
      d.reason = "the active policy (preset deny-all) denies every resource";
      d.client_reason = d.reason;
      return d;
    }
    if (!options_.sample_tee_enabled) {
      for (const std::string& tee : input.claims->tees) {
        if (IsSampleTee(tee)) {
          d.reason = absl::StrCat("preset allow-all never admits the `", tee,
                                  "` TEE unless the sample TEE is enabled");
          d.client_reason = d.reason;
          return d;
        }
      }
    }
    d.allow = true;
    d.reason = "the active policy (preset allow-all) allows every attested workload";
    d.client_reason = d.reason;
    return d;
  }

 private:
  bool allow_;
  std::string name_;
  PolicyOptions options_;
  std::string id_;
  Json document_;
};

}  // namespace

Json RuleVerdict::ToJson() const {
  return Json{{"rule", rule}, {"allow", allow}, {"reason", reason}, {"labels", LabelsJson(labels)}};
}

Json Decision::ToJson() const {
  Json out = {{"allow", allow},        {"policy_version", policy_id},
              {"rule", rule},          {"labels", LabelsJson(labels)},
              {"explanation", reason}, {"client_explanation", client_reason}};
  Json cands = Json::array();
  for (const RuleVerdict& v : candidates) cands.push_back(v.ToJson());
  out["candidates"] = std::move(cands);
  Json shadows = Json::array();
  for (const RuleVerdict& v : shadow) shadows.push_back(v.ToJson());
  out["shadow"] = std::move(shadows);
  return out;
}

absl::StatusOr<std::unique_ptr<PolicyEngine>> CompilePolicy(absl::string_view text,
                                                            const PolicyOptions& options,
                                                            std::vector<PolicyError>* errors_out) {
  std::vector<PolicyError> errors;
  std::unique_ptr<PolicyEngine> engine;
  // Nothing in here throws by design; an allocation failure on a hostile
  // document must still not take the server down.
  try {
    std::optional<PolicyDocument> doc = ParsePolicyDocument(text, errors, options.document_limits);
    if (doc.has_value()) {
      if (!doc->preset.has_value()) {
        engine = CompileRules(*doc, options, errors);
      } else if (errors.empty()) {
        engine = std::make_unique<PresetPolicy>(*doc, options);
      }
    }
  } catch (const std::exception& e) {
    engine = nullptr;
    errors.push_back({{}, "", "", absl::StrCat("the policy could not be compiled: ", e.what())});
  }
  if (engine == nullptr || !errors.empty()) {
    if (errors.empty()) errors.push_back({{}, "", "", "the policy could not be compiled"});
    std::string message = JoinErrors(errors);
    if (errors_out != nullptr) *errors_out = std::move(errors);
    return absl::InvalidArgumentError(message);
  }
  return engine;
}

std::unique_ptr<PolicyEngine> DefaultPolicy(const PolicyOptions& options) {
  PolicyDocument doc;
  doc.preset = "deny-all";
  return std::make_unique<PresetPolicy>(doc, options);
}

}  // namespace kbs::policy
