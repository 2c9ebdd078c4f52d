#include "common/json.h"

#include <string>

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::common {
namespace {

using ::testing::HasSubstr;

TEST(JsonTest, ParsesValidDocument) {
  auto j = ParseJson(R"({"a":[1,2,{"b":null}],"c":"d"})");
  ASSERT_TRUE(j.ok()) << j.status();
  EXPECT_EQ((*j)["c"], "d");
}

TEST(JsonTest, RejectsSyntaxErrorsWithPosition) {
  auto j = ParseJson(R"({"a":)");
  ASSERT_FALSE(j.ok());
  EXPECT_EQ(j.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(j.status().message(), HasSubstr("line 1"));
}

TEST(JsonTest, RejectsTrailingGarbageAndEmpty) {
  EXPECT_FALSE(ParseJson(R"({"a":1} x)").ok());
  EXPECT_FALSE(ParseJson("").ok());
}

TEST(JsonTest, RejectsDuplicateMembers) {
  auto j = ParseJson(R"({"nonce":"a","nonce":"b"})");
  ASSERT_FALSE(j.ok());
  EXPECT_THAT(j.status().message(), HasSubstr("duplicate member \"nonce\""));
  // Same key in sibling objects is fine.
  EXPECT_TRUE(ParseJson(R"([{"a":1},{"a":2}])").ok());
  EXPECT_TRUE(ParseJson(R"({"a":{"a":1}})").ok());
}

TEST(JsonTest, RejectsDeepNesting) {
  std::string deep(100000, '[');
  auto j = ParseJson(deep);
  ASSERT_FALSE(j.ok());
  std::string ok_depth = std::string(10, '[') + std::string(10, ']');
  EXPECT_TRUE(ParseJson(ok_depth).ok());
  std::string too_deep = std::string(70, '[') + std::string(70, ']');
  auto t = ParseJson(too_deep);
  ASSERT_FALSE(t.ok());
  EXPECT_THAT(t.status().message(), HasSubstr("nesting"));
}

TEST(JsonTest, RejectsInvalidUtf8AndLoneSurrogates) {
  EXPECT_FALSE(ParseJson("\"\xff\"").ok());
  EXPECT_FALSE(ParseJson(R"("\ud800")").ok());
}

TEST(JsonTest, PrefixStopsAtTheEndOfTheFirstValue) {
  // Brackets and quotes inside strings do not end the value.
  constexpr char kText[] = R"({"a":"}]\"{","b":[1,{"c":[]}]}
default allow := false
x := {"not": "json"})";
  auto prefix = ParseJsonPrefix(kText);
  ASSERT_TRUE(prefix.ok()) << prefix.status();
  EXPECT_EQ(prefix->size, std::string_view(kText).find('\n'));
  EXPECT_EQ(prefix->value["a"], "}]\"{");
  EXPECT_EQ(prefix->value["b"][1]["c"], Json::array());

  auto array = ParseJsonPrefix("[1,[2]]]]");
  ASSERT_TRUE(array.ok()) << array.status();
  EXPECT_EQ(array->size, 7u);
  EXPECT_EQ(array->value, Json::parse("[1,[2]]"));
}

TEST(JsonTest, PrefixKeepsTheLimitsOfParseJson) {
  EXPECT_THAT(ParseJsonPrefix(R"({"a":1,"a":2} tail)").status().message(),
              HasSubstr("duplicate member \"a\""));
  std::string too_deep = std::string(70, '[') + std::string(70, ']') + " tail";
  EXPECT_THAT(ParseJsonPrefix(too_deep).status().message(), HasSubstr("nesting"));
  // Unterminated, mismatched, or not JSON inside the brackets.
  EXPECT_THAT(ParseJsonPrefix(R"({"a": [1, 2)").status().message(), HasSubstr("invalid JSON"));
  EXPECT_FALSE(ParseJsonPrefix(R"({"a": [1, 2} ])").ok());
  EXPECT_FALSE(ParseJsonPrefix(R"({"a": 1,} tail)").ok());
  EXPECT_FALSE(ParseJsonPrefix("{'a': 1}").ok());
  // Only an object or an array, starting at the first byte.
  EXPECT_FALSE(ParseJsonPrefix("12 tail").ok());
  EXPECT_FALSE(ParseJsonPrefix(" {}").ok());
  EXPECT_FALSE(ParseJsonPrefix("").ok());
}

TEST(JsonTest, TypedAccessors) {
  auto j = ParseJson(R"({"s":"x","n":1,"o":{}})");
  ASSERT_TRUE(j.ok());
  EXPECT_EQ(*GetStringMember(*j, "s", "test"), "x");
  auto wrong = GetStringMember(*j, "n", "test");
  ASSERT_FALSE(wrong.ok());
  EXPECT_THAT(wrong.status().message(), HasSubstr("field `n` in test must be a string"));
  auto missing = GetStringMember(*j, "m", "test");
  EXPECT_THAT(missing.status().message(), HasSubstr("missing field `m` in test"));
  EXPECT_TRUE(GetObjectMember(*j, "o", "test").ok());
  EXPECT_FALSE(GetObjectMember(*j, "s", "test").ok());
}

}  // namespace
}  // namespace kbs::common
