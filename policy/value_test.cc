#include "policy/value.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::policy {
namespace {

TEST(ValueTest, FromJsonKeepsKindsAndNumbers) {
  Value v = Value::FromJson(common::Json::parse(
      R"({"i": 3, "u": 18446744073709551615, "d": 1.5, "di": 2.0, "s": "x", "b": true,
          "n": null, "l": [1, "a"], "m": {"k": {"deep": 7}}})"));
  ASSERT_TRUE(v.is_map());
  EXPECT_EQ(v.Find("i")->int_value(), 3);
  EXPECT_TRUE(v.Find("u")->is_double());
  EXPECT_EQ(v.Find("d")->double_value(), 1.5);
  EXPECT_TRUE(v.Find("di")->is_int());
  EXPECT_EQ(v.Find("s")->string_value(), "x");
  EXPECT_TRUE(v.Find("b")->bool_value());
  EXPECT_TRUE(v.Find("n")->is_null());
  EXPECT_EQ(v.Find("l")->list().size(), 2u);
  EXPECT_EQ(v.FindPath("m.k.deep")->int_value(), 7);
  EXPECT_EQ(v.FindPath("m.k.missing"), nullptr);
  EXPECT_EQ(v.FindPath("s.x"), nullptr);
  EXPECT_EQ(v.Find("s")->Find("x"), nullptr);
  EXPECT_EQ(Value::FromJson(v.ToJson()), v);
}

TEST(ValueTest, EqualityIsStructuralAndNumeric) {
  EXPECT_EQ(Value::Int(2), Value::Double(2.0));
  EXPECT_NE(Value::Int(2), Value::String("2"));
  EXPECT_NE(Value::Bool(false), Value());
  EXPECT_EQ(Value::List({Value::Int(1)}), Value::List({Value::Double(1)}));
  EXPECT_NE(Value::List({Value::Int(1)}), Value::List({}));
  ValueMap a, b;
  a.entries["k"] = Value::String("v");
  b.entries["k"] = Value::String("w");
  EXPECT_NE(Value::Map(a), Value::Map(b));
  b.entries["k"] = Value::String("v");
  EXPECT_EQ(Value::Map(a), Value::Map(b));
}

TEST(ValueTest, RenderIsBounded) {
  EXPECT_EQ(Value::String("ab").Render(), "\"ab\"");
  EXPECT_EQ(Value::Int(-4).Render(), "-4");
  std::string long_text = Value::String(std::string(500, 'x')).Render(20);
  EXPECT_LE(long_text.size(), 30u);
  EXPECT_THAT(long_text, ::testing::HasSubstr("…"));
  ValueList many(1000, Value::Int(1));
  EXPECT_LE(Value::List(many).Render(40).size(), 50u);
}

}  // namespace
}  // namespace kbs::policy
