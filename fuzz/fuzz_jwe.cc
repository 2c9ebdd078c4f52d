// Fuzz target: flattened JWE parsing and decryption (the guest side).
#include <cstdint>

#include "common/jose/jwe.h"
#include "common/keys.h"

namespace {
EVP_PKEY* Key(int which) {
  static EVP_PKEY* const kEc = kbs::common::GenerateEcKey(kbs::common::EcCurve::kP256)->release();
  static EVP_PKEY* const kRsa = kbs::common::GenerateRsaKey(2048)->release();
  return which == 0 ? kEc : kRsa;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto json = kbs::common::ParseJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) return 0;
  auto jwe = kbs::jose::FlattenedJwe::FromJson(*json);
  if (!jwe.ok()) return 0;
  (void)kbs::jose::JweDecrypt(*jwe, Key(size % 2));
  return 0;
}
