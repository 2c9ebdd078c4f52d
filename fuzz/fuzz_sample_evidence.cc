// Fuzz target: the sample verifier (parse, verify, appraise) against a fixed
// binding.
#include <cstdint>

#include "common/crypto.h"
#include "verifier/sample/sample_verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  static const auto* const kVerifier = kbs::verifier::SampleVerifier::CreateCpu().release();
  auto json = kbs::common::ParseJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) return 0;
  kbs::verifier::EvidenceBinding binding;
  binding.report_data = kbs::common::Digest(kbs::common::HashAlgorithm::kSha384, "fuzz");
  if (size % 2 == 0) binding.init_data_digest = kbs::common::Sha256("init");
  (void)kVerifier->Verify(*json, binding);
  return 0;
}
