#include "common/jcs.h"

#include <cstring>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::common {
namespace {

double FromBits(uint64_t bits) {
  double d;
  std::memcpy(&d, &bits, sizeof(d));
  return d;
}

std::string Canon(absl::string_view json_text) {
  auto parsed = ParseJson(json_text);
  EXPECT_TRUE(parsed.ok()) << parsed.status();
  auto out = CanonicalizeJson(*parsed);
  EXPECT_TRUE(out.ok()) << out.status();
  return out.ok() ? *out : "";
}

// RFC 8785 Appendix B: IEEE-754 bit patterns and their ES6 serialization.
TEST(JcsNumberTest, Rfc8785AppendixB) {
  struct Case {
    uint64_t bits;
    const char* expected;
  } cases[] = {
      {0x0000000000000000, "0"},
      {0x8000000000000000, "0"},
      {0x0000000000000001, "5e-324"},
      {0x8000000000000001, "-5e-324"},
      {0x7fefffffffffffff, "1.7976931348623157e+308"},
      {0xffefffffffffffff, "-1.7976931348623157e+308"},
      {0x4340000000000000, "9007199254740992"},
      {0xc340000000000000, "-9007199254740992"},
      {0x4430000000000000, "295147905179352830000"},
      {0x44b52d02c7e14af5, "9.999999999999997e+22"},
      {0x44b52d02c7e14af6, "1e+23"},
      {0x44b52d02c7e14af7, "1.0000000000000001e+23"},
      {0x444b1ae4d6e2ef4e, "999999999999999700000"},
      {0x444b1ae4d6e2ef4f, "999999999999999900000"},
      {0x444b1ae4d6e2ef50, "1e+21"},
      {0x3eb0c6f7a0b5ed8c, "9.999999999999997e-7"},
      {0x3eb0c6f7a0b5ed8d, "0.000001"},
      {0x41b3de4355555553, "333333333.3333332"},
      {0x41b3de4355555554, "333333333.33333325"},
      {0x41b3de4355555555, "333333333.3333333"},
      {0x41b3de4355555556, "333333333.3333334"},
      {0x41b3de4355555557, "333333333.33333343"},
      {0xbecbf647612f3696, "-0.0000033333333333333333"},
      {0x43143ff3c1cb0959, "1424953923781206.2"},
  };
  for (const Case& c : cases) {
    auto got = FormatJcsNumber(FromBits(c.bits));
    ASSERT_TRUE(got.ok()) << std::hex << c.bits;
    EXPECT_EQ(*got, c.expected) << std::hex << c.bits;
  }
}

TEST(JcsNumberTest, RejectsNanAndInfinity) {
  EXPECT_FALSE(FormatJcsNumber(FromBits(0x7fffffffffffffff)).ok());
  EXPECT_FALSE(FormatJcsNumber(FromBits(0x7ff0000000000000)).ok());
  EXPECT_FALSE(FormatJcsNumber(FromBits(0xfff0000000000000)).ok());
}

// RFC 8785 §3.2.2 example ("values" in the reference test data).
TEST(JcsTest, Rfc8785PrimitivesExample) {
  EXPECT_EQ(Canon(R"({
    "numbers": [333333333.33333329, 1E30, 4.50, 2e-3, 0.000000000000000000000000001],
    "string": "\u20ac$\u000F\u000aA'\u0042\u0022\u005c\\\"\/",
    "literals": [null, true, false]
  })"),
            "{\"literals\":[null,true,false],\"numbers\":[333333333.3333333,1e+30,4.5,0.002,1e-27],"
            "\"string\":\"\xe2\x82\xac$\\u000f\\nA'B\\\"\\\\\\\\\\\"/\"}");
}

// RFC 8785 §3.2.3: members sorted by UTF-16 code units, so the emoji
// (surrogates D83D DE02) sorts before U+FB33 although its UTF-8 is larger.
TEST(JcsTest, Rfc8785SortingExample) {
  EXPECT_EQ(Canon(R"({
    "\u20ac": "Euro Sign",
    "\r": "Carriage Return",
    "\ufb33": "Hebrew Letter Dalet With Dagesh",
    "1": "One",
    "\ud83d\ude00": "Emoji: Grinning Face",
    "\u0080": "Control",
    "\u00f6": "Latin Small Letter O With Diaeresis"
  })"),
            "{\"\\r\":\"Carriage Return\",\"1\":\"One\",\"\xc2\x80\":\"Control\","
            "\"\xc3\xb6\":\"Latin Small Letter O With Diaeresis\",\"\xe2\x82\xac\":\"Euro Sign\","
            "\"\xf0\x9f\x98\x80\":\"Emoji: Grinning Face\","
            "\"\xef\xac\xb3\":\"Hebrew Letter Dalet With Dagesh\"}");
}

TEST(JcsTest, ControlCharactersAndDelete) {
  EXPECT_EQ(Canon(R"({"a":"\u0000\u0001\b\f\t\u001f\u007f"})"),
            "{\"a\":\"\\u0000\\u0001\\b\\f\\t\\u001f\x7f\"}");
}

TEST(JcsTest, EscapesBetweenPlainRuns) {
  // Plain text before, between and after escapes, and every control
  // character in the middle of a string.
  std::string out;
  AppendJcsString(
      "ab\"cd\\e\x01"
      "f\x1f"
      "\xc3\xa9g\x7fh\nij",
      out);
  EXPECT_EQ(out, "\"ab\\\"cd\\\\e\\u0001f\\u001f\xc3\xa9g\x7fh\\nij\"");
  for (int c = 0; c < 0x20; ++c) {
    std::string one;
    AppendJcsString(std::string("x") + static_cast<char>(c) + "y", one);
    std::string expected;
    switch (c) {
      case '\b':
        expected = "\\b";
        break;
      case '\f':
        expected = "\\f";
        break;
      case '\n':
        expected = "\\n";
        break;
      case '\r':
        expected = "\\r";
        break;
      case '\t':
        expected = "\\t";
        break;
      default:
        expected = absl::StrFormat("\\u%04x", c);
    }
    EXPECT_EQ(one, absl::StrCat("\"x", expected, "y\"")) << c;
  }
}

TEST(JcsTest, NestedAndIntegers) {
  EXPECT_EQ(Canon(R"({"b":1,"a":"test","c":{"d":"e"}})"), R"({"a":"test","b":1,"c":{"d":"e"}})");
  EXPECT_EQ(Canon("[1.0, -0, 10000000000000000000000, 9007199254740993]"),
            "[1,0,1e+22,9007199254740992]");
  EXPECT_EQ(Canon(R"({"z":[],"y":{},"x":[{}]})"), R"({"x":[{}],"y":{},"z":[]})");
}

}  // namespace
}  // namespace kbs::common
