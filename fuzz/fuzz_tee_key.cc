// Fuzz target: the TEE public key (JWK) parser. Invariant: an accepted key
// re-serializes to a JWK that is accepted again, identically.
#include <cstdint>
#include <cstdlib>

#include "common/jose/tee_key.h"
#include "common/json.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = kbs::common::ParseJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) return 0;
  auto key = kbs::jose::TeePublicKey::FromJson(*json);
  if (!key.ok()) return 0;
  auto again = kbs::jose::TeePublicKey::FromJson(key->ToJson());
  if (!again.ok() || again->ToJson() != key->ToJson()) std::abort();
  return 0;
}
