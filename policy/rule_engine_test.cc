#include "policy/rule_engine.h"

#include <string>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "absl/time/time.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "policy/policy_engine.h"

namespace kbs::policy {
namespace {

using ::testing::AllOf;
using ::testing::HasSubstr;
using ::testing::Not;

const std::string kMeasurement(96, 'a');
const std::string kOtherMeasurement(96, 'b');
const std::string kCanary(96, 'c');
const std::string kMrTd(96, 'd');
const std::string kDigest1 = absl::StrCat("sha256:", std::string(64, '1'));
const std::string kDigest2 = absl::StrCat("sha256:", std::string(64, '2'));
const std::string kDigest3 = absl::StrCat("sha256:", std::string(64, '3'));

// The document of the issue's example, with real-sized values.
std::string LlamaPolicy() {
  return absl::StrReplaceAll(
      R"(version: 1
rules:
  - name: llama-prod
    resources: ["models/llama-70b/*"]
    tee: [snp, tdx]
    measurements:
      snp.measurement: ["MEAS"]
      tdx.mr_td: {refvalues: llama-tdx-mrtd}
    images: ["D1", "ghcr.io/acme/sidecar@D2"]
    conditions: ["!debug"]
    labels: {route: chat, cohort: stable}
    mode: enforce
  - name: llama-canary
    resources: ["models/llama-70b/*"]
    tee: [snp]
    measurements:
      snp.measurement: ["CANARY"]
    images: ["D1"]
    labels: {cohort: canary}
    mode: shadow
)",
      {{"MEAS", kMeasurement}, {"CANARY", kCanary}, {"D1", kDigest1}, {"D2", kDigest2}});
}

std::unique_ptr<PolicyEngine> MustCompile(const std::string& text, PolicyOptions options = {}) {
  auto engine = CompilePolicy(text, options);
  EXPECT_TRUE(engine.ok()) << engine.status();
  return engine.ok() ? *std::move(engine) : nullptr;
}

ClaimSet Claims(common::Json json) {
  auto claims = ClaimsFromJson(json);
  EXPECT_TRUE(claims.ok()) << claims.status();
  return claims.ok() ? *std::move(claims) : ClaimSet{};
}

common::Json SnpPod(const std::string& measurement = kMeasurement,
                    common::Json images = {absl::StrCat("ghcr.io/acme/llm@", kDigest1)}) {
  common::Json j = {{"tee", "snp"},
                    {"snp", {{"measurement", measurement}, {"debug", false}, {"vmpl", 0}}}};
  if (!images.is_null()) j["images"] = images;
  return j;
}

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

Decision Eval(const PolicyEngine& engine, absl::string_view path, const ClaimSet& claims,
              const RefValues* refs = nullptr, absl::Time now = kNow) {
  PolicyInput in;
  in.resource_path = path;
  in.claims = &claims;
  in.now = now;
  in.refvalues = refs;
  auto d = engine.Evaluate(in);
  EXPECT_TRUE(d.ok()) << d.status();
  return d.ok() ? *d : Decision{};
}

TEST(RuleEngineTest, AllowsMeasurementAndImageDigest) {
  auto engine = MustCompile(LlamaPolicy());
  ASSERT_NE(engine, nullptr);
  Decision d = Eval(*engine, "models/llama-70b/key", Claims(SnpPod()));
  EXPECT_TRUE(d.allow) << d.reason;
  EXPECT_EQ(d.rule, "llama-prod");
  EXPECT_EQ(d.policy_id, engine->id());
  EXPECT_THAT(d.labels,
              ::testing::ElementsAre(std::pair<std::string, std::string>("cohort", "stable"),
                                     std::pair<std::string, std::string>("route", "chat")));
  // The shadow canary was evaluated and would have denied (other measurement).
  ASSERT_EQ(d.shadow.size(), 1u);
  EXPECT_EQ(d.shadow[0].rule, "llama-canary");
  EXPECT_FALSE(d.shadow[0].allow);
}

struct DenyCase {
  std::string name;
  common::Json claims;
  std::string path;
  std::string reason;         // operator explanation fragment
  std::string client_reason;  // client explanation fragment
};

TEST(RuleEngineTest, DenialsExplainThemselves) {
  auto engine = MustCompile(LlamaPolicy());
  ASSERT_NE(engine, nullptr);
  common::Json debug_pod = SnpPod();
  debug_pod["snp"]["debug"] = true;
  common::Json no_debug_claim = SnpPod();
  no_debug_claim["snp"].erase("debug");
  common::Json absent_measurement = SnpPod();
  absent_measurement["snp"].erase("measurement");
  const std::vector<DenyCase> cases = {
      {"other measurement", SnpPod(kOtherMeasurement), "models/llama-70b/key",
       "rule llama-prod: snp.measurement bbbbbbbbbbbb… not in the rule's 1 allowed values",
       "rule llama-prod: snp.measurement bbbbbbbbbbbb… is not an allowed value"},
      {"extra image",
       SnpPod(kMeasurement, {absl::StrCat("ghcr.io/acme/llm@", kDigest1),
                             absl::StrCat("evil.io/miner@", kDigest3)}),
       "models/llama-70b/key", "image sha256:33333… (evil.io/miner@sha256:333", "not allowed"},
      {"tag only", SnpPod(kMeasurement, {"ghcr.io/acme/llm:latest"}), "models/llama-70b/key",
       "image ghcr.io/acme/llm:latest is not pinned by digest", "is not pinned by digest"},
      {"no agent policy", SnpPod(kMeasurement, nullptr), "models/llama-70b/key",
       "declares no container images", "declares no container images"},
      {"empty images", SnpPod(kMeasurement, common::Json::array()), "models/llama-70b/key",
       "lists no container images", "lists no container images"},
      {"debug guest", debug_pod, "models/llama-70b/key", "debug guest not admitted",
       "debug guest not admitted"},
      {"debug unknown", no_debug_claim, "models/llama-70b/key",
       "claims do not say whether the guest is debuggable", "debuggable"},
      {"absent register", absent_measurement, "models/llama-70b/key",
       "claim snp.measurement is absent", "claim snp.measurement is absent"},
      {"tee not admitted",
       {{"tee", "sgx"}, {"sgx", {{"mr_enclave", std::string(64, 'e')}, {"debug", false}}}},
       "models/llama-70b/key",
       "TEE sgx is not admitted (the rule admits snp, tdx)",
       "TEE sgx is not admitted"},
      {"no rule", SnpPod(), "models/mistral/key", "no rule governs resource models/mistral/key",
       "no rule governs"},
  };
  for (const DenyCase& c : cases) {
    SCOPED_TRACE(c.name);
    Decision d = Eval(*engine, c.path, Claims(c.claims));
    EXPECT_FALSE(d.allow);
    EXPECT_THAT(d.reason, HasSubstr(c.reason));
    EXPECT_THAT(d.client_reason, HasSubstr(c.client_reason));
    // The client never sees an allowed value.
    EXPECT_THAT(d.client_reason,
                AllOf(Not(HasSubstr(kMeasurement.substr(0, 12))), Not(HasSubstr("1111111111"))));
  }
}

TEST(RuleEngineTest, ShadowRulesNeverGrant) {
  auto engine = MustCompile(LlamaPolicy());
  ASSERT_NE(engine, nullptr);
  // The canary measurement satisfies only the shadow rule.
  Decision d = Eval(*engine, "models/llama-70b/key", Claims(SnpPod(kCanary)));
  EXPECT_FALSE(d.allow);
  ASSERT_EQ(d.shadow.size(), 1u);
  EXPECT_TRUE(d.shadow[0].allow);
  EXPECT_EQ(d.shadow[0].labels.at(0).second, "canary");
  ASSERT_EQ(d.candidates.size(), 1u);
  EXPECT_EQ(d.candidates[0].rule, "llama-prod");
}

TEST(RuleEngineTest, OnlyTheAttestedTeesRegistersApply) {
  auto engine = MustCompile(LlamaPolicy());
  ASSERT_NE(engine, nullptr);
  auto refs = RefValues::Create({{"llama-tdx-mrtd", "", {{kMrTd, std::nullopt}}}});
  common::Json tdx = {{"tee", "tdx"},
                      {"tdx", {{"mr_td", kMrTd}, {"td_attributes", {{"debug", false}}}}},
                      {"images", {absl::StrCat("ghcr.io/acme/llm@", kDigest1)}}};
  Decision d = Eval(*engine, "models/llama-70b/key", Claims(tdx), refs.get());
  EXPECT_TRUE(d.allow) << d.reason;
  // Without the set, the same TDX guest is denied and the reason names it.
  d = Eval(*engine, "models/llama-70b/key", Claims(tdx), RefValues::Empty().get());
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("reference-value set llama-tdx-mrtd does not exist"));
  EXPECT_THAT(d.client_reason, Not(HasSubstr("llama-tdx-mrtd")));
}

TEST(RuleEngineTest, ReferenceValuesExpireAtTheirExpiry) {
  std::string doc = R"(version: 1
rules:
  - name: r
    resources: ["a/b/c"]
    tee: [snp]
    measurements: {snp.measurement: {refvalues: runtime}}
)";
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  absl::Time expiry = kNow + absl::Hours(1);
  auto refs = RefValues::Create(
      {{"runtime", "", {{kMeasurement, expiry}, {kOtherMeasurement, std::nullopt}}}});
  ClaimSet pod = Claims(SnpPod(kMeasurement, nullptr));
  EXPECT_TRUE(Eval(*engine, "a/b/c", pod, refs.get(), expiry - absl::Seconds(1)).allow);
  Decision d = Eval(*engine, "a/b/c", pod, refs.get(), expiry);
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("in set runtime has expired"));
  EXPECT_TRUE(Eval(*engine, "a/b/c", Claims(SnpPod(kOtherMeasurement, nullptr)), refs.get(),
                   expiry + absl::Hours(1000))
                  .allow);
  d = Eval(*engine, "a/b/c", Claims(SnpPod(kCanary, nullptr)), refs.get());
  EXPECT_THAT(d.reason, HasSubstr("not in set runtime"));
}

TEST(RuleEngineTest, DebugAndSampleAreAdmittedOnlyByName) {
  std::string doc = R"(version: 1
rules:
  - name: debug-ok
    resources: ["dev/key/*"]
    tee: [sample]
    allow_debug: true
)";
  common::Json sample_debug = {{"tee", "sample"}, {"sample", {{"debug", true}, {"svn", 1}}}};
  PolicyOptions enabled;
  enabled.sample_tee_enabled = true;
  auto engine = MustCompile(doc, enabled);
  ASSERT_NE(engine, nullptr);
  EXPECT_TRUE(Eval(*engine, "dev/key/1", Claims(sample_debug)).allow);
  // The same policy on a KBS without the sample TEE admits nothing.
  auto disabled = MustCompile(doc);
  Decision d = Eval(*disabled, "dev/key/1", Claims(sample_debug));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("sample TEE is disabled"));
}

TEST(RuleEngineTest, ResourcePatterns) {
  EXPECT_TRUE(ResourcePatternMatches("models/llama/*", "models/llama/key"));
  EXPECT_FALSE(ResourcePatternMatches("models/llama/*", "models/mistral/key"));
  EXPECT_TRUE(ResourcePatternMatches("models/*/key", "models/x/key"));
  EXPECT_FALSE(ResourcePatternMatches("models/*/key", "models/x/other"));
  EXPECT_TRUE(ResourcePatternMatches("models/**", "models/a/b"));
  EXPECT_TRUE(ResourcePatternMatches("**", "a/b/c"));
  EXPECT_TRUE(ResourcePatternMatches("**/key", "a/b/key"));
  EXPECT_FALSE(ResourcePatternMatches("**/key", "a/b/keys"));
  EXPECT_TRUE(ResourcePatternMatches("m/k/v*-prod", "m/k/v7-prod"));
  EXPECT_FALSE(ResourcePatternMatches("m/k/v*-prod", "m/k/v7-dev"));
  EXPECT_FALSE(ResourcePatternMatches("m/*/v", "m/a/b/v"));  // `*` stays in its segment
}

TEST(RuleEngineTest, FirstAllowingRuleInDocumentOrderDecides) {
  std::string doc = absl::StrReplaceAll(R"(version: 1
rules:
  - name: narrow
    resources: ["models/llama/key"]
    tee: [snp]
    measurements: {snp.measurement: ["OTHER"]}
  - name: broad
    resources: ["models/**"]
    tee: [snp]
    measurements: {snp.measurement: ["MEAS"]}
    labels: {route: broad}
  - name: later
    resources: ["models/*/key"]
    tee: [snp]
    measurements: {snp.measurement: ["MEAS"]}
)",
                                        {{"MEAS", kMeasurement}, {"OTHER", kOtherMeasurement}});
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  Decision d = Eval(*engine, "models/llama/key", Claims(SnpPod(kMeasurement, nullptr)));
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rule, "broad");
  d = Eval(*engine, "models/llama/key", Claims(SnpPod(kOtherMeasurement, nullptr)));
  EXPECT_EQ(d.rule, "narrow");
  d = Eval(*engine, "models/llama/key", Claims(SnpPod(kCanary, nullptr)));
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.candidates.size(), 3u);
}

TEST(RuleEngineTest, LargeBucketsAreIndexedByMeasurement) {
  // 200 rules govern the same resources, one measurement each.
  std::string doc = "version: 1\nrules:\n";
  auto meas = [](int i) {
    std::string hex = absl::StrCat(absl::Hex(i, absl::kZeroPad8));
    return absl::StrCat(hex, std::string(88, '0'));
  };
  for (int i = 0; i < 200; ++i) {
    absl::StrAppend(&doc, "  - name: build-", i, "\n    resources: [\"models/**\"]\n",
                    "    tee: [snp]\n    measurements: {snp.measurement: [\"", meas(i), "\"]}\n");
  }
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  Decision d = Eval(*engine, "models/x/key", Claims(SnpPod(meas(137), nullptr)));
  EXPECT_TRUE(d.allow);
  EXPECT_EQ(d.rule, "build-137");
  // Upper-case hex in a claim matches too.
  std::string upper = meas(0xab);
  for (char& c : upper) c = static_cast<char>(std::toupper(c));
  d = Eval(*engine, "models/x/key", Claims(SnpPod(upper, nullptr)));
  EXPECT_EQ(d.rule, "build-171");
  d = Eval(*engine, "models/x/key", Claims(SnpPod(kCanary, nullptr)));
  EXPECT_FALSE(d.allow);
  EXPECT_EQ(d.candidates.size(), kMaxExplainedRules);
  EXPECT_THAT(d.reason, HasSubstr("and 184 more rules did not allow"));
}

TEST(RuleEngineTest, ImagesPinnedByName) {
  auto engine = MustCompile(LlamaPolicy());
  ASSERT_NE(engine, nullptr);
  // D2 is allowed only as ghcr.io/acme/sidecar.
  common::Json ok = SnpPod(kMeasurement, {absl::StrCat("ghcr.io/acme/sidecar:1.2@", kDigest2)});
  EXPECT_TRUE(Eval(*engine, "models/llama-70b/key", Claims(ok)).allow);
  common::Json renamed = SnpPod(kMeasurement, {absl::StrCat("ghcr.io/evil/sidecar@", kDigest2)});
  EXPECT_FALSE(Eval(*engine, "models/llama-70b/key", Claims(renamed)).allow);
}

TEST(RuleEngineTest, DeviceRegistersRequireTheDevice) {
  std::string doc = absl::StrReplaceAll(R"(version: 1
rules:
  - name: gpu
    resources: ["models/**"]
    tee: [snp]
    measurements:
      snp.measurement: ["MEAS"]
      nvidia.driver_version: ["550.54"]
)",
                                        {{"MEAS", kMeasurement}});
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  common::Json pod = SnpPod(kMeasurement, nullptr);
  // Leaving the GPU evidence out does not skip its register.
  Decision d = Eval(*engine, "models/a/key", Claims(pod));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("device nvidia did not attest"));
  pod["tees"] = {"snp", "nvidia"};
  pod["nvidia"] = {{"driver_version", "550.54"}};
  EXPECT_TRUE(Eval(*engine, "models/a/key", Claims(pod)).allow);
  pod["nvidia"]["driver_version"] = "535.1";
  EXPECT_FALSE(Eval(*engine, "models/a/key", Claims(pod)).allow);
}

TEST(RuleEngineTest, TrailingGlobstarAndTaggedImageEntries) {
  std::string doc = absl::StrReplaceAll(R"(version: 1
rules:
  - name: r
    resources: ["models/llama/key/**"]
    tee: [snp]
    measurements: {snp.measurement: ["MEAS"]}
    images: ["ghcr.io/acme/llm:2.3@D1"]
)",
                                        {{"MEAS", kMeasurement}, {"D1", kDigest1}});
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  // `**` matches no segment; the tag in the rule's entry is not part of the match.
  Decision d = Eval(*engine, "models/llama/key",
                    Claims(SnpPod(kMeasurement, {absl::StrCat("ghcr.io/acme/llm@", kDigest1)})));
  EXPECT_TRUE(d.allow) << d.reason;
  d = Eval(*engine, "models/llama/key",
           Claims(SnpPod(kMeasurement, {absl::StrCat("ghcr.io/other/llm@", kDigest1)})));
  EXPECT_FALSE(d.allow);
}

TEST(RuleEngineTest, ConditionsReportTheValueTheySaw) {
  std::string doc = absl::StrReplaceAll(R"(version: 1
rules:
  - name: r
    resources: ["a/b/c"]
    tee: [snp]
    measurements: {snp.measurement: ["MEAS"]}
    conditions:
      - "snp.vmpl == 0"
      - "tcb_status in ['UpToDate', 'SWHardeningNeeded']"
)",
                                        {{"MEAS", kMeasurement}});
  auto engine = MustCompile(doc);
  ASSERT_NE(engine, nullptr);
  common::Json pod = SnpPod(kMeasurement, nullptr);
  Decision d = Eval(*engine, "a/b/c", Claims(pod));
  EXPECT_FALSE(d.allow);
  EXPECT_THAT(d.reason, HasSubstr("condition 2 `tcb_status in ['UpToDate', 'SWHardeningNeeded']` "
                                  "failed"));
  EXPECT_THAT(d.reason, HasSubstr("tcb_status"));
  EXPECT_THAT(d.client_reason, HasSubstr("condition 2 failed (tcb_status)"));
  EXPECT_THAT(d.client_reason, Not(HasSubstr("UpToDate")));
  pod["tcb_status"] = "OutOfDate";
  d = Eval(*engine, "a/b/c", Claims(pod));
  EXPECT_THAT(d.reason, HasSubstr("\"OutOfDate\""));
  pod["tcb_status"] = "UpToDate";
  EXPECT_TRUE(Eval(*engine, "a/b/c", Claims(pod)).allow);
  pod["snp"]["vmpl"] = 1;
  d = Eval(*engine, "a/b/c", Claims(pod));
  EXPECT_THAT(d.reason, HasSubstr("condition 1 `snp.vmpl == 0` failed"));
}

struct BadPolicy {
  std::string name;
  std::string text;
  std::vector<std::string> fragments;
};

TEST(RuleEngineTest, InvalidPoliciesReportEveryError) {
  auto rule = [](const std::string& body) {
    return absl::StrCat("version: 1\nrules:\n  - name: r\n", body);
  };
  const std::string m = kMeasurement;
  const std::vector<BadPolicy> cases = {
      {"empty", "  \n", {"empty"}},
      {"rego", "package policy\ndefault allow := false\n", {"Rego policies are not supported"}},
      {"syntax", "version: 1\nrules: [\n", {"line 3", "not valid YAML"}},
      {"unknown field",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    colour: red\n"),
       {"line 6", "rule r", "field colour", "unknown field"}},
      {"unknown tee",
       rule("    resources: [a/b/c]\n    tee: [snpp]\n"),
       {"unknown TEE type \"snpp\""}},
      {"device tee", rule("    resources: [a/b/c]\n    tee: [nvidia]\n"), {"device TEE"}},
      {"register tee",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    measurements: {tdx.mr_td: [x]}\n"),
       {"field measurements.tdx.mr_td", "which the rule does not admit"}},
      {"short measurement",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    measurements: {snp.measurement: "
            "[6a6519d7]}\n"),
       {"\"6a6519d7\" is not 96 hex digits"}},
      {"register name",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    measurements: {measurement: [x]}\n"),
       {"<tee>.<claim>"}},
      {"missing tee registers",
       rule(absl::StrCat(
           "    resources: [a/b/c]\n    tee: [snp, tdx]\n    measurements: {snp.measurement: [", m,
           "]}\n")),
       {"admits tdx but lists no tdx register"}},
      {"tag image",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    images: [\"nginx:latest\"]\n"),
       {"field images[0]", "a tag can never be trusted"}},
      {"segments", rule("    resources: [\"models/*\"]\n    tee: [snp]\n"), {"has 2 segments"}},
      {"bad mode",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    mode: audit\n"),
       {"must be enforce or shadow"}},
      {"bad condition",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    conditions: [\"size(1)\"]\n"),
       {"line 6", "field conditions[0]"}},
      {"bad label",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    labels: {Route: x}\n"),
       {"label name"}},
      {"missing fields",
       "version: 1\nrules:\n  - name: r\n",
       {"field resources: missing", "field tee: missing"}},
      {"duplicate rule",
       "version: 1\nrules:\n  - {name: r, resources: [a/b/c], tee: [snp]}\n  - {name: r, "
       "resources: [a/b/c], tee: [snp]}\n",
       {"line 4", "duplicate rule name"}},
      {"duplicate key", "version: 1\nversion: 1\nrules: []\n", {"duplicate key"}},
      {"no version", "rules: []\n", {"field version: missing"}},
      {"deep",
       absl::StrCat("version: 1\nrules: ", std::string(5000, '['), "\n"),
       {"nested deeper than 64"}},
      {"alias",
       "version: 1\nrules:\n  - &r {name: a, resources: [a/b/c], tee: [snp]}\n  - *r\n",
       {"anchors and aliases"}},
      {"empty values",
       rule("    resources: [a/b/c]\n    tee: [snp]\n    measurements: {snp.measurement: []}\n"),
       {"empty (it could never match)"}},
  };
  for (const BadPolicy& c : cases) {
    SCOPED_TRACE(c.name);
    std::vector<PolicyError> errors;
    auto engine = CompilePolicy(c.text, PolicyOptions{}, &errors);
    ASSERT_FALSE(engine.ok());
    EXPECT_EQ(engine.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_FALSE(errors.empty());
    for (const std::string& f : c.fragments) {
      EXPECT_THAT(std::string(engine.status().message()), HasSubstr(f));
    }
  }
  // All errors at once, each with its rule.
  std::vector<PolicyError> errors;
  auto engine = CompilePolicy(
      "version: 1\nrules:\n  - {name: a, resources: [x], tee: [snpp]}\n  - {name: b, resources: "
      "[a/b/c], tee: [snp], mode: x}\n",
      PolicyOptions{}, &errors);
  ASSERT_FALSE(engine.ok());
  EXPECT_EQ(errors.size(), 3u) << engine.status();
}

TEST(RuleEngineTest, VersionIdIsADigestOfTheCanonicalForm) {
  auto yaml = MustCompile(LlamaPolicy());
  ASSERT_NE(yaml, nullptr);
  // The same policy as JSON, with different spacing, has the same id.
  auto json = MustCompile(common::DumpJson(yaml->document()));
  ASSERT_NE(json, nullptr);
  EXPECT_EQ(yaml->id(), json->id());
  EXPECT_THAT(yaml->id(), ::testing::StartsWith("sha256:"));
  EXPECT_EQ(yaml->id().size(), 7u + 64u);
  auto changed = MustCompile(absl::StrReplaceAll(LlamaPolicy(), {{"cohort: stable", "cohort: b"}}));
  EXPECT_NE(changed->id(), yaml->id());
  EXPECT_EQ(yaml->referenced_sets(), std::vector<std::string>{"llama-tdx-mrtd"});
}

TEST(RuleEngineTest, PresetsRemain) {
  auto allow = MustCompile("allow-all");
  auto deny = MustCompile(R"({"version": 1, "preset": "deny-all"})");
  ClaimSet pod = Claims(SnpPod());
  EXPECT_TRUE(Eval(*allow, "a/b/c", pod).allow);
  EXPECT_FALSE(Eval(*deny, "a/b/c", pod).allow);
  EXPECT_EQ(DefaultPolicy({})->id(), deny->id());
  ClaimSet sample = Claims({{"tee", "sample"}, {"sample", {{"svn", 1}}}});
  EXPECT_FALSE(Eval(*allow, "a/b/c", sample).allow);
}

}  // namespace
}  // namespace kbs::policy
