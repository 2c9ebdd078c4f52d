#include "policy/refvalues.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::policy {
namespace {

using ::testing::HasSubstr;

TEST(RefValuesTest, ParsesListsAndEntriesWithExpiry) {
  auto set = ParseRefValueSet("llama-runtime", R"(
description: builds published by CI
values:
  - "ABCDEF01"
  - {value: "0d3f", expires: "2027-01-31T00:00:00Z"}
  - plain-text
)");
  ASSERT_TRUE(set.ok()) << set.status();
  ASSERT_EQ(set->values.size(), 3u);
  EXPECT_EQ(set->values[0].value, "abcdef01");  // hex is normalized
  EXPECT_FALSE(set->values[0].expires.has_value());
  EXPECT_EQ(set->values[1].expires, absl::FromUnixSeconds(1801353600));
  EXPECT_EQ(set->values[2].value, "plain-text");
  EXPECT_EQ(set->description, "builds published by CI");
  common::Json j = RefValueSetToJson(*set);
  EXPECT_EQ(j["values"][1]["expires"], "2027-01-31T00:00:00Z");
  // A bare JSON list is a set too.
  auto bare = ParseRefValueSet("x", R"(["aa", "bb"])");
  ASSERT_TRUE(bare.ok());
  EXPECT_EQ(bare->values.size(), 2u);
}

TEST(RefValuesTest, RejectsMalformedSets) {
  struct Case {
    std::string name, text, fragment;
  };
  const std::vector<Case> cases = {
      {"bad/name", "[a]", "invalid reference-value set name"},
      {".hidden", "[a]", "invalid reference-value set name"},
      {"s", "values: 3", "`values` must be a list"},
      {"s", "{}", "missing `values`"},
      {"s", "values: [{value: a, expires: tomorrow}]", "values[1].expires: not an RFC 3339 time"},
      {"s", "values: [{expires: \"2027-01-01T00:00:00Z\"}]", "values[1]: expected a non-empty"},
      {"s", "values: [[a]]", "values[1]: expected a non-empty"},
      {"s", "values: [a]\ncolour: red", "unknown field `colour`"},
      {"s", "values: [", "not valid YAML"},
      {"s", "42", "expected a list of values"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.text);
    auto set = ParseRefValueSet(c.name, c.text);
    ASSERT_FALSE(set.ok());
    EXPECT_EQ(set.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_THAT(std::string(set.status().message()), HasSubstr(c.fragment));
  }
}

TEST(RefValuesTest, MatchHonorsExpiry) {
  absl::Time t = absl::FromUnixSeconds(1000);
  auto refs = RefValues::Create(
      {{"a", "", {{"v1", t}, {"v2", std::nullopt}, {"v1", t - absl::Seconds(5)}}}});
  EXPECT_EQ(refs->Match("a", "v1", t - absl::Seconds(1)), RefMatch::kMatch);
  EXPECT_EQ(refs->Match("a", "v1", t), RefMatch::kExpired);
  EXPECT_EQ(refs->Match("a", "v2", absl::FromUnixSeconds(int64_t{1} << 40)), RefMatch::kMatch);
  EXPECT_EQ(refs->Match("a", "v3", t), RefMatch::kNotInSet);
  EXPECT_EQ(refs->Match("b", "v1", t), RefMatch::kNoSuchSet);
  EXPECT_TRUE(refs->HasSet("a"));
  EXPECT_FALSE(RefValues::Empty()->HasSet("a"));
}

}  // namespace
}  // namespace kbs::policy
