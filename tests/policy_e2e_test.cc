// End-to-end tests of the release policy: the real `kbs` and `kbsctl` on
// loopback, sample evidence carrying chosen measurements and init-data with
// an agent policy (the pod's images), policies keyed by measurement and
// image digest, reference values, shadow rules and version history.
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_replace.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/client/kbs_client.h"
#include "tests/testing/kbs_process.h"
#include "tests/testing/raw_http.h"

namespace kbs {
namespace {

using client::KbsClient;
using client::RcarOptions;
using common::Json;
using ::testing::HasSubstr;
using testing::KbsProcess;
using ::testing::Not;

constexpr char kResource[] = "models/llama-70b/key";
constexpr char kRefResource[] = "models/rv/key";
constexpr char kValue[] = "llama-weights-key";
const std::string kMeasurement(96, 'a');
const std::string kOther(96, 'b');
const std::string kCanary(96, 'c');
const std::string kDigest1 = absl::StrCat("sha256:", std::string(64, '1'));
const std::string kDigest2 = absl::StrCat("sha256:", std::string(64, '2'));
const std::string kDigest3 = absl::StrCat("sha256:", std::string(64, '3'));

// CoCo init-data whose agent policy (genpolicy's shape) lists `images`.
std::string InitData(const std::vector<std::string>& images) {
  std::string containers =
      R"({"OCI": {"Annotations": {"io.kubernetes.cri.container-type": "sandbox"}}})";
  for (const std::string& image : images) {
    absl::StrAppend(&containers,
                    R"(, {"OCI": {"Annotations": {"io.kubernetes.cri.container-type": )",
                    R"("container", "io.kubernetes.cri.image-name": ")", image, R"("}}})");
  }
  return absl::StrCat(R"(version = "0.1.0"
algorithm = "sha256"
[data]
"aa.toml" = '''
[token_configs.kbs]
url = "http://127.0.0.1:8080"
'''
"policy.rego" = '''
package agent_policy

default CreateContainerRequest := false

policy_data := {
  "containers": [)",
                      containers, R"(]
}

CreateContainerRequest if { true }
'''
)");
}

std::string Policy() {
  return absl::StrReplaceAll(
      R"yaml(version: 1
rules:
  - name: llama
    resources: ["models/llama-70b/*"]
    tee: [sample]
    measurements:
      sample.measurement: ["MEAS"]
    images: ["D1", "D2"]
    conditions: ["!debug", "has(sample.svn)"]
    labels: {route: chat, cohort: stable}
  - name: llama-canary
    resources: ["models/llama-70b/*"]
    tee: [sample]
    measurements:
      sample.measurement: ["CANARY"]
    images: ["D1"]
    mode: shadow
  - name: refvalued
    resources: ["models/rv/*"]
    tee: [sample]
    measurements:
      sample.measurement: {refvalues: llama-runtime}
)yaml",
      {{"MEAS", kMeasurement}, {"CANARY", kCanary}, {"D1", kDigest1}, {"D2", kDigest2}});
}

class PolicyE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    auto kbs = KbsProcess::Start({});
    ASSERT_TRUE(kbs.ok()) << kbs.status();
    kbs_ = *std::move(kbs);
    http_ = *client::NewHttpKbsClient(kbs_->http_url());
    grpc_ = *client::NewGrpcKbsClient(kbs_->grpc_address());
    ASSERT_TRUE(http_->PutResource(kbs_->AdminToken(), kResource, kValue).ok());
    ASSERT_TRUE(http_->PutResource(kbs_->AdminToken(), kRefResource, kValue).ok());
    auto set = http_->SetPolicyVersion(kbs_->AdminToken(), Policy(), false);
    ASSERT_TRUE(set.ok()) << set.status();
    policy_id_ = (*set)["id"];
    EXPECT_EQ((*set)["missing_refvalues"], Json::array({"llama-runtime"}));
  }
  void TearDown() override {
    if (kbs_ != nullptr) {
      EXPECT_EQ(kbs_->Stop(), 0) << kbs_->Log();
    }
  }

  absl::StatusOr<std::string> Fetch(KbsClient& client, const std::string& measurement,
                                    const std::vector<std::string>& images, bool debug = false,
                                    const char* path = kResource) {
    RcarOptions options;
    options.evidence.claims = Json{{"measurement", measurement}, {"debug", debug}};
    options.evidence.init_data_toml = InitData(images);
    return client::RunSampleRcar(client, path, options);
  }

  std::unique_ptr<KbsProcess> kbs_;
  std::unique_ptr<KbsClient> http_, grpc_;
  std::string policy_id_;
};

TEST_F(PolicyE2eTest, MeasurementAndImageDigestReleaseTheKey) {
  const std::vector<std::string> pod = {absl::StrCat("ghcr.io/acme/llm@", kDigest1),
                                        absl::StrCat("ghcr.io/acme/sidecar:1.0@", kDigest2)};
  for (KbsClient* client : {http_.get(), grpc_.get()}) {
    auto value = Fetch(*client, kMeasurement, pod);
    ASSERT_TRUE(value.ok()) << value.status() << kbs_->Log();
    EXPECT_EQ(*value, kValue);
  }
  EXPECT_THAT(kbs_->Log(), HasSubstr("shadow rule=llama-canary would deny"));
  // The rule's labels flow into the metrics.
  auto metrics = testing::RawHttp(kbs_->http_port(), testing::BuildRequest("GET", "/metrics", ""));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body,
              HasSubstr("kbs_policy_decisions_total{decision=\"allow\",rule=\"llama\","
                        "label_cohort=\"stable\",label_route=\"chat\"} 2"));
  EXPECT_THAT(metrics->body, HasSubstr("kbs_policy_decisions_total{decision=\"shadow_deny\","
                                       "rule=\"llama-canary\"} 2"));
}

TEST_F(PolicyE2eTest, EveryDenialIsA403WithItsExplanation) {
  const std::string good = absl::StrCat("ghcr.io/acme/llm@", kDigest1);
  struct Case {
    std::string name;
    std::string measurement;
    std::vector<std::string> images;
    bool debug;
    std::string detail;
  };
  const std::vector<Case> cases = {
      {"other measurement",
       kOther,
       {good},
       false,
       "rule llama: sample.measurement bbbbbbbbbbbb… is not an allowed value"},
      {"unapproved image",
       kMeasurement,
       {good, absl::StrCat("evil.io/miner@", kDigest3)},
       false,
       "rule llama: image sha256:33333… (evil.io/miner@sha256:3333"},
      {"tag only",
       kMeasurement,
       {good, "docker.io/library/nginx:latest"},
       false,
       "rule llama: image docker.io/library/nginx:latest is not pinned by digest"},
      {"debug guest", kMeasurement, {good}, true, "rule llama: debug guest not admitted"},
      {"canary is shadow only", kCanary, {good}, false, "rule llama: sample.measurement"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    auto value = Fetch(*http_, c.measurement, c.images, c.debug);
    ASSERT_FALSE(value.ok());
    EXPECT_EQ(value.status().code(), absl::StatusCode::kPermissionDenied) << value.status();
    EXPECT_THAT(value.status().message(), HasSubstr("PolicyDeny"));
    EXPECT_THAT(value.status().message(), HasSubstr(c.detail));
    // The client never learns an allowed value.
    EXPECT_THAT(value.status().message(), Not(HasSubstr(kMeasurement.substr(0, 12))));
    EXPECT_THAT(value.status().message(), Not(HasSubstr("1111111111")));
  }
  // The operator's log has the full explanation.
  EXPECT_THAT(kbs_->Log(), HasSubstr("not in the rule's 1 allowed values"));
  EXPECT_THAT(kbs_->Log(), HasSubstr("shadow rule=llama-canary would allow"));
  // gRPC gives the same decision.
  auto grpc = Fetch(*grpc_, kOther, {good});
  EXPECT_EQ(grpc.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(PolicyE2eTest, ReferenceValuesAndTheirExpiry) {
  std::string token = kbs_->AdminToken();
  auto missing = Fetch(*http_, kMeasurement, {}, false, kRefResource);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kPermissionDenied);
  auto set =
      http_->SetRefValues(token, "llama-runtime",
                          absl::StrCat("values:\n  - ", kMeasurement, "\n  - {value: ", kOther,
                                       ", expires: \"2020-01-01T00:00:00Z\"}\n"));
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_TRUE(Fetch(*http_, kMeasurement, {}, false, kRefResource).ok());
  auto expired = Fetch(*http_, kOther, {}, false, kRefResource);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(expired.status().message(), HasSubstr("is no longer allowed"));
  EXPECT_THAT(kbs_->Log(), HasSubstr("in set llama-runtime has expired"));
  auto got = grpc_->GetRefValues(token, "llama-runtime");
  ASSERT_TRUE(got.ok()) << got.status();
  EXPECT_EQ((*got)["values"].size(), 2u);
  // Malformed sets are refused and change nothing.
  auto bad = http_->SetRefValues(token, "llama-runtime", "values: [{expires: soon}]");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_TRUE(Fetch(*http_, kMeasurement, {}, false, kRefResource).ok());
}

TEST_F(PolicyE2eTest, ReactivatingAnOldVersionChangesDecisionsAtOnce) {
  std::string token = kbs_->AdminToken();
  const std::vector<std::string> pod = {absl::StrCat("ghcr.io/acme/llm@", kDigest1)};
  ASSERT_TRUE(Fetch(*http_, kMeasurement, pod).ok());
  // v2 admits only the canary measurement.
  std::string v2 = absl::StrReplaceAll(Policy(), {{kMeasurement, kCanary}});
  auto set = grpc_->SetPolicyVersion(token, v2, false);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_NE((*set)["id"], policy_id_);
  EXPECT_EQ(Fetch(*http_, kMeasurement, pod).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_TRUE(Fetch(*http_, kCanary, pod).ok());
  // An invalid policy is refused with every error; v2 stays active.
  auto invalid = http_->SetPolicyVersion(
      token, "version: 1\nrules:\n  - name: x\n    resources: [a]\n    tee: [snpp]\n", false);
  EXPECT_EQ(invalid.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(invalid.status().message(), HasSubstr("line 4, rule x, field resources"));
  EXPECT_THAT(invalid.status().message(), HasSubstr("unknown TEE type \"snpp\""));
  EXPECT_TRUE(Fetch(*http_, kCanary, pod).ok());
  // Back to v1 by a prefix of its id, over gRPC.
  auto id = grpc_->ActivatePolicy(token, policy_id_.substr(0, 20), false);
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, policy_id_);
  EXPECT_TRUE(Fetch(*http_, kMeasurement, pod).ok());
  EXPECT_EQ(Fetch(*http_, kCanary, pod).status().code(), absl::StatusCode::kPermissionDenied);
  auto history = http_->PolicyHistory(token);
  ASSERT_TRUE(history.ok()) << history.status();
  EXPECT_EQ((*history)["active"], policy_id_);
  EXPECT_EQ((*history)["versions"].size(), 2u);
  EXPECT_EQ((*history)["events"].size(), 3u);
  auto current = grpc_->GetPolicy(token);
  ASSERT_TRUE(current.ok());
  EXPECT_EQ((*current)["source"], Policy());
  // Unknown versions are 404s.
  EXPECT_EQ(http_->ActivatePolicy(token, "sha256:000000000000000", false).status().code(),
            absl::StatusCode::kNotFound);
  // The choice survives a restart.
  std::string data_dir = kbs_->data_dir();
  ASSERT_EQ(kbs_->Stop(), 0);
  auto restarted = KbsProcess::Start({.data_dir = data_dir});
  ASSERT_TRUE(restarted.ok()) << restarted.status();
  kbs_ = *std::move(restarted);
  http_ = *client::NewHttpKbsClient(kbs_->http_url());
  EXPECT_TRUE(Fetch(*http_, kMeasurement, pod).ok());
}

TEST_F(PolicyE2eTest, ShadowPolicyVersionNeverGrants) {
  std::string token = kbs_->AdminToken();
  const std::vector<std::string> pod = {absl::StrCat("ghcr.io/acme/llm@", kDigest1)};
  // A whole version in shadow that would admit the canary measurement.
  std::string v2 = absl::StrReplaceAll(Policy(), {{kMeasurement, kCanary}});
  auto set = http_->SetPolicyVersion(token, v2, true);
  ASSERT_TRUE(set.ok()) << set.status();
  EXPECT_EQ(Fetch(*http_, kCanary, pod).status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_THAT(kbs_->Log(), HasSubstr(absl::StrCat("shadow policy=", (*set)["id"].get<std::string>(),
                                                  " would allow")));
  EXPECT_TRUE(Fetch(*http_, kMeasurement, pod).ok());
  auto current = http_->GetPolicy(token);
  EXPECT_EQ((*current)["shadow"]["id"], (*set)["id"]);
  ASSERT_TRUE(http_->ClearShadowPolicy(token).ok());
  current = http_->GetPolicy(token);
  EXPECT_TRUE((*current)["shadow"].is_null());
}

TEST_F(PolicyE2eTest, DryRunsAndRegoOverBothProtocols) {
  std::string token = kbs_->AdminToken();
  Json claims = {{"tee", "sample"},
                 {"sample", {{"measurement", kMeasurement}, {"svn", 1}}},
                 {"images", {absl::StrCat("ghcr.io/acme/llm@", kDigest1)}}};
  for (KbsClient* client : {http_.get(), grpc_.get()}) {
    auto decision = client->EvaluatePolicy(token, claims, kResource, "");
    ASSERT_TRUE(decision.ok()) << decision.status();
    EXPECT_TRUE((*decision)["allow"]);
    EXPECT_EQ((*decision)["rule"], "llama");
    EXPECT_EQ((*decision)["labels"]["route"], "chat");
    EXPECT_EQ((*decision)["policy_version"], policy_id_);
    auto deny = client->EvaluatePolicy(token, claims, "models/other/key", "");
    ASSERT_TRUE(deny.ok());
    EXPECT_FALSE((*deny)["allow"]);
    EXPECT_THAT((*deny)["explanation"].get<std::string>(), HasSubstr("no rule governs"));
    auto rego = client->SetPolicyVersion(token, "package policy\ndefault allow := false\n", false);
    EXPECT_EQ(rego.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(rego.status().message(), HasSubstr("Rego policies are not supported"));
    EXPECT_THAT(rego.status().message(), HasSubstr("docs/policy.md"));
    auto bad_claims = client->EvaluatePolicy(token, Json{{"snp", 1}}, kResource, "");
    EXPECT_EQ(bad_claims.status().code(), absl::StatusCode::kInvalidArgument);
  }
}

TEST(PolicyCliTest, KbsctlPolicyCommands) {
  auto started = KbsProcess::Start({});
  ASSERT_TRUE(started.ok()) << started.status();
  std::unique_ptr<KbsProcess> kbs = *std::move(started);
  std::string dir = kbs->work_dir();
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), testing::KbsctlBinary());
    return testing::RunCommand(args);
  };
  const std::vector<std::string> admin = {"--url", kbs->http_url(), "--admin-key",
                                          kbs->admin_key_file()};
  auto with_admin = [&](std::vector<std::string> args) {
    args.insert(args.end(), admin.begin(), admin.end());
    return run(args);
  };
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/policy.yaml", Policy()).ok());
  ASSERT_TRUE(
      common::WriteFileAtomic(dir + "/claims.json",
                              Json{{"tee", "sample"},
                                   {"sample", {{"measurement", kMeasurement}, {"svn", 2}}},
                                   {"images", {absl::StrCat("ghcr.io/acme/llm@", kDigest1)}}}
                                  .dump())
          .ok());
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/rv.yaml", absl::StrCat("[", kMeasurement, "]")).ok());
  // Offline: exit 0 on allow, 3 on deny, 2 on an invalid policy.
  auto allow = run({"policy", "test", "--file", dir + "/policy.yaml", "--claims",
                    dir + "/claims.json", "--resource", kResource, "--allow-sample-tee"});
  EXPECT_EQ(allow.exit_code, 0) << allow.output;
  EXPECT_THAT(allow.output, HasSubstr("\"rule\": \"llama\""));
  auto deny = run({"policy", "test", "--file", dir + "/policy.yaml", "--claims",
                   dir + "/claims.json", "--resource", kRefResource, "--allow-sample-tee"});
  EXPECT_EQ(deny.exit_code, 3) << deny.output;
  EXPECT_THAT(deny.output, HasSubstr("reference-value set llama-runtime does not exist"));
  auto with_rv = run({"policy", "test", "--file", dir + "/policy.yaml", "--claims",
                      dir + "/claims.json", "--resource", kRefResource, "--allow-sample-tee",
                      "--refvalues", "llama-runtime=" + dir + "/rv.yaml"});
  EXPECT_EQ(with_rv.exit_code, 0) << with_rv.output;
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/bad.yaml", "version: 2\nrules: 3\n").ok());
  auto invalid = run({"policy", "test", "--file", dir + "/bad.yaml", "--claims",
                      dir + "/claims.json", "--resource", kResource});
  EXPECT_EQ(invalid.exit_code, 2) << invalid.output;
  EXPECT_THAT(invalid.output, HasSubstr("line 1, field version: unsupported version"));
  EXPECT_THAT(invalid.output, HasSubstr("line 2, field rules: must be a list of rules"));
  // Online.
  auto set = with_admin({"policy", "set", "--file", dir + "/policy.yaml"});
  ASSERT_EQ(set.exit_code, 0) << set.output;
  EXPECT_THAT(set.output, HasSubstr("active policy: sha256:"));
  EXPECT_THAT(set.output, HasSubstr("reference-value set llama-runtime does not exist yet"));
  auto rv = with_admin({"refvalues", "set", "llama-runtime", "--file", dir + "/rv.yaml"});
  ASSERT_EQ(rv.exit_code, 0) << rv.output;
  auto rv_get = with_admin({"refvalues", "get", "llama-runtime"});
  EXPECT_THAT(rv_get.output, HasSubstr(kMeasurement));
  auto get = with_admin({"policy", "get"});
  EXPECT_THAT(get.output, HasSubstr("llama-canary"));
  auto history = with_admin({"policy", "history"});
  EXPECT_EQ(history.exit_code, 0) << history.output;
  EXPECT_THAT(history.output, HasSubstr("\"action\": \"activate\""));
  auto eval = with_admin(
      {"policy", "evaluate", "--claims", dir + "/claims.json", "--resource", kRefResource});
  EXPECT_EQ(eval.exit_code, 0) << eval.output;
  auto preset = with_admin({"policy", "set", "--preset", "deny-all"});
  ASSERT_EQ(preset.exit_code, 0) << preset.output;
  std::string v1 = set.output.substr(set.output.find("sha256:"), 7 + 64);
  auto activate = with_admin({"policy", "activate", v1.substr(0, 16)});
  EXPECT_EQ(activate.exit_code, 0) << activate.output;
  EXPECT_THAT(activate.output, HasSubstr(v1));
  EXPECT_EQ(kbs->Stop(), 0);
}

}  // namespace
}  // namespace kbs
