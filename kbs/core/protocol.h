// The KBS protocol 0.4.0 messages (kbs-protocol.md §2-3) as typed values, and
// their JSON decoding. Both front ends produce these types; the broker only
// ever sees them.
#ifndef KBS_KBS_CORE_PROTOCOL_H_
#define KBS_KBS_CORE_PROTOCOL_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"
#include "common/resource_path.h"

namespace kbs {

inline constexpr absl::string_view kProtocolVersion = "0.4.0";
inline constexpr absl::string_view kSessionCookie = "kbs-session-id";

// `Request` (POST /kbs/v0/auth).
struct AuthRequest {
  std::string version;
  std::string tee;
  common::Json extra_params;  // any JSON value
};

struct InitDataSpec {
  std::string format;
  std::string body;
};

// `Attestation` (POST /kbs/v0/attest).
struct AttestRequest {
  std::optional<InitDataSpec> init_data;
  std::string nonce;                // runtime-data.nonce
  common::Json tee_pubkey;          // runtime-data.tee-pubkey (JWK)
  common::Json primary_evidence;    // tee-evidence.primary_evidence
  std::string additional_evidence;  // tee-evidence.additional_evidence
};

// InvalidArgument naming the field at fault.
absl::StatusOr<AuthRequest> ParseAuthRequest(absl::string_view body);
absl::StatusOr<AttestRequest> ParseAttestRequest(absl::string_view body);

// What the receipt log keeps of an attestation (its evidence_sha256 is the
// SHA-256 of these bytes): the compact JSON document
//   {"init_data":{"body","format"}, "runtime_data":{"nonce","tee-pubkey"},
//    "tee":..., "tee_evidence":{"additional_evidence","primary_evidence"}}
// with members in sorted order ("init_data" only when sent; "tee" when
// known), exactly as common::DumpJson writes that object, built without
// copying the evidence into a new document.
std::string AttestEvidenceDocument(const AttestRequest& request, absl::string_view tee);

// "repo/type/tag" (common/resource_path.h).
using common::IsValidResourcePath;

}  // namespace kbs

#endif  // KBS_KBS_CORE_PROTOCOL_H_
