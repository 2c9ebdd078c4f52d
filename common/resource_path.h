// The KBS resource path grammar, shared by the broker and the sealed-file
// format: "repo/type/tag", exactly three segments of [A-Za-z0-9_.-], none
// empty or starting with '.' (the reference KBS's ResourceDesc), at most 512
// bytes.
#ifndef KBS_COMMON_RESOURCE_PATH_H_
#define KBS_COMMON_RESOURCE_PATH_H_

#include "absl/strings/string_view.h"

namespace kbs::common {

inline constexpr size_t kMaxResourcePathBytes = 512;

bool IsValidResourcePath(absl::string_view path);

}  // namespace kbs::common

#endif  // KBS_COMMON_RESOURCE_PATH_H_
