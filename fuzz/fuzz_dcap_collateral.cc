// Fuzz target: the Intel collateral parsers (TCB info, QE identity, the
// collateral bundle and PCS bodies). Invariant: the text a PCS body is
// signed over is itself one JSON object.
#include <cstdint>
#include <cstdlib>

#include "common/json.h"
#include "verifier/dcap/collateral.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace dcap = kbs::verifier::dcap;
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)dcap::ParseTcbInfo(text);
  (void)dcap::ParseEnclaveIdentity(text);
  (void)dcap::ParseCollateralBundle(text);
  for (absl::string_view member : {"tcbInfo", "enclaveIdentity"}) {
    auto signed_object = dcap::SplitPcsBody(text, member);
    if (!signed_object.ok()) continue;
    auto inner = kbs::common::ParseJson(signed_object->text);
    if (!inner.ok() || !inner->is_object() || signed_object->signature.size() != 64) std::abort();
  }
  return 0;
}
