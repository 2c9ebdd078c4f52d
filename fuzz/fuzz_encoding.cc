// Fuzz target: strict base64, base64url and hex decoders. Invariant: what
// decodes re-encodes to exactly the input (one spelling per value).
#include <cstdint>
#include <cstdlib>

#include "common/encoding.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  if (auto b = kbs::common::Base64Decode(text); b.ok()) {
    if (kbs::common::Base64Encode(*b) != text) std::abort();
  }
  if (auto u = kbs::common::Base64UrlDecode(text); u.ok()) {
    if (kbs::common::Base64UrlEncode(*u) != text) std::abort();
  }
  if (auto h = kbs::common::HexDecode(text); h.ok()) {
    if (h->size() * 2 != text.size()) std::abort();
  }
  return 0;
}
