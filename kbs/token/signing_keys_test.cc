#include "kbs/token/signing_keys.h"

#include <sys/stat.h>

#include <filesystem>
#include <set>

#include "common/files.h"
#include "common/jose/jwt.h"
#include "common/json.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::token {
namespace {

using ::testing::HasSubstr;

const absl::Time kT0 = absl::FromUnixSeconds(1800000000);

class SigningKeyRingTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::path(::testing::TempDir()) /
           ::testing::UnitTest::GetInstance()->current_test_info()->name();
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_);
    options_.path = (dir_ / "token-keys.json").string();
    options_.token_lifetime = absl::Minutes(5);
    options_.clock_skew = absl::Seconds(60);
  }

  static std::string Kid(const EVP_PKEY* key) { return *jose::JwkThumbprint(key); }
  static std::set<std::string> Kids(const std::vector<const EVP_PKEY*>& keys) {
    std::set<std::string> out;
    for (const EVP_PKEY* k : keys) out.insert(Kid(k));
    return out;
  }
  static std::string KidIn(const SigningKeyRing& ring, SigningKeyState state) {
    for (const SigningKeyInfo& k : ring.Keys()) {
      if (k.state == state) return k.kid;
    }
    return "";
  }

  std::filesystem::path dir_;
  SigningKeyRing::Options options_;
};

TEST_F(SigningKeyRingTest, CreatesAPrivateRingWithCurrentAndNextAndReopensIt) {
  auto ring = SigningKeyRing::Open(options_, kT0);
  ASSERT_TRUE(ring.ok()) << ring.status();
  struct stat st;
  ASSERT_EQ(::stat(options_.path.c_str(), &st), 0);
  EXPECT_EQ(st.st_mode & 0777, 0600u);
  std::string current = KidIn(**ring, SigningKeyState::kCurrent);
  std::string next = KidIn(**ring, SigningKeyState::kNext);
  ASSERT_FALSE(current.empty());
  ASSERT_FALSE(next.empty());
  EXPECT_NE(current, next);
  EXPECT_EQ(Kid((*ring)->current_key()), current);
  // The next key is published ahead of use but verifies nothing yet.
  EXPECT_EQ(Kids((*ring)->PublishedKeys(kT0)), (std::set<std::string>{current, next}));
  EXPECT_EQ(Kids((*ring)->VerificationKeys(kT0)), (std::set<std::string>{current}));

  auto reopened = SigningKeyRing::Open(options_, kT0 + absl::Hours(1));
  ASSERT_TRUE(reopened.ok()) << reopened.status();
  EXPECT_EQ(KidIn(**reopened, SigningKeyState::kCurrent), current);
  EXPECT_EQ(KidIn(**reopened, SigningKeyState::kNext), next);
  EXPECT_EQ((*reopened)->current_since(), kT0);
}

TEST_F(SigningKeyRingTest, RotationPromotesNextAndKeepsTheOldKeyPublishedUntilItsTokensExpire) {
  auto ring = *SigningKeyRing::Open(options_, kT0);
  std::string first = KidIn(*ring, SigningKeyState::kCurrent);
  std::string second = KidIn(*ring, SigningKeyState::kNext);
  const absl::Time t1 = kT0 + absl::Hours(2);
  auto rotation = ring->Rotate(t1);
  ASSERT_TRUE(rotation.ok()) << rotation.status();
  EXPECT_EQ(rotation->retired, first);
  EXPECT_EQ(rotation->current, second);
  EXPECT_EQ(Kid(ring->current_key()), second);
  std::string third = KidIn(*ring, SigningKeyState::kNext);
  ASSERT_FALSE(third.empty());
  EXPECT_EQ(ring->current_since(), t1);

  const absl::Time until = t1 + absl::Minutes(5) + absl::Seconds(60);
  for (const SigningKeyInfo& k : ring->Keys()) {
    if (k.kid == first) {
      EXPECT_EQ(k.state, SigningKeyState::kRetired);
      ASSERT_TRUE(k.published_until.has_value());
      EXPECT_EQ(*k.published_until, until);
    }
  }
  EXPECT_EQ(Kids(ring->PublishedKeys(until - absl::Seconds(1))),
            (std::set<std::string>{first, second, third}));
  EXPECT_EQ(Kids(ring->VerificationKeys(until - absl::Seconds(1))),
            (std::set<std::string>{first, second}));
  EXPECT_EQ(Kids(ring->PublishedKeys(until)), (std::set<std::string>{second, third}));
  EXPECT_EQ(Kids(ring->VerificationKeys(until)), (std::set<std::string>{second}));

  // Durable: a restart sees the same ring; once the publication ended, the
  // retired key is dropped from the file too.
  auto reopened = *SigningKeyRing::Open(options_, t1 + absl::Seconds(10));
  EXPECT_EQ(reopened->Keys().size(), 3u);
  EXPECT_EQ(Kid(reopened->current_key()), second);
  auto later = *SigningKeyRing::Open(options_, until);
  EXPECT_EQ(later->Keys().size(), 2u);
  auto text = common::ReadFile(options_.path);
  ASSERT_TRUE(text.ok());
  EXPECT_THAT(*text, ::testing::Not(HasSubstr(first)));
}

TEST_F(SigningKeyRingTest, ALongerLifetimeAfterRestartExtendsThePublicationOfTheRetiredKey) {
  (void)*SigningKeyRing::Open(options_, kT0);
  options_.token_lifetime = absl::Hours(1);
  auto ring = *SigningKeyRing::Open(options_, kT0);
  std::string first = KidIn(*ring, SigningKeyState::kCurrent);
  // Back to 5 minutes: tokens signed under the 1-hour setting still count.
  options_.token_lifetime = absl::Minutes(5);
  ring = *SigningKeyRing::Open(options_, kT0);
  ASSERT_TRUE(ring->Rotate(kT0).ok());
  for (const SigningKeyInfo& k : ring->Keys()) {
    if (k.kid == first) {
      EXPECT_EQ(*k.published_until, kT0 + absl::Hours(1) + absl::Seconds(60));
    }
  }
}

TEST_F(SigningKeyRingTest, ImportsTheLegacySigningKeyAsCurrent) {
  std::string legacy = (dir_ / "token-signing-key.pem").string();
  auto key = *common::GenerateEcKey(common::EcCurve::kP256);
  ASSERT_TRUE(common::WriteFileAtomic(legacy, *common::PrivateKeyToPem(key.get())).ok());
  auto ring = SigningKeyRing::Open(options_, kT0, legacy);
  ASSERT_TRUE(ring.ok()) << ring.status();
  EXPECT_EQ(KidIn(**ring, SigningKeyState::kCurrent), Kid(key.get()));
  EXPECT_FALSE(common::FileExists(legacy));
  EXPECT_EQ(Kid(SigningKeyRing::Open(options_, kT0, legacy).value()->current_key()),
            Kid(key.get()));
}

TEST_F(SigningKeyRingTest, RefusesALegacyKeyThatIsNotP256) {
  std::string legacy = (dir_ / "token-signing-key.pem").string();
  auto key = *common::GenerateEcKey(common::EcCurve::kP384);
  ASSERT_TRUE(common::WriteFileAtomic(legacy, *common::PrivateKeyToPem(key.get())).ok());
  auto ring = SigningKeyRing::Open(options_, kT0, legacy);
  ASSERT_FALSE(ring.ok());
  EXPECT_THAT(ring.status().message(), HasSubstr("P-256"));
  EXPECT_TRUE(common::FileExists(legacy));
}

TEST_F(SigningKeyRingTest, RefusesDamagedRingFiles) {
  (void)*SigningKeyRing::Open(options_, kT0);
  const std::string original = *common::ReadFile(options_.path);
  auto json = *common::ParseJson(original);
  auto expect_refused = [&](const common::Json& doc, absl::string_view why) {
    ASSERT_TRUE(common::WriteFileAtomic(options_.path, doc.dump()).ok());
    auto ring = SigningKeyRing::Open(options_, kT0);
    ASSERT_FALSE(ring.ok()) << why;
    EXPECT_THAT(ring.status().message(), HasSubstr(options_.path)) << why;
    EXPECT_THAT(ring.status().message(), HasSubstr(why));
  };
  common::Json wrong_kid = json;
  wrong_kid["keys"][0]["kid"] = "AAAA";
  expect_refused(wrong_kid, "thumbprint");
  common::Json two_current = json;
  for (auto& k : two_current["keys"]) {
    k["state"] = "current";
    k["activated"] = k["created"];
  }
  expect_refused(two_current, "exactly one current key");
  common::Json bad_state = json;
  bad_state["keys"][1]["state"] = "revoked";
  expect_refused(bad_state, "unknown key state");
  common::Json bad_format = json;
  bad_format["format"] = "other";
  expect_refused(bad_format, "format");
  common::Json no_pem = json;
  no_pem["keys"][0].erase("private_key");
  expect_refused(no_pem, "keys[0]");
  ASSERT_TRUE(common::WriteFileAtomic(options_.path, "{").ok());
  EXPECT_FALSE(SigningKeyRing::Open(options_, kT0).ok());
  // Group- or world-readable files are refused: they hold private keys.
  ASSERT_TRUE(common::WriteFileAtomic(options_.path, original, 0644).ok());
  EXPECT_FALSE(SigningKeyRing::Open(options_, kT0).ok());
}

TEST_F(SigningKeyRingTest, AFailedRotationChangesNothing) {
  auto ring = *SigningKeyRing::Open(options_, kT0);
  std::vector<SigningKeyInfo> before = ring->Keys();
  std::filesystem::remove_all(dir_);  // the ring file can no longer be written
  auto rotation = ring->Rotate(kT0 + absl::Hours(1));
  ASSERT_FALSE(rotation.ok());
  EXPECT_EQ(rotation.status().code(), absl::StatusCode::kUnavailable);
  std::vector<SigningKeyInfo> after = ring->Keys();
  ASSERT_EQ(after.size(), before.size());
  for (size_t i = 0; i < before.size(); ++i) {
    EXPECT_EQ(after[i].kid, before[i].kid);
    EXPECT_EQ(after[i].state, before[i].state);
  }
}

TEST_F(SigningKeyRingTest, InMemoryRingsRotateWithoutAFile) {
  options_.path.clear();
  auto key = *common::GenerateEcKey(common::EcCurve::kP256);
  std::string kid = Kid(key.get());
  auto ring = *SigningKeyRing::FromKey(std::move(key), options_, kT0);
  EXPECT_EQ(Kid(ring->current_key()), kid);
  ASSERT_TRUE(ring->Rotate(kT0).ok());
  EXPECT_NE(Kid(ring->current_key()), kid);
  EXPECT_FALSE(std::filesystem::exists(dir_ / "token-keys.json"));
}

}  // namespace
}  // namespace kbs::token
