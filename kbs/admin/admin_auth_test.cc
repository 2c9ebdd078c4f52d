#include "kbs/admin/admin_auth.h"

#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::admin {
namespace {

using common::Json;
using ::testing::HasSubstr;

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

TEST(AdminAuthTest, ClosedWithoutKeys) {
  common::FakeClock clock(kNow);
  auto auth = *AdminAuthenticator::Create({}, &clock);
  EXPECT_FALSE(auth->enabled());
  EXPECT_THAT(auth->Authorize("x.y.z").message(), HasSubstr("closed"));
}

TEST(AdminAuthTest, AcceptsEs256AndEdDsaWithSkewTolerance) {
  common::FakeClock clock(kNow);
  auto ed = *common::GenerateEd25519Key();
  auto ec = *common::GenerateEcKey(common::EcCurve::kP256);
  auto auth = *AdminAuthenticator::Create(
      {*common::PublicKeyToPem(ed.get()), *common::PublicKeyToPem(ec.get())}, &clock);
  auto ed_signer = *jose::JwtSigner::Create(std::move(ed));
  auto ec_signer = *jose::JwtSigner::Create(std::move(ec));
  Json claims = {{"exp", absl::ToUnixSeconds(kNow) + 30}};
  EXPECT_TRUE(auth->Authorize(*ed_signer->Sign(claims)).ok());
  EXPECT_TRUE(auth->Authorize(*ec_signer->Sign(claims)).ok());
  clock.Advance(absl::Seconds(60));  // 30 s past exp, inside the 60 s leeway
  EXPECT_TRUE(auth->Authorize(*ed_signer->Sign(claims)).ok());
  clock.Advance(absl::Seconds(31));
  EXPECT_THAT(auth->Authorize(*ed_signer->Sign(claims)).message(), HasSubstr("expired"));
  EXPECT_THAT(auth->Authorize("").message(), HasSubstr("without"));
}

TEST(AdminAuthTest, RejectsUnsupportedKeys) {
  common::FakeClock clock(kNow);
  auto rsa = *common::GenerateRsaKey(2048);
  EXPECT_FALSE(AdminAuthenticator::Create({*common::PublicKeyToPem(rsa.get())}, &clock).ok());
  EXPECT_FALSE(AdminAuthenticator::Create({"garbage"}, &clock).ok());
}

// A token names its role (kbsctl writes `role`): an auditor's token is
// refused by the admin API even if its key were trusted there.
TEST(AdminAuthTest, TokensForAnotherRoleAreRefused) {
  common::FakeClock clock(kNow);
  auto key = *common::GenerateEd25519Key();
  const std::string pem = *common::PublicKeyToPem(key.get());
  auto admin = *AdminAuthenticator::Create({pem}, &clock);
  auto auditor = *AdminAuthenticator::Create({pem}, &clock, "auditor");
  auto signer = *jose::JwtSigner::Create(std::move(key));
  const int64_t exp = absl::ToUnixSeconds(kNow) + 30;
  const std::string as_auditor = *signer->Sign(Json{{"exp", exp}, {"role", "auditor"}});
  const std::string as_admin = *signer->Sign(Json{{"exp", exp}, {"role", "admin"}});
  EXPECT_THAT(admin->Authorize(as_auditor).message(),
              HasSubstr("its `role` claim is \"auditor\", not \"admin\""));
  EXPECT_TRUE(admin->Authorize(as_admin).ok());
  EXPECT_TRUE(auditor->Authorize(as_auditor).ok());
  EXPECT_FALSE(auditor->Authorize(as_admin).ok());
  EXPECT_FALSE(admin->Authorize(*signer->Sign(Json{{"exp", exp}, {"role", 1}})).ok());
  // Without a role claim (tokens from other tools) the key alone decides.
  EXPECT_TRUE(admin->Authorize(*signer->Sign(Json{{"exp", exp}})).ok());
}

// The same key written differently (an extra newline, CRLF) has the same
// thumbprint, so the KBS can refuse it for two roles.
TEST(AdminAuthTest, KeyThumbprintsIgnoreHowThePemIsWritten) {
  common::FakeClock clock(kNow);
  auto key = *common::GenerateEcKey(common::EcCurve::kP256);
  std::string pem = *common::PublicKeyToPem(key.get());
  std::string crlf;
  for (char c : pem) {
    if (c == '\n') crlf += '\r';
    crlf += c;
  }
  auto a = *AdminAuthenticator::Create({pem}, &clock);
  auto b = *AdminAuthenticator::Create({pem + "\n"}, &clock, "auditor");
  auto c = *AdminAuthenticator::Create({crlf}, &clock, "auditor");
  ASSERT_EQ(a->key_thumbprints().size(), 1u);
  EXPECT_EQ(a->key_thumbprints(), b->key_thumbprints());
  EXPECT_EQ(a->key_thumbprints(), c->key_thumbprints());
  auto other = *AdminAuthenticator::Create(
      {*common::PublicKeyToPem(common::GenerateEcKey(common::EcCurve::kP256)->get())}, &clock);
  EXPECT_NE(a->key_thumbprints(), other->key_thumbprints());
}

}  // namespace
}  // namespace kbs::admin
