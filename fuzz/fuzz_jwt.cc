// Fuzz target: JWT parsing and verification with a fixed trusted key.
// Nothing the fuzzer makes can carry a valid signature.
#include <cstdint>
#include <cstdlib>

#include "common/jose/jwt.h"
#include "common/keys.h"

namespace {
const kbs::jose::JwtVerifier& Verifier() {
  static const kbs::jose::JwtVerifier* const kVerifier = [] {
    auto* v = new kbs::jose::JwtVerifier();
    (void)v->AddKey(*kbs::common::GenerateEcKey(kbs::common::EcCurve::kP256));
    (void)v->AddKey(*kbs::common::GenerateEd25519Key());
    return v;
  }();
  return *kVerifier;
}
}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto verified = Verifier().Verify(absl::string_view(reinterpret_cast<const char*>(data), size),
                                    absl::FromUnixSeconds(1800000000), {});
  if (verified.ok()) std::abort();
  return 0;
}
