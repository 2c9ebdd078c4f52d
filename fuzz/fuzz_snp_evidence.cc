// Fuzz target: the agent's SNP evidence JSON, the VEK certificate parser,
// and the verifier on whatever parses (nothing fuzzed can verify).
#include <cstdint>
#include <cstdlib>

#include "common/clock.h"
#include "verifier/snp/snp_verifier.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace snp = kbs::verifier::snp;
  static kbs::common::FakeClock clock(absl::FromUnixSeconds(1780000000));
  static const snp::SnpVerifier* const verifier =
      snp::SnpVerifier::Create(snp::SnpVerifierOptions{}, &clock).release();
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  (void)snp::ParseVekCertificate(text);
  auto json = kbs::common::ParseJson(text);
  if (!json.ok()) return 0;
  kbs::verifier::EvidenceBinding binding;
  binding.report_data = std::string(48, '\0');
  if (verifier->Verify(*json, binding).ok()) std::abort();
  return 0;
}
