#include "verifier/trust_vector.h"

#include <algorithm>
#include <cstdlib>

namespace kbs::verifier {
namespace {

// rust-ear trust/claim.rs `tier`: -1..1 none, |v|<32 affirming, |v|<96
// warning, otherwise contraindicated. Ranked so that max() is the worst.
int Tier(int8_t v) {
  if (v >= -1 && v <= 1) return 0;
  int a = std::abs(static_cast<int>(v));
  if (a < 32) return 1;
  if (a < 96) return 2;
  return 3;
}

}  // namespace

common::Json TrustVector::ToJson() const {
  return common::Json{{"instance-identity", instance_identity},
                      {"configuration", configuration},
                      {"executables", executables},
                      {"file-system", file_system},
                      {"hardware", hardware},
                      {"runtime-opaque", runtime_opaque},
                      {"storage-opaque", storage_opaque},
                      {"sourced-data", sourced_data}};
}

absl::string_view TrustVector::Status() const {
  int worst = 0;
  for (int8_t v : {instance_identity, configuration, executables, file_system, hardware,
                   runtime_opaque, storage_opaque, sourced_data}) {
    worst = std::max(worst, Tier(v));
  }
  switch (worst) {
    case 1:
      return "affirming";
    case 2:
      return "warning";
    case 3:
      return "contraindicated";
    default:
      return "none";
  }
}

}  // namespace kbs::verifier
