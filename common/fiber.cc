#include "common/fiber.h"

#include <linux/futex.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <algorithm>
#include <boost/context/protected_fixedsize_stack.hpp>
#include <cstdlib>
#include <ctime>
#include <utility>
#include <vector>

namespace kbs::common {
namespace {

namespace ctx = boost::context;

constexpr size_t kStackBytes = 512 << 10;
// Stacks kept per thread for reuse: a fresh mmap'd stack page-faults on
// every page a request touches, and mapping and unmapping one per request
// takes the process's mmap lock and shoots down TLBs on every core, which
// under load costs more than the requests' work. So a thread keeps up to
// kPooledStacks (as many as it had requests in progress); stacks that stayed
// unused for a whole trim period are unmapped, kTrimBatch at a time, down to
// kKeptStacks. Trimming happens when the thread starts or ends a fiber: a
// thread that falls idle keeps its stacks until its next request.
constexpr size_t kPooledStacks = 1024;
constexpr size_t kKeptStacks = 64;
constexpr size_t kTrimBatch = 128;
constexpr int64_t kTrimPeriodNanos = 2'000'000'000;

thread_local Fiber* current_fiber = nullptr;

int64_t CoarseNowNanos() {
  timespec ts;
  clock_gettime(CLOCK_MONOTONIC_COARSE, &ts);
  return static_cast<int64_t>(ts.tv_sec) * 1'000'000'000 + ts.tv_nsec;
}

// Guard-paged stacks, reused on the thread that freed them (a fiber starts,
// runs and ends on one thread, so its stack is freed where it was taken).
class StackPool final {
 public:
  ~StackPool() {
    for (ctx::stack_context& sc : free_) ctx::protected_fixedsize_stack(kStackBytes).deallocate(sc);
  }
  ctx::stack_context Take() {
    MaybeTrim();
    if (free_.empty()) {
      low_water_ = 0;
      return ctx::protected_fixedsize_stack(kStackBytes).allocate();
    }
    ctx::stack_context sc = free_.back();  // the most recently used: its pages are warm
    free_.pop_back();
    low_water_ = std::min(low_water_, free_.size());
    return sc;
  }
  void Give(ctx::stack_context& sc) {
    if (free_.size() < kPooledStacks) {
      free_.push_back(sc);
    } else {
      ctx::protected_fixedsize_stack(kStackBytes).deallocate(sc);
    }
    MaybeTrim();
  }

 private:
  // Unmaps the stacks no request needed during the last period (the fewest
  // the pool held), coldest first, keeping kKeptStacks.
  void MaybeTrim() {
    const int64_t now = CoarseNowNanos() + clock_offset_;
    if (now - period_start_ < kTrimPeriodNanos) return;
    if (low_water_ > kKeptStacks) {
      // At most kTrimBatch per call: unmapping costs the mmap lock and a
      // TLB shootdown each, paid by the request that trims.
      const size_t spare = std::min({low_water_ - kKeptStacks, free_.size(), kTrimBatch});
      for (size_t i = 0; i < spare; ++i) {
        ctx::protected_fixedsize_stack(kStackBytes).deallocate(free_[i]);
      }
      free_.erase(free_.begin(), free_.begin() + static_cast<ptrdiff_t>(spare));
    }
    period_start_ = now;
    low_water_ = free_.size();
  }

  friend size_t fiber_internal::PooledStacks();
  friend void fiber_internal::AdvanceStackPoolClock(int64_t);

  std::vector<ctx::stack_context> free_;
  int64_t clock_offset_ = 0;  // tests
  // The fewest stacks the pool held since period_start_.
  size_t low_water_ = 0;
  int64_t period_start_ = CoarseNowNanos();
};

thread_local StackPool stack_pool;

}  // namespace

size_t fiber_internal::PooledStacks() { return stack_pool.free_.size(); }
void fiber_internal::AdvanceStackPoolClock(int64_t nanos) { stack_pool.clock_offset_ += nanos; }

namespace {

// The StackAllocator concept of Boost.Context over the thread's pool.
struct PooledStack {
  ctx::stack_context allocate() { return stack_pool.Take(); }
  void deallocate(ctx::stack_context& sc) { stack_pool.Give(sc); }
};

void FutexWait(std::atomic<uint32_t>* word, uint32_t expected) {
  // Returns at once if the word changed (EAGAIN), or on EINTR: callers loop.
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAIT_PRIVATE, expected, nullptr,
          nullptr, 0);
}

void FutexWakeAll(std::atomic<uint32_t>* word) {
  syscall(SYS_futex, reinterpret_cast<uint32_t*>(word), FUTEX_WAKE_PRIVATE, INT32_MAX, nullptr,
          nullptr, 0);
}

}  // namespace

void Event::Wait() {
  Fiber* fiber = Fiber::Current();
  uint32_t state = kIdle;
  if (fiber != nullptr) {
    fiber_ = fiber;
    // Published by the exchange; Notify reads fiber_ only after seeing it.
    if (!state_.compare_exchange_strong(state, kFiberWaiting, std::memory_order_acq_rel)) {
      return;  // already notified
    }
    fiber->Suspend();  // resumed by Notify's post
    return;
  }
  if (!state_.compare_exchange_strong(state, kThreadWaiting, std::memory_order_acq_rel) &&
      state == kNotified) {
    return;
  }
  while (state_.load(std::memory_order_acquire) != kNotified) FutexWait(&state_, kThreadWaiting);
}

void Event::Notify() {
  switch (state_.exchange(kNotified, std::memory_order_acq_rel)) {
    case kFiberWaiting:
      fiber_->ScheduleResume();
      break;
    case kThreadWaiting:
      FutexWakeAll(&state_);
      break;
    default:  // nobody waits yet, or already notified
      break;
  }
}

Fiber::Fiber(std::function<void()> fn, Post post) : fn_(std::move(fn)), post_(std::move(post)) {}

void Fiber::Start(std::function<void()> fn, Post post) {
  auto fiber = std::make_shared<Fiber>(std::move(fn), std::move(post));
  Fiber* f = fiber.get();
  try {
    f->context_ = ctx::fiber(std::allocator_arg, PooledStack(), [f](ctx::fiber&& caller) {
      f->caller_ = std::move(caller);
      f->fn_();
      f->fn_ = nullptr;
      f->finished_ = true;
      return std::move(f->caller_);
    });
  } catch (const std::exception&) {  // bad_alloc, or mmap/mprotect failing
    // Nothing ran yet: run it here (not on a fiber, so it blocks to wait).
    f->fn_();
    return;
  }
  f->self_ = std::move(fiber);
  f->Resume();
}

namespace fiber_internal {
namespace {
std::atomic<int> blocking_threads{0};
}  // namespace

bool AcquireBlockingThread() {
  if (blocking_threads.fetch_add(1, std::memory_order_acq_rel) < kMaxBlockingThreads) return true;
  blocking_threads.fetch_sub(1, std::memory_order_acq_rel);
  return false;
}

void ReleaseBlockingThread() { blocking_threads.fetch_sub(1, std::memory_order_acq_rel); }

}  // namespace fiber_internal

Fiber* Fiber::Current() { return current_fiber; }

void Fiber::Resume() {
  Fiber* previous = current_fiber;
  current_fiber = this;
  context_ = std::move(context_).resume();
  current_fiber = previous;
  if (finished_) {
    // The fiber returned: its context is empty and its stack back in the
    // pool. Dropping the last reference may delete this, so it goes last.
    std::shared_ptr<Fiber> last = std::move(self_);
  }
}

void Fiber::Suspend() { caller_ = std::move(caller_).resume(); }

void Fiber::ScheduleResume() {
  post_([self = shared_from_this()] { self->Resume(); });
}

}  // namespace kbs::common
