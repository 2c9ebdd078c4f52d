// Fuzz target: the KBS protocol message decoders and the resource path
// check.
#include <cstdint>
#include <cstdlib>

#include "kbs/core/protocol.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)kbs::ParseAuthRequest(text);
  (void)kbs::ParseAttestRequest(text);
  if (kbs::IsValidResourcePath(text) &&
      (text.find("..") == 0 || text.find("/.") != absl::string_view::npos)) {
    std::abort();
  }
  return 0;
}
