// Minimal structured logging to stderr (abseil's logging library is newer
// than Debian 12's abseil). One line per event: time, level, message.
// Never pass secrets, keys or raw evidence.
#ifndef KBS_COMMON_LOG_H_
#define KBS_COMMON_LOG_H_

#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"

namespace kbs::common {

enum class LogLevel { kDebug = 0, kInfo = 1, kWarning = 2, kError = 3 };

// Process-wide minimum level (default kInfo). Thread-safe.
void SetLogLevel(LogLevel level);
bool LogEnabled(LogLevel level);
void LogLine(LogLevel level, absl::string_view message);

}  // namespace kbs::common

// KBS_LOG(kInfo, "listening on ", address);
#define KBS_LOG(level, ...)                                                                \
  do {                                                                                     \
    if (::kbs::common::LogEnabled(::kbs::common::LogLevel::level)) {                       \
      ::kbs::common::LogLine(::kbs::common::LogLevel::level, ::absl::StrCat(__VA_ARGS__)); \
    }                                                                                      \
  } while (false)

#endif  // KBS_COMMON_LOG_H_
