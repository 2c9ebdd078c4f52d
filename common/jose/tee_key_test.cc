#include "common/jose/tee_key.h"

#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::jose {
namespace {

using common::Json;
using ::testing::HasSubstr;

Json EcJwk(common::EcCurve curve = common::EcCurve::kP256) {
  auto key = common::GenerateEcKey(curve);
  auto tee = TeePublicKey::FromPublicKey(key->get(), KeyManagement::kEcdhEsA256Kw);
  return tee->ToJson();
}

TEST(TeePublicKeyTest, ReserializesOnlyTypedMembers) {
  Json jwk = EcJwk();
  jwk["kid"] = "extra";
  jwk["use"] = "enc";
  auto key = TeePublicKey::FromJson(jwk);
  ASSERT_TRUE(key.ok()) << key.status();
  Json out = key->ToJson();
  EXPECT_EQ(out.size(), 5u);
  EXPECT_FALSE(out.contains("kid"));
  EXPECT_EQ(out["x"], jwk["x"]);
}

TEST(TeePublicKeyTest, AcceptsRsaAndP521) {
  auto rsa = common::GenerateRsaKey(2048);
  auto tee = TeePublicKey::FromPublicKey(rsa->get(), KeyManagement::kRsaOaep256);
  ASSERT_TRUE(tee.ok());
  Json jwk = tee->ToJson();
  EXPECT_EQ(jwk["alg"], "RSA-OAEP-256");
  EXPECT_EQ(jwk["e"], "AQAB");
  EXPECT_TRUE(TeePublicKey::FromJson(jwk).ok());
  EXPECT_TRUE(TeePublicKey::FromJson(EcJwk(common::EcCurve::kP521)).ok());
}

TEST(TeePublicKeyTest, RejectsBadKeys) {
  Json p384 = EcJwk(common::EcCurve::kP384);
  EXPECT_THAT(TeePublicKey::FromJson(p384).status().message(), HasSubstr("P-384"));

  Json off_curve = EcJwk();
  std::string y = *common::Base64UrlDecode(off_curve["y"].get<std::string>());
  y[0] ^= 0x40;
  off_curve["y"] = common::Base64UrlEncode(y);
  EXPECT_THAT(TeePublicKey::FromJson(off_curve).status().message(), HasSubstr("not on the curve"));

  Json wrong_alg = EcJwk();
  wrong_alg["alg"] = "ECDH-ES";
  EXPECT_FALSE(TeePublicKey::FromJson(wrong_alg).ok());

  Json missing = EcJwk();
  missing.erase("x");
  EXPECT_THAT(TeePublicKey::FromJson(missing).status().message(), HasSubstr("missing field `x`"));

  Json padded = EcJwk();
  padded["x"] = padded["x"].get<std::string>() + "=";
  EXPECT_FALSE(TeePublicKey::FromJson(padded).ok());

  EXPECT_FALSE(TeePublicKey::FromJson(Json{{"kty", "oct"}, {"alg", "A256KW"}}).ok());
  EXPECT_FALSE(TeePublicKey::FromJson(Json::array()).ok());
  EXPECT_FALSE(TeePublicKey::FromJson(Json{{"kty", "RSA"},
                                           {"alg", "RSA-OAEP-256"},
                                           {"n", common::Base64UrlEncode(std::string(128, 'A'))},
                                           {"e", "AQAB"}})
                   .ok());
}

}  // namespace
}  // namespace kbs::jose
