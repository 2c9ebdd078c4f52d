#include "common/resource_path.h"

#include <vector>

#include "absl/strings/str_split.h"

namespace kbs::common {

bool IsValidResourcePath(absl::string_view path) {
  if (path.size() > kMaxResourcePathBytes) return false;
  std::vector<absl::string_view> segments = absl::StrSplit(path, '/');
  if (segments.size() != 3) return false;
  for (absl::string_view s : segments) {
    if (s.empty() || s.front() == '.') return false;
    for (char c : s) {
      bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
                c == '_' || c == '-' || c == '.';
      if (!ok) return false;
    }
  }
  return true;
}

}  // namespace kbs::common
