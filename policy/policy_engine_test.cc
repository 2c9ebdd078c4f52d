#include "policy/policy_engine.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::policy {
namespace {

using ::testing::HasSubstr;

PolicyInput Input(std::string tee) {
  PolicyInput in;
  in.resource_path = "repo/key/tag";
  in.tees = {std::move(tee)};
  return in;
}

TEST(PolicyEngineTest, DefaultDeniesEverything) {
  auto engine = DefaultPolicy({.sample_tee_enabled = true});
  auto d = engine->Evaluate(Input("sample"));
  ASSERT_TRUE(d.ok());
  EXPECT_FALSE(d->allow);
  EXPECT_EQ(d->rule, "deny-all");
  EXPECT_FALSE(engine->Evaluate(Input("snp"))->allow);
}

TEST(PolicyEngineTest, AllowAllAdmitsSampleOnlyWhenEnabled) {
  auto off = CompilePolicy(R"({"preset":"allow-all"})", {.sample_tee_enabled = false});
  ASSERT_TRUE(off.ok());
  EXPECT_TRUE((*off)->Evaluate(Input("snp"))->allow);
  auto denied = (*off)->Evaluate(Input("sample"));
  EXPECT_FALSE(denied->allow);
  EXPECT_THAT(denied->reason, HasSubstr("sample"));
  PolicyInput with_device = Input("tdx");
  with_device.tees.push_back("sampledevice");
  EXPECT_FALSE((*off)->Evaluate(with_device)->allow);

  auto on = CompilePolicy("allow-all", {.sample_tee_enabled = true});
  ASSERT_TRUE(on.ok());
  EXPECT_TRUE((*on)->Evaluate(Input("sample"))->allow);
  EXPECT_EQ((*on)->id(), "preset:allow-all");
}

TEST(PolicyEngineTest, RejectsInvalidDocuments) {
  EXPECT_THAT(CompilePolicy("package policy\ndefault allow := true", {}).status().message(),
              HasSubstr("Rego policies are not supported"));
  EXPECT_THAT(CompilePolicy(R"({"preset":"maybe"})", {}).status().message(),
              HasSubstr("unknown policy preset"));
  auto multi = CompilePolicy(R"({"version":2,"preset":3,"extra":1})", {});
  ASSERT_FALSE(multi.ok());
  EXPECT_THAT(multi.status().message(), HasSubstr("`version` must be 1"));
  EXPECT_THAT(multi.status().message(), HasSubstr("`preset` must be a string"));
  EXPECT_THAT(multi.status().message(), HasSubstr("unknown field `extra`"));
  EXPECT_FALSE(CompilePolicy("", {}).ok());
  EXPECT_FALSE(CompilePolicy("{", {}).ok());
  EXPECT_TRUE(CompilePolicy(R"({"version":1,"preset":"deny-all"})", {}).ok());
}

}  // namespace
}  // namespace kbs::policy
