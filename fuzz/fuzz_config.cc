// Fuzz target: the TOML configuration parser and validation.
#include <cstdint>

#include "kbs/config/config.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto config =
      kbs::config::ParseConfig(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (config.ok()) (void)kbs::config::ValidateConfig(*config);
  return 0;
}
