#include "common/encoding.h"

#include "gtest/gtest.h"

namespace kbs::common {
namespace {

TEST(EncodingTest, Base64RoundTripAndStrictness) {
  EXPECT_EQ(Base64Encode("hello"), "aGVsbG8=");
  EXPECT_EQ(*Base64Decode("aGVsbG8="), "hello");
  EXPECT_FALSE(Base64Decode("aGVsbG8").ok());    // missing padding
  EXPECT_FALSE(Base64Decode("aGVs bG8=").ok());  // whitespace
  EXPECT_FALSE(Base64Decode("aGVsbG9=").ok());   // non-zero trailing bits
  EXPECT_FALSE(Base64Decode("aGV-bG8=").ok());   // url alphabet
  EXPECT_EQ(*Base64Decode(""), "");
}

TEST(EncodingTest, Base64UrlRoundTripAndStrictness) {
  std::string bytes = "\xfb\xff\xfe";
  EXPECT_EQ(Base64UrlEncode(bytes), "-__-");
  EXPECT_EQ(*Base64UrlDecode("-__-"), bytes);
  EXPECT_EQ(Base64UrlEncode("hello"), "aGVsbG8");
  EXPECT_FALSE(Base64UrlDecode("aGVsbG8=").ok());  // padding rejected
  EXPECT_FALSE(Base64UrlDecode("+//+").ok());      // standard alphabet
  EXPECT_FALSE(Base64UrlDecode("aGVsbG9").ok());   // non-canonical
}

TEST(EncodingTest, Hex) {
  EXPECT_EQ(HexEncode(std::string("\x00\xab\xff", 3)), "00abff");
  EXPECT_EQ(*HexDecode("00ABff"), std::string("\x00\xab\xff", 3));
  EXPECT_FALSE(HexDecode("abc").ok());
  EXPECT_FALSE(HexDecode("zz").ok());
}

}  // namespace
}  // namespace kbs::common
