#include "kbs/core/protocol.h"

#include <vector>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"

namespace kbs {
namespace {

using common::Json;

absl::StatusOr<Json> ParseObject(absl::string_view body, absl::string_view what) {
  KBS_ASSIGN_OR_RETURN(Json json, common::ParseJson(body));
  if (!json.is_object()) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, " must be a JSON object, not ", json.type_name()));
  }
  return json;
}

}  // namespace

absl::StatusOr<AuthRequest> ParseAuthRequest(absl::string_view body) {
  KBS_ASSIGN_OR_RETURN(Json json, ParseObject(body, "auth request"));
  AuthRequest req;
  KBS_ASSIGN_OR_RETURN(req.version, common::GetStringMember(json, "version", "auth request"));
  KBS_ASSIGN_OR_RETURN(req.tee, common::GetStringMember(json, "tee", "auth request"));
  const Json* extra = common::FindMember(json, "extra-params");
  if (extra == nullptr) {
    return absl::InvalidArgumentError("missing field `extra-params` in auth request");
  }
  req.extra_params = *extra;
  return req;
}

absl::StatusOr<AttestRequest> ParseAttestRequest(absl::string_view body) {
  KBS_ASSIGN_OR_RETURN(Json json, ParseObject(body, "attestation request"));
  AttestRequest req;
  if (const Json* init = common::FindMember(json, "init-data");
      init != nullptr && !init->is_null()) {
    if (!init->is_object()) {
      return absl::InvalidArgumentError("field `init-data` must be an object or null");
    }
    InitDataSpec spec;
    KBS_ASSIGN_OR_RETURN(spec.format, common::GetStringMember(*init, "format", "init-data"));
    KBS_ASSIGN_OR_RETURN(spec.body, common::GetStringMember(*init, "body", "init-data"));
    req.init_data = std::move(spec);
  }
  KBS_ASSIGN_OR_RETURN(const Json* runtime,
                       common::GetObjectMember(json, "runtime-data", "attestation request"));
  KBS_ASSIGN_OR_RETURN(req.nonce, common::GetStringMember(*runtime, "nonce", "runtime-data"));
  KBS_ASSIGN_OR_RETURN(const Json* pubkey,
                       common::GetObjectMember(*runtime, "tee-pubkey", "runtime-data"));
  req.tee_pubkey = *pubkey;
  KBS_ASSIGN_OR_RETURN(const Json* evidence,
                       common::GetObjectMember(json, "tee-evidence", "attestation request"));
  const Json* primary = common::FindMember(*evidence, "primary_evidence");
  if (primary == nullptr) {
    return absl::InvalidArgumentError("missing field `primary_evidence` in tee-evidence");
  }
  // Absent means no devices, as the agent's "" does.
  if (common::FindMember(*evidence, "additional_evidence") != nullptr) {
    KBS_ASSIGN_OR_RETURN(req.additional_evidence,
                         common::GetStringMember(*evidence, "additional_evidence", "tee-evidence"));
  }
  // Evidence can be large (SNP reports are arrays of numbers): move it out
  // of the parsed document instead of copying it.
  req.primary_evidence = std::move(json["tee-evidence"]["primary_evidence"]);
  return req;
}

std::string AttestEvidenceDocument(const AttestRequest& request, absl::string_view tee) {
  using common::DumpJson;
  std::string out = "{";
  if (request.init_data.has_value()) {
    absl::StrAppend(&out, "\"init_data\":{\"body\":", DumpJson(Json(request.init_data->body)),
                    ",\"format\":", DumpJson(Json(request.init_data->format)), "},");
  }
  absl::StrAppend(&out, "\"runtime_data\":{\"nonce\":", DumpJson(Json(request.nonce)),
                  ",\"tee-pubkey\":", DumpJson(request.tee_pubkey), "},");
  if (!tee.empty()) absl::StrAppend(&out, "\"tee\":", DumpJson(Json(std::string(tee))), ",");
  absl::StrAppend(&out, "\"tee_evidence\":{\"additional_evidence\":",
                  DumpJson(Json(request.additional_evidence)),
                  ",\"primary_evidence\":", DumpJson(request.primary_evidence), "}}");
  return out;
}

}  // namespace kbs
