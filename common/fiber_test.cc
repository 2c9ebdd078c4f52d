#include "common/fiber.h"

#include <gtest/gtest.h>

#include <atomic>
#include <boost/asio/io_context.hpp>
#include <boost/asio/post.hpp>
#include <chrono>
#include <memory>
#include <random>
#include <thread>
#include <vector>

namespace kbs::common {
namespace {

namespace asio = boost::asio;

Fiber::Post PostTo(asio::io_context& loop) {
  return [&loop](std::function<void()> fn) { asio::post(loop, std::move(fn)); };
}

TEST(EventTest, ThreadWaitReturnsAfterNotifyFromAnotherThread) {
  auto event = std::make_shared<Event>();
  std::atomic<bool> notified{false};
  std::thread notifier([&] {
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
    notified = true;
    event->Notify();
  });
  event->Wait();
  EXPECT_TRUE(notified.load());
  EXPECT_TRUE(event->notified());
  notifier.join();
}

TEST(EventTest, WaitAfterNotifyReturnsAtOnceAndNotifyIsIdempotent) {
  Event event;
  EXPECT_FALSE(event.notified());
  event.Notify();
  event.Notify();
  event.Wait();
  EXPECT_TRUE(event.notified());
  EXPECT_FALSE(event.fiber_waiting());
}

TEST(FiberTest, RunsToCompletionWithoutWaiting) {
  asio::io_context loop;
  int ran = 0;
  Fiber* inside = nullptr;
  Fiber::Start(
      [&] {
        ++ran;
        inside = Fiber::Current();
      },
      PostTo(loop));
  EXPECT_EQ(ran, 1);  // ran inline, up to its end
  EXPECT_NE(inside, nullptr);
  EXPECT_EQ(Fiber::Current(), nullptr);
  EXPECT_EQ(loop.run(), 0u);  // nothing was posted
}

TEST(FiberTest, WaitSuspendsTheFiberAndTheThreadRunsOthers) {
  asio::io_context loop;
  auto event = std::make_shared<Event>();
  std::vector<std::string> order;
  Fiber::Start(
      [&] {
        order.push_back("a:start");
        event->Wait();
        order.push_back("a:resumed");
        EXPECT_NE(Fiber::Current(), nullptr);
      },
      PostTo(loop));
  // A is suspended: control is back here and on no fiber.
  EXPECT_EQ(Fiber::Current(), nullptr);
  EXPECT_TRUE(event->fiber_waiting());
  Fiber::Start([&] { order.push_back("b"); }, PostTo(loop));
  EXPECT_EQ(order, (std::vector<std::string>{"a:start", "b"}));
  event->Notify();  // posts A's resumption; never runs it inline
  EXPECT_EQ(order.size(), 2u);
  loop.run();
  EXPECT_EQ(order, (std::vector<std::string>{"a:start", "b", "a:resumed"}));
}

TEST(FiberTest, NotifiedBeforeWaitDoesNotSuspend) {
  asio::io_context loop;
  Event event;
  event.Notify();
  bool done = false;
  Fiber::Start(
      [&] {
        event.Wait();
        done = true;
      },
      PostTo(loop));
  EXPECT_TRUE(done);
  EXPECT_EQ(loop.run(), 0u);
}

// Many fibers on one loop thread, woken from another thread in random order
// while the loop runs: each resumes exactly once, on the loop's thread, and
// sees its own stack intact.
TEST(FiberTest, ManyFibersWokenFromAnotherThread) {
  constexpr int kFibers = 2000;
  asio::io_context loop;
  auto guard = asio::make_work_guard(loop);
  std::vector<std::shared_ptr<Event>> events;
  for (int i = 0; i < kFibers; ++i) events.push_back(std::make_shared<Event>());
  std::atomic<int> finished{0};
  std::atomic<int> wrong{0};
  std::thread::id loop_thread;
  std::thread runner([&] {
    loop_thread = std::this_thread::get_id();
    loop.run();
  });
  // Start the fibers on the loop's thread.
  asio::post(loop, [&] {
    for (int i = 0; i < kFibers; ++i) {
      Fiber::Start(
          [&, i] {
            volatile char local[1024];
            for (size_t k = 0; k < sizeof(local); ++k) local[k] = static_cast<char>(i + k);
            events[i]->Wait();
            for (size_t k = 0; k < sizeof(local); ++k) {
              if (local[k] != static_cast<char>(i + k)) ++wrong;
            }
            if (std::this_thread::get_id() != loop_thread) ++wrong;
            ++finished;
          },
          PostTo(loop));
    }
  });
  std::vector<int> order(kFibers);
  for (int i = 0; i < kFibers; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), std::mt19937(7));
  for (int i : order) {
    // Some are notified before their fiber waits, most after.
    events[i]->Notify();
  }
  for (int spin = 0; spin < 10000 && finished.load() < kFibers; ++spin) {
    std::this_thread::sleep_for(std::chrono::milliseconds(1));
  }
  guard.reset();
  runner.join();
  EXPECT_EQ(finished.load(), kFibers);
  EXPECT_EQ(wrong.load(), 0);
}

// A handler may use a good part of its stack (OpenSSL, JSON, the policy
// engine); 512 KiB leaves room.
TEST(FiberTest, DeepStackUse) {
  asio::io_context loop;
  size_t sum = 0;
  Fiber::Start(
      [&] {
        std::function<size_t(int)> recurse = [&](int depth) -> size_t {
          volatile char frame[4096];
          frame[0] = static_cast<char>(depth);
          return depth == 0 ? frame[0] : frame[0] + recurse(depth - 1);
        };
        sum = recurse(80);  // about 330 KiB of frames
      },
      PostTo(loop));
  EXPECT_EQ(sum, 80u * 81u / 2u);
}

// Stacks are pooled per thread up to the most requests it had in progress,
// so a steady load maps none; those no request needed for a whole trim
// period are unmapped, down to a small reserve.
TEST(FiberTest, StackPoolKeepsWhatLoadNeedsAndTrimsIdleStacks) {
  std::thread([] {
    asio::io_context loop;
    // 300 fibers in progress at once.
    auto burst = [&loop] {
      std::vector<std::shared_ptr<Event>> events;
      for (int i = 0; i < 300; ++i) {
        events.push_back(std::make_shared<Event>());
        Fiber::Start([e = events.back()] { e->Wait(); }, PostTo(loop));
      }
      for (auto& e : events) e->Notify();
      loop.run();
      loop.restart();
    };
    burst();
    EXPECT_EQ(fiber_internal::PooledStacks(), 300u);
    // A second burst within the period reuses them: none mapped, none freed.
    burst();
    EXPECT_EQ(fiber_internal::PooledStacks(), 300u);
    // Quiet periods with one request at a time: the stacks no request
    // needed are unmapped, at most 128 per period, down to the reserve of
    // 64 (65 are left: the reserve and the stack the last request used).
    constexpr int64_t kPeriod = 2'000'000'001;
    fiber_internal::AdvanceStackPoolClock(kPeriod);
    Fiber::Start([] {}, PostTo(loop));  // closes the bursts' period
    EXPECT_EQ(fiber_internal::PooledStacks(), 300u);
    fiber_internal::AdvanceStackPoolClock(kPeriod);
    Fiber::Start([] {}, PostTo(loop));
    EXPECT_EQ(fiber_internal::PooledStacks(), 300u - 128u);
    fiber_internal::AdvanceStackPoolClock(kPeriod);
    Fiber::Start([] {}, PostTo(loop));
    EXPECT_EQ(fiber_internal::PooledStacks(), 65u);
    // Idle stays at the reserve.
    fiber_internal::AdvanceStackPoolClock(kPeriod);
    Fiber::Start([] {}, PostTo(loop));
    EXPECT_EQ(fiber_internal::PooledStacks(), 65u);
  }).join();
}

TEST(RunBlockingTest, InlineOnAThread) {
  const std::thread::id here = std::this_thread::get_id();
  std::thread::id ran_on;
  int value = RunBlocking([&] {
    ran_on = std::this_thread::get_id();
    return 7;
  });
  EXPECT_EQ(value, 7);
  EXPECT_EQ(ran_on, here);
}

// On a fiber, the blocking call runs elsewhere and the loop thread keeps
// serving: another fiber completes while the first one's call blocks.
TEST(RunBlockingTest, OnAFiberTheLoopKeepsServing) {
  asio::io_context loop;
  auto guard = asio::make_work_guard(loop);
  auto release = std::make_shared<Event>();
  std::atomic<bool> other_ran{false};
  std::atomic<int> result{0};
  std::thread::id loop_thread, blocking_thread;
  asio::post(loop, [&] {
    loop_thread = std::this_thread::get_id();
    Fiber::Start(
        [&] {
          result = RunBlocking([&] {
            blocking_thread = std::this_thread::get_id();
            release->Wait();  // a plain thread: blocks it
            return 42;
          });
          guard.reset();
        },
        PostTo(loop));
    Fiber::Start([&] { other_ran = true; }, PostTo(loop));
  });
  std::thread notifier([&] {
    while (!other_ran.load()) std::this_thread::sleep_for(std::chrono::milliseconds(1));
    release->Notify();
  });
  loop.run();
  notifier.join();
  EXPECT_EQ(result.load(), 42);
  EXPECT_TRUE(other_ran.load());
  EXPECT_NE(blocking_thread, loop_thread);
  // void results too.
  bool called = false;
  RunBlocking([&] { called = true; });
  EXPECT_TRUE(called);
}

// Past kMaxBlockingThreads busy calls, RunBlocking runs inline (the request
// thread blocks, as without fibers) instead of starting more threads.
TEST(RunBlockingTest, BeyondTheThreadLimitRunsInline) {
  constexpr int kBusy = fiber_internal::kMaxBlockingThreads;
  asio::io_context loop;
  auto release = std::make_shared<Event>();
  std::atomic<int> started{0}, finished{0};
  std::thread::id loop_thread = std::this_thread::get_id();
  for (int i = 0; i < kBusy; ++i) {
    Fiber::Start(
        [&] {
          RunBlocking([&] {
            ++started;
            release->Wait();
          });
          ++finished;
        },
        PostTo(loop));
  }
  while (started.load() < kBusy) std::this_thread::sleep_for(std::chrono::milliseconds(1));
  std::thread::id inline_on;
  Fiber::Start([&] { RunBlocking([&] { inline_on = std::this_thread::get_id(); }); }, PostTo(loop));
  EXPECT_EQ(inline_on, loop_thread);
  release->Notify();
  while (finished.load() < kBusy) {
    loop.run_for(std::chrono::milliseconds(10));
    loop.restart();
  }
  EXPECT_EQ(finished.load(), kBusy);
}

}  // namespace
}  // namespace kbs::common
