#include "common/jose/jwt.h"

#include "absl/strings/str_split.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::jose {
namespace {

using common::Json;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

common::EvpPkeyPtr PublicOnly(const EVP_PKEY* key) {
  return *common::PublicKeyFromPem(*common::PublicKeyToPem(key));
}

class JwtTest : public ::testing::TestWithParam<bool /*ed25519*/> {
 protected:
  common::EvpPkeyPtr NewKey() {
    return GetParam() ? *common::GenerateEd25519Key()
                      : *common::GenerateEcKey(common::EcCurve::kP256);
  }
};

TEST_P(JwtTest, SignVerifyRoundTrip) {
  common::EvpPkeyPtr key = NewKey();
  JwtVerifier verifier;
  ASSERT_TRUE(verifier.AddKey(PublicOnly(key.get())).ok());
  auto signer = JwtSigner::Create(std::move(key));
  ASSERT_TRUE(signer.ok());
  Json claims = {{"iss", "kbs"}, {"iat", 1800000000}, {"exp", 1800000300}, {"x", "y"}};
  auto token = (*signer)->Sign(claims);
  ASSERT_TRUE(token.ok());
  JwtValidationOptions options;
  options.issuer = "kbs";
  auto verified = verifier.Verify(*token, kNow, options);
  ASSERT_TRUE(verified.ok()) << verified.status();
  EXPECT_EQ(verified->claims()["x"], "y");
  EXPECT_EQ(verified->header()["kid"], (*signer)->kid());
  EXPECT_EQ(verified->header()["alg"], GetParam() ? "EdDSA" : "ES256");
}

TEST_P(JwtTest, RejectsExpiredFutureAndWrongIssuer) {
  common::EvpPkeyPtr key = NewKey();
  JwtVerifier verifier;
  ASSERT_TRUE(verifier.AddKey(PublicOnly(key.get())).ok());
  auto signer = *JwtSigner::Create(std::move(key));
  JwtValidationOptions options;
  auto expired = signer->Sign({{"exp", 1800000000}});
  EXPECT_THAT(verifier.Verify(*expired, kNow, options).status().message(), HasSubstr("expired"));
  auto no_exp = signer->Sign({{"iat", 1}});
  EXPECT_THAT(verifier.Verify(*no_exp, kNow, options).status().message(), HasSubstr("no `exp`"));
  auto nbf = signer->Sign({{"exp", 1900000000}, {"nbf", 1850000000}});
  EXPECT_FALSE(verifier.Verify(*nbf, kNow, options).ok());
  options.issuer = "kbs";
  auto wrong_iss = signer->Sign({{"exp", 1900000000}, {"iss", "other"}});
  EXPECT_THAT(verifier.Verify(*wrong_iss, kNow, options).status().message(), HasSubstr("issuer"));
  options.issuer.reset();
  options.max_lifetime = absl::Minutes(10);
  auto long_lived = signer->Sign({{"exp", 1900000000}, {"iat", 1800000000}});
  EXPECT_THAT(verifier.Verify(*long_lived, kNow, options).status().message(),
              HasSubstr("lifetime"));
}

TEST_P(JwtTest, RejectsOtherKeyAndTampering) {
  common::EvpPkeyPtr key = NewKey();
  common::EvpPkeyPtr other = NewKey();
  JwtVerifier verifier;
  ASSERT_TRUE(verifier.AddKey(PublicOnly(key.get())).ok());
  auto other_signer = *JwtSigner::Create(std::move(other));
  auto token = other_signer->Sign({{"exp", 1900000000}});
  auto result = verifier.Verify(*token, kNow, {});
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);

  auto signer = *JwtSigner::Create(std::move(key));
  std::string good = *signer->Sign({{"exp", 1900000000}, {"role", "admin"}});
  std::vector<std::string> parts = absl::StrSplit(good, '.');
  std::string forged_payload =
      common::Base64UrlEncode(std::string(R"({"exp":1900000000,"role":"root"})"));
  std::string forged = parts[0] + "." + forged_payload + "." + parts[2];
  EXPECT_EQ(verifier.Verify(forged, kNow, {}).status().code(), absl::StatusCode::kUnauthenticated);

  // alg "none" and malformed tokens.
  std::string none_header = common::Base64UrlEncode(std::string(R"({"alg":"none"})"));
  EXPECT_FALSE(verifier.Verify(none_header + "." + parts[1] + ".", kNow, {}).ok());
  EXPECT_FALSE(verifier.Verify(none_header + "." + parts[1] + ".AAAA", kNow, {}).ok());
  EXPECT_FALSE(verifier.Verify("abc", kNow, {}).ok());
  EXPECT_FALSE(verifier.Verify("a.b.c.d", kNow, {}).ok());
  EXPECT_FALSE(verifier.Verify("!!.!!.!!", kNow, {}).ok());
}

INSTANTIATE_TEST_SUITE_P(Algorithms, JwtTest, ::testing::Values(false, true),
                         [](const auto& info) { return info.param ? "EdDSA" : "ES256"; });

TEST(JwkTest, PublicJwkHasThumbprintKid) {
  auto key = *common::GenerateEcKey(common::EcCurve::kP256);
  auto jwk = PublicJwk(key.get());
  ASSERT_TRUE(jwk.ok());
  EXPECT_EQ((*jwk)["kty"], "EC");
  EXPECT_EQ((*jwk)["alg"], "ES256");
  EXPECT_EQ((*jwk)["kid"], *JwkThumbprint(key.get()));
  EXPECT_EQ((*jwk)["kid"].get<std::string>().size(), 43u);
}

}  // namespace
}  // namespace kbs::jose
