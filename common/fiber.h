// Fibers: a thread that serves many connections runs each request's handler
// on a fiber of its own. When the handler waits on an Event (a receipt
// becoming durable), its fiber is suspended and the thread serves other
// connections; the Event's Notify schedules the fiber back onto its thread.
// Code under the HTTP server stays synchronous: Event::Wait suspends the
// calling fiber, or blocks the calling thread when it runs on no fiber (gRPC
// handlers, tests, tools).
#ifndef KBS_COMMON_FIBER_H_
#define KBS_COMMON_FIBER_H_

#include <atomic>
#include <boost/context/fiber.hpp>
#include <cstdint>
#include <functional>
#include <memory>
#include <optional>
#include <system_error>
#include <thread>
#include <type_traits>

namespace kbs::common {

class Fiber;

// A one-shot event with at most one waiter. Notify may be called from any
// thread, any number of times (the first call counts), and the Event must
// outlive both the waiter's Wait and the notifier's Notify (share it).
class Event final {
 public:
  Event() = default;
  Event(const Event&) = delete;
  Event& operator=(const Event&) = delete;

  // Returns once Notify has been called: at once if it already was;
  // otherwise suspends the calling fiber, or blocks the calling thread.
  void Wait();
  void Notify();

  bool notified() const { return state_.load(std::memory_order_acquire) == kNotified; }
  // Whether a fiber is suspended on this event (Notify costs a post, not a
  // syscall).
  bool fiber_waiting() const { return state_.load(std::memory_order_acquire) == kFiberWaiting; }

 private:
  enum : uint32_t { kIdle = 0, kFiberWaiting = 1, kThreadWaiting = 2, kNotified = 3 };
  // A futex word.
  std::atomic<uint32_t> state_{kIdle};
  // The suspended fiber; written before state_ becomes kFiberWaiting.
  Fiber* fiber_ = nullptr;
};

// A function running on its own stack, suspended and resumed on the thread
// that started it.
class Fiber final : public std::enable_shared_from_this<Fiber> {
 public:
  // Schedules a function to run later on the fiber's thread; never runs it
  // inline. Must be callable from any thread.
  using Post = std::function<void(std::function<void()>)>;

  // Runs `fn` on a new fiber until it returns or first waits. `fn` must not
  // throw. Each stack is 512 KiB with a guard page below it; stacks are
  // reused per thread. When no stack can be had (memory or mappings
  // exhausted), `fn` runs on the calling thread instead, and its waits block
  // the thread.
  static void Start(std::function<void()> fn, Post post);
  // The fiber running on this thread, or nullptr.
  static Fiber* Current();

  // Public for std::make_shared; use Start.
  Fiber(std::function<void()> fn, Post post);
  Fiber(const Fiber&) = delete;
  Fiber& operator=(const Fiber&) = delete;

 private:
  friend class Event;
  // On the fiber's thread: runs it until it finishes or suspends.
  void Resume();
  // On the fiber: returns to whoever resumed it.
  void Suspend();
  // Any thread: posts a Resume.
  void ScheduleResume();

  std::function<void()> fn_;
  Post post_;
  boost::context::fiber context_;  // the fiber, while it is not running
  boost::context::fiber caller_;   // while it runs: where Suspend returns to
  bool finished_ = false;
  // Keeps an unfinished fiber alive between its suspension and resumption.
  std::shared_ptr<Fiber> self_;
};

namespace fiber_internal {
// Threads RunBlocking may have running at once; past that (or when no thread
// can be started) calls run inline, blocking their request thread, as they
// would without fibers: a flood of slow calls stalls, it does not exhaust
// the process's threads.
inline constexpr int kMaxBlockingThreads = 64;
bool AcquireBlockingThread();
void ReleaseBlockingThread();
// Tests: stacks pooled on this thread, and moving its pool's clock forward.
size_t PooledStacks();
void AdvanceStackPoolClock(int64_t nanos);
}  // namespace fiber_internal

// Runs `fn` (which may block for long: a network fetch, a lock held by such
// a fetch) where it does not stall other requests: on a thread of its own
// while the calling fiber is suspended; inline when called on no fiber, or
// when kMaxBlockingThreads are busy. `fn` must not throw; what it references
// stays alive (the caller waits).
template <typename Fn>
auto RunBlocking(Fn&& fn) -> decltype(fn()) {
  using Result = decltype(fn());
  if (Fiber::Current() == nullptr || !fiber_internal::AcquireBlockingThread()) return fn();
  struct Shared {
    Event done;
    std::optional<std::conditional_t<std::is_void_v<Result>, bool, Result>> result;
  };
  auto shared = std::make_shared<Shared>();
  try {
    std::thread([shared, &fn] {
      if constexpr (std::is_void_v<Result>) {
        fn();
        shared->result.emplace(true);
      } else {
        shared->result.emplace(fn());
      }
      fiber_internal::ReleaseBlockingThread();
      shared->done.Notify();
    }).detach();
  } catch (const std::system_error&) {  // no thread to be had
    fiber_internal::ReleaseBlockingThread();
    return fn();
  }
  shared->done.Wait();
  if constexpr (!std::is_void_v<Result>) return std::move(*shared->result);
}

}  // namespace kbs::common

#endif  // KBS_COMMON_FIBER_H_
