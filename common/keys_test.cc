#include "common/keys.h"

#include "gtest/gtest.h"

namespace kbs::common {
namespace {

TEST(KeysTest, EcPointRoundTrip) {
  for (EcCurve curve : {EcCurve::kP256, EcCurve::kP384, EcCurve::kP521}) {
    auto key = GenerateEcKey(curve);
    ASSERT_TRUE(key.ok());
    auto point = GetEcPublicPoint(key->get());
    ASSERT_TRUE(point.ok()) << point.status();
    EXPECT_EQ(point->x.size(), EcCoordinateSize(curve));
    auto pub = EcPublicKeyFromPoint(curve, point->x, point->y);
    ASSERT_TRUE(pub.ok()) << pub.status();
    EXPECT_EQ(EVP_PKEY_eq(key->get(), pub->get()), 1);
  }
}

TEST(KeysTest, RejectsPointOffCurve) {
  auto key = GenerateEcKey(EcCurve::kP256);
  ASSERT_TRUE(key.ok());
  auto point = GetEcPublicPoint(key->get());
  std::string y = point->y;
  y[31] ^= 1;
  EXPECT_FALSE(EcPublicKeyFromPoint(EcCurve::kP256, point->x, y).ok());
  EXPECT_FALSE(EcPublicKeyFromPoint(EcCurve::kP256, point->x, "short").ok());
}

TEST(KeysTest, PemRoundTrip) {
  auto key = GenerateEd25519Key();
  ASSERT_TRUE(key.ok());
  auto priv = PrivateKeyToPem(key->get());
  auto pub = PublicKeyToPem(key->get());
  ASSERT_TRUE(priv.ok() && pub.ok());
  auto priv2 = PrivateKeyFromPem(*priv);
  auto pub2 = PublicKeyFromPem(*pub);
  ASSERT_TRUE(priv2.ok() && pub2.ok());
  EXPECT_EQ(EVP_PKEY_eq(priv2->get(), pub2->get()), 1);
  EXPECT_FALSE(PublicKeyFromPem("not a pem").ok());
}

TEST(KeysTest, RsaNumbersRoundTrip) {
  auto key = GenerateRsaKey(2048);
  ASSERT_TRUE(key.ok());
  auto numbers = GetRsaPublicNumbers(key->get());
  ASSERT_TRUE(numbers.ok());
  EXPECT_EQ(numbers->n.size(), 256u);
  EXPECT_EQ(numbers->e, std::string("\x01\x00\x01", 3));
  auto pub = RsaPublicKeyFromNumbers(numbers->n, numbers->e);
  ASSERT_TRUE(pub.ok());
  EXPECT_EQ(EVP_PKEY_eq(key->get(), pub->get()), 1);
}

}  // namespace
}  // namespace kbs::common
