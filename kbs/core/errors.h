// The KBS protocol's error vocabulary. The core reports failures as
// absl::Status with a canonical code; the variant of the reference KBS's
// `ErrorInformation` type (kbs-protocol.md §5) rides along as a payload, so
// each adapter maps both in one place (HTTP: status + JSON body; gRPC:
// status code + message + trailer).
#ifndef KBS_KBS_CORE_ERRORS_H_
#define KBS_KBS_CORE_ERRORS_H_

#include <string>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"

namespace kbs {

// Names are the reference KBS's `Error` variants.
enum class ErrorKind {
  kAdminAuthAccess,
  kAttestationError,
  kHttpFailed,
  kInvalidRequestPath,
  kJweError,
  kPluginNotFound,
  kPluginInternalError,
  kPolicyDeny,
  kParsePolicyError,
  kPolicyEngineError,
  kSerdeError,
  kTokenNotFound,
  kTokenVerifierError,
};

inline constexpr absl::string_view kErrorTypePrefix =
    "https://github.com/confidential-containers/kbs/errors/";

absl::string_view ErrorKindName(ErrorKind kind);

// A status carrying `kind`.
absl::Status KbsError(absl::StatusCode code, ErrorKind kind, absl::string_view detail);
// Re-tags `status` (keeping code and message) unless it already has a kind.
absl::Status WithKind(absl::Status status, ErrorKind kind);
// The kind carried by `status`, or one derived from its code.
ErrorKind GetErrorKind(const absl::Status& status);

// The JSON body {"type": ".../<Variant>", "detail": "..."}.
std::string ErrorJson(const absl::Status& status);

// HTTP status for a core status (400, 401, 403, 404, 409, 413, 503, 500).
int HttpStatusFor(const absl::Status& status);

}  // namespace kbs

#endif  // KBS_KBS_CORE_ERRORS_H_
