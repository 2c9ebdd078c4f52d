#include "kbs/session/session_store.h"

#include <set>
#include <thread>

#include "gtest/gtest.h"

namespace kbs::session {
namespace {

const absl::Time kNow = absl::FromUnixSeconds(1800000000);

TEST(SessionStoreTest, LifecycleAndSingleUseChallenge) {
  SessionStore store({absl::Minutes(5), 10});
  auto s = store.Create("sample", common::HashAlgorithm::kSha384, kNow);
  ASSERT_TRUE(s.ok());
  EXPECT_EQ(s->id.size(), 32u);
  EXPECT_EQ(s->nonce.size(), 44u);
  EXPECT_EQ(s->expires, kNow + absl::Minutes(5));
  EXPECT_FALSE(store.GetAttested(s->id, kNow).has_value());
  EXPECT_FALSE(store.IsAttested(s->id, kNow));
  auto c = store.ClaimChallenge(s->id, kNow);
  ASSERT_TRUE(c.ok());
  EXPECT_EQ(c->nonce, s->nonce);
  EXPECT_EQ(c->tee, "sample");
  EXPECT_FALSE(store.ClaimChallenge(s->id, kNow).ok());
  EXPECT_FALSE(store.CompleteAttestation("unknown", "{}", kNow + absl::Minutes(5)).ok());
  ASSERT_TRUE(store.CompleteAttestation(s->id, R"({"a":1})", kNow + absl::Minutes(3)).ok());
  EXPECT_EQ(store.GetAttested(s->id, kNow), R"({"a":1})");
  EXPECT_TRUE(store.IsAttested(s->id, kNow));
  EXPECT_FALSE(store.IsAttested("unknown", kNow));
  // The token's expiry and the session's both bound the result.
  EXPECT_FALSE(store.GetAttested(s->id, kNow + absl::Minutes(3)).has_value());
  EXPECT_FALSE(store.GetAttested(s->id, kNow + absl::Minutes(5)).has_value());
  EXPECT_FALSE(store.IsAttested(s->id, kNow + absl::Minutes(3)));
  EXPECT_FALSE(store.IsAttested(s->id, kNow + absl::Minutes(5)));
}

TEST(SessionStoreTest, ExpiryPurgeAndCap) {
  SessionStore store({absl::Minutes(1), 2});
  auto a = store.Create("sample", common::HashAlgorithm::kSha384, kNow);
  ASSERT_TRUE(a.ok());
  EXPECT_FALSE(store.ClaimChallenge(a->id, kNow + absl::Minutes(1)).ok());
  ASSERT_TRUE(store.Create("sample", common::HashAlgorithm::kSha384, kNow).ok());
  EXPECT_EQ(store.Create("sample", common::HashAlgorithm::kSha384, kNow).status().code(),
            absl::StatusCode::kUnavailable);
  EXPECT_EQ(store.size(), 2u);
  EXPECT_EQ(store.PurgeExpired(kNow + absl::Minutes(2)), 2u);
  EXPECT_EQ(store.size(), 0u);
  EXPECT_TRUE(store.Create("sample", common::HashAlgorithm::kSha384, kNow).ok());
}

TEST(SessionStoreTest, UniqueIdsUnderConcurrency) {
  SessionStore store({absl::Minutes(5), 100000});
  std::vector<std::thread> threads;
  std::vector<std::vector<std::string>> ids(4);
  for (int t = 0; t < 4; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < 500; ++i) {
        ids[t].push_back(store.Create("sample", common::HashAlgorithm::kSha384, kNow)->id);
      }
    });
  }
  for (auto& th : threads) th.join();
  std::set<std::string> unique;
  for (auto& v : ids) unique.insert(v.begin(), v.end());
  EXPECT_EQ(unique.size(), 2000u);
  EXPECT_EQ(store.size(), 2000u);
}

}  // namespace
}  // namespace kbs::session
