#include "common/jose/jwe.h"

#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::jose {
namespace {

using common::Json;

struct KeyCase {
  const char* name;
  KeyManagement alg;
  int rsa_bits;
  common::EcCurve curve;
};

class JweTest : public ::testing::TestWithParam<KeyCase> {
 protected:
  common::EvpPkeyPtr MakeKey() {
    const KeyCase& c = GetParam();
    auto key =
        c.rsa_bits != 0 ? common::GenerateRsaKey(c.rsa_bits) : common::GenerateEcKey(c.curve);
    EXPECT_TRUE(key.ok());
    return *std::move(key);
  }
};

TEST_P(JweTest, RoundTripAndHeaderForm) {
  common::EvpPkeyPtr key = MakeKey();
  auto tee = TeePublicKey::FromPublicKey(key.get(), GetParam().alg);
  ASSERT_TRUE(tee.ok());
  std::string secret = "model weights key \x00\x01\xff";
  auto jwe = JweEncrypt(*tee, common::AsSpan(secret));
  ASSERT_TRUE(jwe.ok()) << jwe.status();

  // Wire form: the five members, unpadded base64url, 12-byte IV, 16-byte tag.
  auto parsed = common::ParseJson(jwe->ToJsonString());
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->size(), 5u);
  for (const char* member : {"protected", "encrypted_key", "iv", "ciphertext", "tag"}) {
    std::string v = (*parsed)[member].get<std::string>();
    EXPECT_EQ(v.find('='), std::string::npos) << member;
  }
  EXPECT_EQ(common::Base64UrlDecode(jwe->iv)->size(), 12u);
  EXPECT_EQ(common::Base64UrlDecode(jwe->tag)->size(), 16u);

  // The protected header is what the CoCo client rebuilds: alg, enc, then
  // the rest in order, compact. Re-serializing with preserved member order
  // must give the same bytes.
  std::string header = *common::Base64UrlDecode(jwe->protected_header);
  nlohmann::ordered_json ordered = nlohmann::ordered_json::parse(header);
  EXPECT_EQ(ordered.dump(), header);
  EXPECT_EQ(ordered.begin().key(), "alg");
  EXPECT_EQ(std::next(ordered.begin()).key(), "enc");
  EXPECT_EQ(ordered["enc"], "A256GCM");
  EXPECT_EQ(ordered["alg"], std::string(KeyManagementName(GetParam().alg)));
  if (GetParam().alg == KeyManagement::kEcdhEsA256Kw) {
    EXPECT_EQ(common::Base64UrlDecode(jwe->encrypted_key)->size(), 40u);
    EXPECT_EQ(ordered["epk"].dump(), Json::parse(ordered["epk"].dump()).dump());  // sorted
    EXPECT_EQ(ordered["epk"]["crv"], std::string(common::EcCurveJoseName(GetParam().curve)));
  }

  auto plain = JweDecrypt(*jwe, key.get());
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(common::AsStringView(plain->span()), secret);
}

TEST_P(JweTest, TamperingFails) {
  common::EvpPkeyPtr key = MakeKey();
  auto tee = TeePublicKey::FromPublicKey(key.get(), GetParam().alg);
  auto jwe = JweEncrypt(*tee, common::AsSpan(std::string("secret")));
  ASSERT_TRUE(jwe.ok());
  auto flip = [](std::string b64) {
    std::string raw = *common::Base64UrlDecode(b64);
    raw[raw.size() / 2] ^= 1;
    return common::Base64UrlEncode(raw);
  };
  FlattenedJwe bad_ct = *jwe;
  bad_ct.ciphertext = flip(bad_ct.ciphertext);
  EXPECT_FALSE(JweDecrypt(bad_ct, key.get()).ok());
  FlattenedJwe bad_tag = *jwe;
  bad_tag.tag = flip(bad_tag.tag);
  EXPECT_FALSE(JweDecrypt(bad_tag, key.get()).ok());
  FlattenedJwe bad_iv = *jwe;
  bad_iv.iv = flip(bad_iv.iv);
  EXPECT_FALSE(JweDecrypt(bad_iv, key.get()).ok());
  FlattenedJwe bad_key = *jwe;
  bad_key.encrypted_key = flip(bad_key.encrypted_key);
  EXPECT_FALSE(JweDecrypt(bad_key, key.get()).ok());
  // A different recipient key cannot decrypt.
  common::EvpPkeyPtr other = MakeKey();
  EXPECT_FALSE(JweDecrypt(*jwe, other.get()).ok());
}

INSTANTIATE_TEST_SUITE_P(
    AllAlgorithms, JweTest,
    ::testing::Values(KeyCase{"EcP256", KeyManagement::kEcdhEsA256Kw, 0, common::EcCurve::kP256},
                      KeyCase{"EcP521", KeyManagement::kEcdhEsA256Kw, 0, common::EcCurve::kP521},
                      KeyCase{"RsaOaep256", KeyManagement::kRsaOaep256, 2048,
                              common::EcCurve::kP256},
                      KeyCase{"Rsa1_5", KeyManagement::kRsa1_5, 2048, common::EcCurve::kP256}),
    [](const auto& info) { return std::string(info.param.name); });

}  // namespace
}  // namespace kbs::jose
