// Fuzz target: the init-data TOML parser (toml++ underneath).
#include <cstdint>

#include "kbs/core/init_data.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  (void)kbs::ParseInitData("toml", absl::string_view(reinterpret_cast<const char*>(data), size));
  return 0;
}
