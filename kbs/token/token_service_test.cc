#include "kbs/token/token_service.h"

#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "common/encoding.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::token {
namespace {

using common::Json;
using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

// Verified claims as a verifier would produce them.
class FakeVerifier final : public verifier::Verifier {
 public:
  absl::string_view tee() const override { return "snp"; }
  absl::string_view tee_class() const override { return "cpu"; }
  absl::StatusOr<verifier::VerifiedClaims> Verify(const Json&,
                                                  const verifier::EvidenceBinding&) const override {
    verifier::TrustVector tv;
    tv.hardware = 2;
    return MakeVerifiedClaims("snp", Json{{"measurement", std::string(96, 'a')}}, tv);
  }
};

class TokenOidcTest : public ::testing::Test {
 protected:
  TokenOidcTest() : clock_(kT0) {
    claims_ = *FakeVerifier().Verify(Json::object(), {});
    tee_key_ = *jose::TeePublicKey::FromPublicKey(
        common::GenerateEcKey(common::EcCurve::kP256)->get(), jose::KeyManagement::kEcdhEsA256Kw);
    record_.primary = &*claims_;
    record_.tee_pubkey = &*tee_key_;
    record_.nonce = "nonce";
    record_.report_data = std::string(32, 'r');
    record_.image_digests = {"sha256:" + std::string(64, 'b')};
    record_.policy_version = "policy-v7";
  }

  std::unique_ptr<TokenService> Service(TokenService::Options options) {
    options.lifetime = absl::Minutes(5);
    options.clock_skew = absl::Seconds(30);
    return *TokenService::Create(*common::GenerateEcKey(common::EcCurve::kP256), options, &clock_);
  }
  static std::string HeaderKid(const std::string& token) {
    auto header = common::ParseJson(*common::Base64UrlDecode(token.substr(0, token.find('.'))));
    return (*header)["kid"].get<std::string>();
  }
  static std::set<std::string> JwksKids(const TokenService& tokens) {
    std::set<std::string> kids;
    const Json jwks = tokens.Jwks();
    for (const Json& k : jwks["keys"]) kids.insert(k["kid"].get<std::string>());
    return kids;
  }

  common::FakeClock clock_;
  std::optional<verifier::VerifiedClaims> claims_;
  std::optional<jose::TeePublicKey> tee_key_;
  AttestationRecord record_;
};

TEST_F(TokenOidcTest, TokensCarryTheOidcClaims) {
  TokenService::Options options;
  options.issuer = "https://kbs.example.com";
  options.audience = {"vault"};
  auto tokens = Service(options);
  auto prepared = tokens->Prepare(record_);
  ASSERT_TRUE(prepared.ok()) << prepared.status();
  ASSERT_TRUE(tokens->Sign(**prepared, 42).ok());
  auto verified = tokens->Verify((*prepared)->token);
  ASSERT_TRUE(verified.ok()) << verified.status();
  const Json& c = (*verified)->claims;
  EXPECT_EQ(c["iss"], "https://kbs.example.com");
  EXPECT_EQ(c["aud"], "vault");  // one audience: a string
  EXPECT_EQ(c["sub"], "snp:" + std::string(96, 'a'));
  EXPECT_EQ(c["tee"], "snp");
  EXPECT_EQ(c["measurement"], std::string(96, 'a'));
  EXPECT_EQ(c["ear_status"], std::string(claims_->trust_vector().Status()));
  EXPECT_EQ(c["ear_status"], c["submods"]["cpu0"]["ear.status"]);
  EXPECT_EQ(c["image_digests"], Json::array({"sha256:" + std::string(64, 'b')}));
  EXPECT_EQ(c["policy_version"], "policy-v7");
  EXPECT_EQ(c["receipt_index"], 42);
  EXPECT_EQ(c["exp"].get<int64_t>() - c["iat"].get<int64_t>(), 300);
  EXPECT_EQ(c["jti"], (*prepared)->token_id);
  // jti: the issue time in microseconds (16 hex digits), then 32 random hex
  // digits, so ids sort by time.
  const std::string jti = (*prepared)->token_id;
  ASSERT_EQ(jti.size(), 48u);
  std::string stamp;
  for (int shift = 56; shift >= 0; shift -= 8) {
    stamp.push_back(static_cast<char>(absl::ToUnixMicros(kT0) >> shift));
  }
  EXPECT_EQ(jti.substr(0, 16), common::HexEncode(stamp));
  clock_.Advance(absl::Microseconds(1));
  const std::string later = tokens->Prepare(record_).value()->token_id;
  EXPECT_LT(jti, later);
  EXPECT_NE(jti.substr(16), later.substr(16));

  options.audience = {"vault", "gcp"};
  auto issued = Service(options)->Issue(record_);
  ASSERT_TRUE(issued.ok());
  EXPECT_EQ((*issued)->claims["aud"], Json::array({"vault", "gcp"}));
  EXPECT_FALSE((*issued)->claims.contains("receipt_index"));
  options.audience.clear();
  EXPECT_FALSE(Service(options)->Issue(record_).value()->claims.contains("aud"));
}

TEST_F(TokenOidcTest, DiscoveryNeedsAnHttpIssuer) {
  TokenService::Options options;
  auto off = Service(options)->OpenIdConfiguration();
  EXPECT_EQ(off.status().code(), absl::StatusCode::kNotFound);
  options.issuer = "https://kbs.example.com/";
  auto doc = Service(options)->OpenIdConfiguration();
  ASSERT_TRUE(doc.ok()) << doc.status();
  EXPECT_EQ((*doc)["issuer"], "https://kbs.example.com/");
  EXPECT_EQ((*doc)["jwks_uri"], "https://kbs.example.com/.well-known/jwks.json");
  EXPECT_EQ((*doc)["id_token_signing_alg_values_supported"], Json::array({"ES256"}));
  options.jwks_uri = "https://proxy.example.com/kbs/jwks.json";
  EXPECT_EQ(Service(options)->OpenIdConfiguration().value()["jwks_uri"], options.jwks_uri);
}

TEST_F(TokenOidcTest, RotationKeepsOldTokensValidUntilTheyExpire) {
  auto tokens = Service({});
  std::set<std::string> before = JwksKids(*tokens);
  ASSERT_EQ(before.size(), 2u);  // current and the pre-published next key
  std::string a = tokens->Issue(record_).value()->token;
  std::string kid_a = HeaderKid(a);

  clock_.Advance(absl::Minutes(1));
  auto rotation = tokens->RotateSigningKey();
  ASSERT_TRUE(rotation.ok()) << rotation.status();
  EXPECT_EQ(rotation->retired, kid_a);
  EXPECT_TRUE(before.count(rotation->current)) << "the new key was published before it signed";
  std::string b = tokens->Issue(record_).value()->token;
  EXPECT_EQ(HeaderKid(b), rotation->current);
  EXPECT_TRUE(tokens->Verify(a).ok());
  EXPECT_TRUE(tokens->Verify(b).ok());
  EXPECT_TRUE(JwksKids(*tokens).count(kid_a));

  // A expires 5 minutes after issue (T0+5m); its key leaves the JWKS at
  // retirement + lifetime + skew (T0+1m+5m+30s), when a token it signed
  // just before retirement has expired for lagging clocks too.
  clock_.Advance(absl::Minutes(4) + absl::Seconds(1));
  auto expired = tokens->Verify(a);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_TRUE(JwksKids(*tokens).count(kid_a));
  clock_.Set(kT0 + absl::Minutes(6) + absl::Seconds(29));
  EXPECT_TRUE(JwksKids(*tokens).count(kid_a));
  clock_.Advance(absl::Seconds(1));
  EXPECT_FALSE(JwksKids(*tokens).count(kid_a));
  EXPECT_TRUE(JwksKids(*tokens).count(rotation->current));
  EXPECT_TRUE(tokens->Verify(tokens->Issue(record_).value()->token).ok());
}

TEST_F(TokenOidcTest, TwoRotationsWithinALifetimeKeepBothRetiredKeys) {
  auto tokens = Service({});
  std::string a = tokens->Issue(record_).value()->token;
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(tokens->RotateSigningKey().ok());
  std::string b = tokens->Issue(record_).value()->token;
  clock_.Advance(absl::Seconds(10));
  ASSERT_TRUE(tokens->RotateSigningKey().ok());
  std::string c = tokens->Issue(record_).value()->token;
  for (const std::string& t : {a, b, c}) {
    EXPECT_TRUE(tokens->Verify(t).ok());
    EXPECT_TRUE(JwksKids(*tokens).count(HeaderKid(t)));
  }
  EXPECT_EQ(JwksKids(*tokens).size(), 4u);  // two retired, current, next
}

TEST_F(TokenOidcTest, RingAndServiceMustAgreeOnLifetime) {
  SigningKeyRing::Options ring_options;
  ring_options.token_lifetime = absl::Minutes(5);
  auto ring =
      SigningKeyRing::FromKey(*common::GenerateEcKey(common::EcCurve::kP256), ring_options, kT0);
  ASSERT_TRUE(ring.ok());
  TokenService::Options options;
  options.lifetime = absl::Minutes(10);
  EXPECT_EQ(TokenService::Create(*std::move(ring), options, &clock_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(TokenOidcTest, ScheduledRotation) {
  TokenService::Options options;
  options.key_rotation_interval = absl::Hours(24);
  auto tokens = Service(options);
  std::string kid = HeaderKid(tokens->Issue(record_).value()->token);
  clock_.Advance(absl::Hours(23));
  ASSERT_TRUE(tokens->RotateIfDue().ok());
  EXPECT_EQ(HeaderKid(tokens->Issue(record_).value()->token), kid);
  clock_.Advance(absl::Hours(1));
  ASSERT_TRUE(tokens->RotateIfDue().ok());
  EXPECT_NE(HeaderKid(tokens->Issue(record_).value()->token), kid);
}

TEST_F(TokenOidcTest, ForeignTokensAreRejected) {
  auto tokens = Service({});
  auto other = Service({});
  std::string foreign = other->Issue(record_).value()->token;
  auto verified = tokens->Verify(foreign);
  EXPECT_EQ(verified.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(verified.status().message(), HasSubstr("attestation token rejected"));
}

TEST(TokenServiceTest, RejectsNonP256Keys) {
  common::FakeClock clock(absl::FromUnixSeconds(1800000000));
  EXPECT_FALSE(
      TokenService::Create(*common::GenerateEcKey(common::EcCurve::kP384), {}, &clock).ok());
  EXPECT_FALSE(TokenService::Create(*common::GenerateEd25519Key(), {}, &clock).ok());
}

TEST(TokenServiceTest, ResultFromEarClaimsValidatesShape) {
  EXPECT_FALSE(ResultFromEarClaims(Json::object()).ok());
  EXPECT_FALSE(ResultFromEarClaims(Json{{"submods", {{"cpu0", {}}}}}).ok());
  Json two_tees = {
      {"submods", {{"cpu0", {{"ear.veraison.annotated-evidence", {{"snp", {}}, {"tdx", {}}}}}}}}};
  EXPECT_FALSE(ResultFromEarClaims(two_tees).ok());
  Json no_key = {{"submods", {{"cpu0", {{"ear.veraison.annotated-evidence", {{"snp", {}}}}}}}}};
  EXPECT_FALSE(ResultFromEarClaims(no_key).ok());
}

}  // namespace
}  // namespace kbs::token
