// Status propagation helpers. Debian's abseil (20220623) ships neither
// ABSL_RETURN_IF_ERROR nor ASSIGN_OR_RETURN, so the project carries its own.
#ifndef KBS_COMMON_STATUS_MACROS_H_
#define KBS_COMMON_STATUS_MACROS_H_

#include "absl/status/status.h"
#include "absl/status/statusor.h"

#define KBS_STATUS_CONCAT_INNER_(a, b) a##b
#define KBS_STATUS_CONCAT_(a, b) KBS_STATUS_CONCAT_INNER_(a, b)

// Returns from the enclosing function if `expr` (an absl::Status) is not OK.
#define KBS_RETURN_IF_ERROR(expr)              \
  do {                                         \
    ::absl::Status kbs_status_macro_ = (expr); \
    if (!kbs_status_macro_.ok()) {             \
      return kbs_status_macro_;                \
    }                                          \
  } while (false)

// `KBS_ASSIGN_OR_RETURN(auto x, MakeX());` evaluates the StatusOr and either
// moves its value into `lhs` or returns its status.
#define KBS_ASSIGN_OR_RETURN(lhs, rexpr) \
  KBS_ASSIGN_OR_RETURN_IMPL_(KBS_STATUS_CONCAT_(kbs_statusor_, __LINE__), lhs, rexpr)

#define KBS_ASSIGN_OR_RETURN_IMPL_(statusor, lhs, rexpr) \
  auto statusor = (rexpr);                               \
  if (!statusor.ok()) {                                  \
    return std::move(statusor).status();                 \
  }                                                      \
  lhs = std::move(statusor).value()

#endif  // KBS_COMMON_STATUS_MACROS_H_
