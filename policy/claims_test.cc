#include "policy/claims.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::policy {
namespace {

using common::Json;
using ::testing::HasSubstr;

const std::string kHex(64, 'a');

TEST(ImageReferenceTest, DigestsAndTags) {
  struct Case {
    std::string ref, name;
    std::optional<std::string> digest;
  };
  const std::vector<Case> cases = {
      {"ghcr.io/acme/llm@sha256:" + kHex, "ghcr.io/acme/llm", "sha256:" + kHex},
      {"ghcr.io/acme/llm:1.2@sha256:" + kHex, "ghcr.io/acme/llm", "sha256:" + kHex},
      {"registry:5000/llm:1.2", "registry:5000/llm", std::nullopt},
      {"registry:5000/llm", "registry:5000/llm", std::nullopt},
      {"nginx", "nginx", std::nullopt},
      {"nginx:latest", "nginx", std::nullopt},
      {"nginx@sha256:abc", "nginx", std::nullopt},
      {"nginx@sha512:" + kHex + kHex, "nginx", std::nullopt},
      {"nginx@sha256:" + std::string(64, 'A'), "nginx", std::nullopt},
      {"@sha256:" + kHex, "", std::nullopt},
      {"", "", std::nullopt},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.ref);
    PodImage image = ParseImageReference(c.ref);
    EXPECT_EQ(image.reference, c.ref);
    EXPECT_EQ(image.name, c.name);
    EXPECT_EQ(image.digest, c.digest);
  }
}

Json Ear(Json annotated, Json submod_extra = Json::object()) {
  Json cpu0 = {{"ear.status", "affirming"}, {"ear.veraison.annotated-evidence", annotated}};
  for (auto it = submod_extra.begin(); it != submod_extra.end(); ++it) cpu0[it.key()] = it.value();
  return Json{{"submods", {{"cpu0", cpu0}}}};
}

TEST(ClaimsTest, FromEarToken) {
  Json ear = Ear({{"snp", {{"measurement", "ab"}, {"debug", false}}},
                  {"report_data", "00"},
                  {"runtime_data_claims", Json::object()},
                  {"init_data", "beef"},
                  {"init_data_claims", {{"aa.toml", "x"}}}},
                 {{"ear.trustee.identifiers",
                   {{"validated",
                     {{"container_images", {"a/b@sha256:" + kHex, "c:latest"}},
                      {"agent_policy_rules_sha256", "ee"}}}}}});
  ear["submods"]["gpu0"] = {{"ear.veraison.annotated-evidence", {{"nvidia", {{"x", 1}}}}}};
  auto claims = ClaimsFromEar(ear);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee, "snp");
  EXPECT_EQ(claims->tees, (std::vector<std::string>{"snp", "nvidia"}));
  EXPECT_EQ(claims->debug, false);
  ASSERT_TRUE(claims->images.has_value());
  ASSERT_EQ(claims->images->size(), 2u);
  EXPECT_EQ((*claims->images)[0].digest, "sha256:" + kHex);
  EXPECT_FALSE((*claims->images)[1].digest.has_value());
  const Value& root = claims->root;
  EXPECT_EQ(root.FindPath("snp.measurement")->string_value(), "ab");
  EXPECT_EQ(root.Find("tee")->string_value(), "snp");
  EXPECT_EQ(root.Find("init_data_digest")->string_value(), "beef");
  EXPECT_EQ(root.FindPath("init_data.aa.toml"), nullptr);  // dotted keys are not paths
  EXPECT_EQ(root.Find("init_data")->Find("aa.toml")->string_value(), "x");
  EXPECT_EQ(root.Find("trust_status")->string_value(), "affirming");
  EXPECT_EQ(root.Find("agent_policy_rules_digest")->string_value(), "ee");
  EXPECT_EQ(root.Find("images")->list().size(), 2u);
  EXPECT_EQ(root.Find("image_digests")->list().size(), 1u);
  EXPECT_EQ(root.FindPath("nvidia.x")->int_value(), 1);
  EXPECT_FALSE(root.Find("debug")->bool_value());
}

TEST(ClaimsTest, NoAgentPolicyMeansNoImages) {
  auto claims = ClaimsFromEar(Ear({{"snp", {{"debug", true}}}}));
  ASSERT_TRUE(claims.ok());
  EXPECT_FALSE(claims->images.has_value());
  EXPECT_EQ(claims->root.Find("images"), nullptr);
  EXPECT_EQ(claims->debug, true);
}

TEST(ClaimsTest, DebugIsDerivedPerTee) {
  auto tdx = ClaimsFromJson({{"tee", "tdx"}, {"tdx", {{"td_attributes", {{"debug", true}}}}}});
  ASSERT_TRUE(tdx.ok());
  EXPECT_EQ(tdx->debug, true);
  auto sgx = ClaimsFromJson({{"tee", "sgx"}, {"sgx", {{"attributes", {{"debug", false}}}}}});
  EXPECT_EQ(sgx->debug, false);
  auto unknown = ClaimsFromJson({{"tee", "cca"}, {"cca", Json::object()}});
  ASSERT_TRUE(unknown.ok());
  EXPECT_FALSE(unknown->debug.has_value());
  EXPECT_EQ(unknown->root.Find("debug"), nullptr);
  auto sample = ClaimsFromJson({{"tee", "sample"}, {"sample", Json::object()}});
  EXPECT_EQ(sample->debug, false);
  auto tcb = ClaimsFromJson({{"tee", "tdx"}, {"tdx", {{"tcb_status", "OutOfDate"}}}});
  EXPECT_EQ(tcb->root.Find("tcb_status")->string_value(), "OutOfDate");
}

TEST(ClaimsTest, MalformedClaims) {
  EXPECT_THAT(std::string(ClaimsFromJson(Json::array()).status().message()),
              HasSubstr("expected a JSON object"));
  EXPECT_THAT(std::string(ClaimsFromJson({{"snp", Json::object()}}).status().message()),
              HasSubstr("`tee`"));
  EXPECT_THAT(std::string(ClaimsFromJson({{"tee", "snp"}}).status().message()),
              HasSubstr("no claims object for TEE snp"));
  EXPECT_FALSE(ClaimsFromJson({{"tee", "snp"}, {"snp", Json::object()}, {"images", "x"}}).ok());
  EXPECT_FALSE(ClaimsFromJson({{"tee", "snp"}, {"snp", Json::object()}, {"debug", "yes"}}).ok());
  EXPECT_FALSE(ClaimsFromEar({{"submods", Json::object()}}).ok());
  EXPECT_FALSE(ClaimsFromEar(Ear({{"snp", Json::object()}, {"tdx", Json::object()}})).ok());
}

}  // namespace
}  // namespace kbs::policy
