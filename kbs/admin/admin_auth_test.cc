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

}  // namespace
}  // namespace kbs::admin
