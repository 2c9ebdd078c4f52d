// The outcome of a successful RCAR attestation, as the resource step needs
// it. Built either from our own freshly issued token (cookie sessions) or
// from a verified Bearer token (confidential-data-hub); both carry exactly
// the same information, because the second is rebuilt from the first.
#ifndef KBS_KBS_CORE_ATTESTATION_H_
#define KBS_KBS_CORE_ATTESTATION_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/time/time.h"
#include "common/jose/tee_key.h"
#include "common/json.h"

namespace kbs {

struct AttestationResult {
  // The primary TEE ("sample", "snp", ...), then device TEEs.
  std::vector<std::string> tees;
  // The EAR claims set of the token (the policy's input).
  common::Json claims;
  // Its compact JSON text, as signed (set when the token is issued here).
  std::string claims_json;
  // The key resources are encrypted to.
  std::optional<jose::TeePublicKey> tee_pubkey;
  // The compact JWT and its identity.
  std::string token;
  std::string token_id;
  absl::Time expires;

  const std::string& primary_tee() const { return tees.front(); }
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_ATTESTATION_H_
