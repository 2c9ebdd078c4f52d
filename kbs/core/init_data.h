// Init-data (kbs-protocol.md §6.6): the TOML document the pod was launched
// with, sent in /attest as {"format":"toml","body":"..."}. Its digest, over
// the raw bytes as sent with the algorithm the document declares, must equal
// the TEE's init-data field (HOST_DATA, MRCONFIGID, ...).
#ifndef KBS_KBS_CORE_INIT_DATA_H_
#define KBS_KBS_CORE_INIT_DATA_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/crypto.h"
#include "common/json.h"

namespace kbs {

// Entries of [data] larger than this are summarized by digest in claims,
// so tokens stay compact.
inline constexpr size_t kMaxInlineInitDataEntry = 2048;

struct InitData {
  common::HashAlgorithm algorithm = common::HashAlgorithm::kSha256;
  std::string version;
  std::string digest;  // raw bytes
  // The [data] table: small string entries verbatim, larger ones as
  // {"sha256": "<hex>", "bytes": N}.
  common::Json claims = common::Json::object();
};

// InvalidArgument for an unsupported format, invalid TOML (with line and
// column), a missing or unknown `algorithm`, or a non-table [data].
absl::StatusOr<InitData> ParseInitData(absl::string_view format, absl::string_view body);

}  // namespace kbs

#endif  // KBS_KBS_CORE_INIT_DATA_H_
