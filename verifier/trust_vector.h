// AR4SI trustworthiness vector and EAR status (draft-ietf-rats-ar4si; the
// claim names and tiers as veraison/rust-ear uses them, kbs-protocol.md §4).
#ifndef KBS_VERIFIER_TRUST_VECTOR_H_
#define KBS_VERIFIER_TRUST_VECTOR_H_

#include <cstdint>

#include "absl/strings/string_view.h"
#include "common/json.h"

namespace kbs::verifier {

// Common AR4SI values.
inline constexpr int8_t kTrustNone = 0;
inline constexpr int8_t kAffirming = 2;  // e.g. genuine hardware, approved config
inline constexpr int8_t kWarningUnsafeConfig = 32;
inline constexpr int8_t kContraindicatedHardware = 97;  // unrecognized hardware

struct TrustVector {
  int8_t instance_identity = kTrustNone;
  int8_t configuration = kTrustNone;
  int8_t executables = kTrustNone;
  int8_t file_system = kTrustNone;
  int8_t hardware = kTrustNone;
  int8_t runtime_opaque = kTrustNone;
  int8_t storage_opaque = kTrustNone;
  int8_t sourced_data = kTrustNone;

  // {"instance-identity": 0, ...}
  common::Json ToJson() const;
  // "affirming" | "warning" | "contraindicated" | "none": the worst tier.
  absl::string_view Status() const;
};

}  // namespace kbs::verifier

#endif  // KBS_VERIFIER_TRUST_VECTOR_H_
