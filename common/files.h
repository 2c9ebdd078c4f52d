// File helpers for key material and data directories. Private files are
// created with mode 0600 atomically (write to a temporary file, fsync,
// rename), and refused when group or others can read them.
#ifndef KBS_COMMON_FILES_H_
#define KBS_COMMON_FILES_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kbs::common {

// NotFound if the file does not exist; other errors name the path.
absl::StatusOr<std::string> ReadFile(const std::string& path, size_t max_bytes = 64 << 20);
// Reads a secret file: FailedPrecondition when its mode lets group or
// others read or write it.
absl::StatusOr<std::string> ReadPrivateFile(const std::string& path);
// Writes `contents` to `path` with `mode`, atomically.
absl::Status WriteFileAtomic(const std::string& path, absl::string_view contents, int mode = 0600);
// Creates the directory (and parents) with `mode` if missing.
absl::Status EnsureDirectory(const std::string& path, int mode = 0700);
bool FileExists(const std::string& path);

// Takes an exclusive advisory lock (flock) on `path`, creating it. The lock
// lives until the returned descriptor is closed (at process exit).
// FailedPrecondition when another process holds it.
absl::StatusOr<int> LockFileExclusive(const std::string& path);

}  // namespace kbs::common

#endif  // KBS_COMMON_FILES_H_
