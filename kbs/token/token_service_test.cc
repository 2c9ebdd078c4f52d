#include "kbs/token/token_service.h"

#include <sys/stat.h>

#include <filesystem>

#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::token {
namespace {

using common::Json;

TEST(TokenServiceTest, SigningKeyFileIsCreatedPrivateAndReused) {
  std::string path = (std::filesystem::path(::testing::TempDir()) / "token_key_test.pem").string();
  std::filesystem::remove(path);
  auto created = LoadOrCreateSigningKey(path);
  ASSERT_TRUE(created.ok());
  struct stat st;
  ASSERT_EQ(::stat(path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  auto loaded = LoadOrCreateSigningKey(path);
  ASSERT_TRUE(loaded.ok());
  EXPECT_EQ(EVP_PKEY_eq(created->get(), loaded->get()), 1);
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
