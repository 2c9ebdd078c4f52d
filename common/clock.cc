#include "common/clock.h"

#include "absl/time/clock.h"

namespace kbs::common {

absl::Time SystemClock::Now() const { return absl::Now(); }

}  // namespace kbs::common
