// Fuzz target: the untrusted-JSON parser and JCS. Invariant: JCS output
// parses back and canonicalizes to itself.
#include <cstdint>
#include <cstdlib>

#include "common/jcs.h"
#include "common/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  auto json = kbs::common::ParseJson(text);
  if (!json.ok()) return 0;
  auto canonical = kbs::common::CanonicalizeJson(*json);
  if (!canonical.ok()) return 0;
  auto reparsed = kbs::common::ParseJson(*canonical);
  if (!reparsed.ok()) std::abort();
  auto again = kbs::common::CanonicalizeJson(*reparsed);
  if (!again.ok() || *again != *canonical) std::abort();
  return 0;
}
