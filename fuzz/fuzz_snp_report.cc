// Fuzz target: the SEV-SNP report parser. Invariant: a report that parses
// survives the agent's JSON form (serde) and rebuilds to the same bytes.
#include <cstdint>
#include <cstdlib>

#include "common/bytes.h"
#include "verifier/snp/evidence.h"
#include "verifier/snp/report.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  namespace snp = kbs::verifier::snp;
  auto report = snp::ParseSnpReport(absl::Span<const uint8_t>(data, size));
  if (!report.ok()) return 0;
  auto json = snp::ReportToSerdeJson(absl::string_view(reinterpret_cast<const char*>(data), size));
  if (!json.ok()) std::abort();
  auto rebuilt = snp::ParseSnpEvidence(kbs::common::Json{{"attestation_report", *json}});
  if (!rebuilt.ok() ||
      rebuilt->report != absl::string_view(reinterpret_cast<const char*>(data), size)) {
    std::abort();
  }
  return 0;
}
