#include "kbs/session/recent_cache.h"

#include <memory>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "gtest/gtest.h"

namespace kbs::session {
namespace {

TEST(RecentCacheTest, ReturnsWhatWasPut) {
  RecentCache<const std::string> cache(64);
  cache.Put("a", std::make_shared<const std::string>("one"));
  ASSERT_NE(cache.Get("a"), nullptr);
  EXPECT_EQ(*cache.Get("a"), "one");
  EXPECT_EQ(cache.Get("b"), nullptr);
  cache.Put("a", std::make_shared<const std::string>("two"));
  EXPECT_EQ(*cache.Get("a"), "two");
  EXPECT_EQ(cache.size(), 1u);
}

TEST(RecentCacheTest, EvictsTheOldestBeyondCapacity) {
  // 16 shards of 2: whatever the shard spread, never more than 32 entries,
  // and the newest entry of each shard is kept.
  RecentCache<const int> cache(32);
  for (int i = 0; i < 1000; ++i) cache.Put(absl::StrCat("id", i), std::make_shared<const int>(i));
  EXPECT_LE(cache.size(), 32u);
  EXPECT_NE(cache.Get("id999"), nullptr);
  EXPECT_EQ(cache.Get("id0"), nullptr);
}

TEST(RecentCacheTest, EvictedValuesAreReleased) {
  RecentCache<const int> cache(16);  // one per shard
  auto first = std::make_shared<const int>(1);
  std::weak_ptr<const int> watch = first;
  cache.Put("x", std::move(first));
  for (int i = 0; i < 200; ++i) cache.Put(absl::StrCat("y", i), std::make_shared<const int>(i));
  EXPECT_TRUE(watch.expired());
}

TEST(RecentCacheTest, ZeroCapacityKeepsNothing) {
  RecentCache<const int> cache(0);
  cache.Put("a", std::make_shared<const int>(1));
  EXPECT_EQ(cache.Get("a"), nullptr);
  EXPECT_EQ(cache.size(), 0u);
}

TEST(RecentCacheTest, ConcurrentUse) {
  RecentCache<const int> cache(256);
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&cache, t] {
      for (int i = 0; i < 2000; ++i) {
        std::string id = absl::StrCat(t, "-", i);
        cache.Put(id, std::make_shared<const int>(i));
        auto got = cache.Get(id);
        if (got != nullptr) {
          EXPECT_EQ(*got, i);
        }
      }
    });
  }
  for (auto& th : threads) th.join();
  EXPECT_LE(cache.size(), 256u);
}

}  // namespace
}  // namespace kbs::session
