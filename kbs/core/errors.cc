#include "kbs/core/errors.h"

#include "absl/strings/cord.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/json.h"

namespace kbs {
namespace {

constexpr absl::string_view kPayloadUrl = "type.kbs/error-kind";

}  // namespace

absl::string_view ErrorKindName(ErrorKind kind) {
  switch (kind) {
    case ErrorKind::kAdminAuthAccess:
      return "AdminAuthAccess";
    case ErrorKind::kAttestationError:
      return "AttestationError";
    case ErrorKind::kHttpFailed:
      return "HTTPFailed";
    case ErrorKind::kInvalidRequestPath:
      return "InvalidRequestPath";
    case ErrorKind::kJweError:
      return "JweError";
    case ErrorKind::kPluginNotFound:
      return "PluginNotFound";
    case ErrorKind::kPluginInternalError:
      return "PluginInternalError";
    case ErrorKind::kPolicyDeny:
      return "PolicyDeny";
    case ErrorKind::kParsePolicyError:
      return "ParsePolicyError";
    case ErrorKind::kPolicyEngineError:
      return "PolicyEngineError";
    case ErrorKind::kSerdeError:
      return "SerdeError";
    case ErrorKind::kTokenNotFound:
      return "TokenNotFound";
    case ErrorKind::kTokenVerifierError:
      return "TokenVerifierError";
  }
  return "PluginInternalError";
}

absl::Status KbsError(absl::StatusCode code, ErrorKind kind, absl::string_view detail) {
  absl::Status status(code, detail);
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(static_cast<int>(kind))));
  return status;
}

absl::Status WithKind(absl::Status status, ErrorKind kind) {
  if (status.ok() || status.GetPayload(kPayloadUrl).has_value()) return status;
  status.SetPayload(kPayloadUrl, absl::Cord(absl::StrCat(static_cast<int>(kind))));
  return status;
}

ErrorKind GetErrorKind(const absl::Status& status) {
  if (auto payload = status.GetPayload(kPayloadUrl); payload.has_value()) {
    int value = 0;
    if (absl::SimpleAtoi(std::string(*payload), &value) && value >= 0 &&
        value <= static_cast<int>(ErrorKind::kTokenVerifierError)) {
      return static_cast<ErrorKind>(value);
    }
  }
  switch (status.code()) {
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kOutOfRange:
      return ErrorKind::kSerdeError;
    case absl::StatusCode::kUnauthenticated:
      return ErrorKind::kTokenVerifierError;
    case absl::StatusCode::kPermissionDenied:
      return ErrorKind::kPolicyDeny;
    case absl::StatusCode::kNotFound:
      return ErrorKind::kPluginNotFound;
    default:
      return ErrorKind::kPluginInternalError;
  }
}

std::string ErrorJson(const absl::Status& status) {
  common::Json body = {
      {"type", absl::StrCat(kErrorTypePrefix, ErrorKindName(GetErrorKind(status)))},
      {"detail", std::string(status.message())}};
  return common::DumpJson(body);
}

int HttpStatusFor(const absl::Status& status) {
  switch (status.code()) {
    case absl::StatusCode::kOk:
      return 200;
    case absl::StatusCode::kInvalidArgument:
    case absl::StatusCode::kFailedPrecondition:
    case absl::StatusCode::kOutOfRange:
      return 400;
    case absl::StatusCode::kUnauthenticated:
      return 401;
    case absl::StatusCode::kPermissionDenied:
      return 403;
    case absl::StatusCode::kNotFound:
      return 404;
    case absl::StatusCode::kAlreadyExists:
    case absl::StatusCode::kAborted:
      return 409;
    case absl::StatusCode::kResourceExhausted:
      return 413;
    case absl::StatusCode::kUnavailable:
    case absl::StatusCode::kDeadlineExceeded:
      return 503;
    default:
      return 500;
  }
}

}  // namespace kbs
