#include "common/crypto.h"

#include "common/encoding.h"
#include "gtest/gtest.h"

namespace kbs::common {
namespace {

TEST(CryptoTest, DigestKnownAnswers) {
  EXPECT_EQ(HexEncode(Digest(HashAlgorithm::kSha256, "abc")),
            "ba7816bf8f01cfea414140de5dae2223b00361a396177a9cb410ff61f20015ad");
  EXPECT_EQ(HexEncode(Digest(HashAlgorithm::kSha384, "abc")),
            "cb00753f45a35e8bb5a03d699ac65007272c32ab0eded1631a8b605a43ff5bed"
            "8086072ba1e7cc2358baeca134c825a7");
  EXPECT_EQ(Digest(HashAlgorithm::kSha512, "abc").size(), 64u);
  // kbs-protocol.md §2.4 test vector: SHA-384 of the JCS form.
  EXPECT_EQ(HexEncode(Digest(HashAlgorithm::kSha384, R"({"a":"test","b":1,"c":{"d":"e"}})")),
            "e71ce8e70d814ba6639c3612ebee0ff1f76f650f8dbb5e47157e0f3f525cd22c"
            "4597480a186427c813ca941da78870c3");
}

TEST(CryptoTest, ParseHashAlgorithm) {
  EXPECT_EQ(*ParseHashAlgorithm("SHA384"), HashAlgorithm::kSha384);
  EXPECT_EQ(*ParseHashAlgorithm("sha256"), HashAlgorithm::kSha256);
  EXPECT_FALSE(ParseHashAlgorithm("sm3").ok());
}

TEST(CryptoTest, AesGcmRoundTripAndTamper) {
  auto key = RandomBytes(32);
  ASSERT_TRUE(key.ok());
  std::string iv(12, '\x01');
  auto sealed = AesGcmSeal(key->span(), AsSpan(iv), AsSpan("aad"), AsSpan("secret"));
  ASSERT_TRUE(sealed.ok());
  auto opened = AesGcmOpen(key->span(), AsSpan(iv), AsSpan("aad"), AsSpan(sealed->ciphertext),
                           AsSpan(sealed->tag));
  ASSERT_TRUE(opened.ok());
  EXPECT_EQ(AsStringView(opened->span()), "secret");
  EXPECT_FALSE(AesGcmOpen(key->span(), AsSpan(iv), AsSpan("AAD"), AsSpan(sealed->ciphertext),
                          AsSpan(sealed->tag))
                   .ok());
  std::string bad_ct = sealed->ciphertext;
  bad_ct[0] ^= 1;
  EXPECT_FALSE(
      AesGcmOpen(key->span(), AsSpan(iv), AsSpan("aad"), AsSpan(bad_ct), AsSpan(sealed->tag)).ok());
}

// RFC 3394 §4.6: wrap 256 bits of key data with a 256-bit KEK.
TEST(CryptoTest, AesKeyWrapRfc3394Vector) {
  std::string kek = *HexDecode("000102030405060708090A0B0C0D0E0F101112131415161718191A1B1C1D1E1F");
  std::string data = *HexDecode("00112233445566778899AABBCCDDEEFF000102030405060708090A0B0C0D0E0F");
  auto wrapped = AesKeyWrap(AsSpan(kek), AsSpan(data));
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  EXPECT_EQ(HexEncode(*wrapped),
            "28c9f404c4b810f4cbccb35cfb87f8263f5786e2d80ed326cbc7f0e71a99f43bfb988b9b7a02dd21");
  auto unwrapped = AesKeyUnwrap(AsSpan(kek), AsSpan(*wrapped));
  ASSERT_TRUE(unwrapped.ok());
  EXPECT_EQ(AsStringView(unwrapped->span()), data);
  std::string bad = *wrapped;
  bad[5] ^= 1;
  EXPECT_FALSE(AesKeyUnwrap(AsSpan(kek), AsSpan(bad)).ok());
}

TEST(CryptoTest, ConstantTimeEquals) {
  EXPECT_TRUE(ConstantTimeEquals(absl::string_view("abc"), absl::string_view("abc")));
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("abc"), absl::string_view("abd")));
  EXPECT_FALSE(ConstantTimeEquals(absl::string_view("abc"), absl::string_view("ab")));
}

}  // namespace
}  // namespace kbs::common
