#include "kbs/client/kbs_client.h"

#include <grpcpp/grpcpp.h>

#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "proto/kbs/v1/kbs.grpc.pb.h"

namespace kbs::client {
namespace {

using common::Json;

Json VersionJson(const kbs::v1::ResourceVersion& v) {
  return Json{{"version", v.version()},      {"state", v.state()}, {"size", v.size()},
              {"sha256", v.sha256()},        {"kek", v.kek()},     {"created_at", v.created_at()},
              {"updated_at", v.updated_at()}};
}

// The HTTP API's shape: empty times are left out.
Json SigningKeysJson(const kbs::v1::TokenSigningKeysResponse& resp) {
  Json keys = Json::array();
  for (const kbs::v1::TokenSigningKey& k : resp.keys()) {
    Json key = {{"kid", k.kid()}, {"state", k.state()}, {"created", k.created()}};
    if (!k.activated().empty()) key["activated"] = k.activated();
    if (!k.retired().empty()) key["retired"] = k.retired();
    if (!k.published_until().empty()) key["published_until"] = k.published_until();
    keys.push_back(std::move(key));
  }
  Json out = {{"keys", std::move(keys)}};
  if (!resp.current().empty()) out["current"] = resp.current();
  if (!resp.retired().empty()) out["retired"] = resp.retired();
  return out;
}

absl::StatusCode CodeForHttp(int status) {
  switch (status) {
    case 400:
      return absl::StatusCode::kInvalidArgument;
    case 401:
      return absl::StatusCode::kUnauthenticated;
    case 403:
      return absl::StatusCode::kPermissionDenied;
    case 404:
      return absl::StatusCode::kNotFound;
    case 409:
      return absl::StatusCode::kAlreadyExists;
    case 413:
      return absl::StatusCode::kResourceExhausted;
    case 503:
      return absl::StatusCode::kUnavailable;
    default:
      return absl::StatusCode::kInternal;
  }
}

// The attestation agent's HTTP client: RCAR with a one-cookie jar for
// `kbs-session-id` (reqwest's cookie store in the agent).
class HttpKbsClient final : public KbsClient {
 public:
  explicit HttpKbsClient(std::unique_ptr<common::HttpClient> http) : http_(std::move(http)) {}

  absl::StatusOr<std::string> Auth(absl::string_view tee) override {
    ResetSession();
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Post("/kbs/v0/auth", AuthRequestJson(tee)));
    KBS_ASSIGN_OR_RETURN(Json body, common::ParseJson(r.body));
    return common::GetStringMember(body, "nonce", "challenge");
  }

  absl::StatusOr<std::string> Attest(const AttestRequest& request) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Post("/kbs/v0/attest", AttestRequestJson(request)));
    KBS_ASSIGN_OR_RETURN(Json body, common::ParseJson(r.body));
    KBS_ASSIGN_OR_RETURN(token_, common::GetStringMember(body, "token", "attest response"));
    return token_;
  }

  absl::StatusOr<std::string> GetResource(absl::string_view path, bool use_token) override {
    return GetResourceVersion(path, use_token, 0, nullptr);
  }

  absl::StatusOr<std::string> GetResourceVersion(absl::string_view path, bool use_token,
                                                 int64_t version,
                                                 int64_t* released_version) override {
    std::vector<std::pair<std::string, std::string>> headers;
    if (use_token) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token_));
    std::string target = absl::StrCat("/kbs/v0/resource/", path);
    if (version > 0) absl::StrAppend(&target, "?version=", version);
    auto r = Call("GET", target, "", headers, /*send_cookie=*/!use_token);
    if (!r.ok()) return r.status();
    if (released_version != nullptr &&
        !absl::SimpleAtoi(r->Header("kbs-resource-version"), released_version)) {
      *released_version = 0;
    }
    return r->body;
  }

  absl::StatusOr<Json> ResourceVersions(absl::string_view admin_token,
                                        absl::string_view path) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("GET", absl::StrCat("/kbs/v0/admin/resource-versions/", path), "",
                              Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> SetResourceVersionState(absl::string_view admin_token,
                                               absl::string_view path, int64_t version,
                                               absl::string_view state) override {
    KBS_ASSIGN_OR_RETURN(
        common::HttpResult r,
        Call("POST", absl::StrCat("/kbs/v0/admin/resource-versions/", path),
             common::DumpJson(Json{{"version", version}, {"state", std::string(state)}}),
             Admin(admin_token, "application/json")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> GenerateKey(absl::string_view admin_token, absl::string_view path,
                                   absl::string_view type, bool rotate) override {
    KBS_ASSIGN_OR_RETURN(
        common::HttpResult r,
        Call("POST", absl::StrCat("/kbs/v0/admin/keys/", path),
             common::DumpJson(Json{{"type", std::string(type)}, {"rotate", rotate}}),
             Admin(admin_token, "application/json")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> RotateKek(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("POST", "/kbs/v0/admin/kek/rotate", "{}",
                                                    Admin(admin_token, "application/json")));
    return common::ParseJson(r.body);
  }

  absl::StatusOr<Json> TokenSigningKeys(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("GET", "/kbs/v0/admin/token-keys", "", Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> RotateTokenSigningKey(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("POST", "/kbs/v0/admin/token-keys/rotate", "",
                                                    Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }

  void ResetSession() override {
    cookie_.clear();
    token_.clear();
  }

  absl::StatusOr<Json> PutResource(absl::string_view admin_token, absl::string_view path,
                                   absl::string_view value) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("POST", absl::StrCat("/kbs/v0/resource/", path), value,
                              Admin(admin_token, "application/octet-stream")));
    return common::ParseJson(r.body);
  }
  absl::Status DeleteResource(absl::string_view admin_token, absl::string_view path) override {
    return Call("DELETE", absl::StrCat("/kbs/v0/resource/", path), "", Admin(admin_token, ""))
        .status();
  }
  absl::StatusOr<Json> ListResources(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("GET", "/kbs/v0/admin/resources", "", Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<std::string> SetPolicy(absl::string_view admin_token,
                                        absl::string_view document) override {
    std::string body = common::DumpJson(Json{{"policy", common::Base64UrlEncode(document)}});
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("POST", "/kbs/v0/resource-policy", body,
                                                    Admin(admin_token, "application/json")));
    KBS_ASSIGN_OR_RETURN(Json parsed, common::ParseJson(r.body));
    return common::GetStringMember(parsed, "id", "policy response");
  }
  absl::StatusOr<Json> GetPolicy(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("GET", "/kbs/v0/resource-policy", "", Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> SetPolicyVersion(absl::string_view admin_token, absl::string_view document,
                                        bool shadow) override {
    std::string body =
        common::DumpJson(Json{{"policy", common::Base64UrlEncode(document)}, {"shadow", shadow}});
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("POST", "/kbs/v0/resource-policy", body,
                                                    Admin(admin_token, "application/json")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> PolicyHistory(absl::string_view admin_token) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("GET", "/kbs/v0/resource-policy/history", "",
                                                    Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<std::string> ActivatePolicy(absl::string_view admin_token,
                                             absl::string_view version, bool shadow) override {
    std::string body = common::DumpJson(Json{{"version", version}, {"shadow", shadow}});
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, Call("POST", "/kbs/v0/resource-policy/activate",
                                                    body, Admin(admin_token, "application/json")));
    KBS_ASSIGN_OR_RETURN(Json parsed, common::ParseJson(r.body));
    return common::GetStringMember(parsed, "id", "activate response");
  }
  absl::Status ClearShadowPolicy(absl::string_view admin_token) override {
    return Call("DELETE", "/kbs/v0/resource-policy/shadow", "", Admin(admin_token, "")).status();
  }
  absl::StatusOr<Json> EvaluatePolicy(absl::string_view admin_token, const Json& claims,
                                      absl::string_view resource,
                                      absl::string_view document) override {
    Json request = {{"claims", claims}, {"resource", resource}};
    if (!document.empty()) request["policy"] = common::Base64UrlEncode(document);
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("POST", "/kbs/v0/resource-policy/evaluate", common::DumpJson(request),
                              Admin(admin_token, "application/json")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> SetRefValues(absl::string_view admin_token, absl::string_view name,
                                    absl::string_view document) override {
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         Call("PUT", absl::StrCat("/kbs/v0/reference-values/", name), document,
                              Admin(admin_token, "application/yaml")));
    return common::ParseJson(r.body);
  }
  absl::StatusOr<Json> GetRefValues(absl::string_view admin_token,
                                    absl::string_view name) override {
    KBS_ASSIGN_OR_RETURN(
        common::HttpResult r,
        Call("GET", absl::StrCat("/kbs/v0/reference-values/", name), "", Admin(admin_token, "")));
    return common::ParseJson(r.body);
  }

 private:
  static std::vector<std::pair<std::string, std::string>> Admin(absl::string_view token,
                                                                absl::string_view content_type) {
    std::vector<std::pair<std::string, std::string>> h = {
        {"Authorization", absl::StrCat("Bearer ", token)}};
    if (!content_type.empty()) h.emplace_back("Content-Type", std::string(content_type));
    return h;
  }
  absl::StatusOr<common::HttpResult> Post(absl::string_view target, absl::string_view body) {
    return Call("POST", target, body, {{"Content-Type", "application/json"}});
  }
  absl::StatusOr<common::HttpResult> Call(absl::string_view method, absl::string_view target,
                                          absl::string_view body,
                                          std::vector<std::pair<std::string, std::string>> headers,
                                          bool send_cookie = true) {
    if (send_cookie && !cookie_.empty()) {
      headers.emplace_back("Cookie", absl::StrCat(kSessionCookie, "=", cookie_));
    }
    KBS_ASSIGN_OR_RETURN(common::HttpResult r, http_->Send(method, target, body, headers));
    // Cookie jar: remember kbs-session-id.
    for (const auto& [name, value] : r.headers) {
      absl::string_view v = value;
      if (name == "set-cookie" && absl::ConsumePrefix(&v, kSessionCookie) &&
          absl::ConsumePrefix(&v, "=")) {
        cookie_ = std::string(v.substr(0, v.find(';')));
      }
    }
    if (r.status != 200) return HttpErrorToStatus(r.status, r.body);
    return r;
  }

  std::unique_ptr<common::HttpClient> http_;
  std::string cookie_;
  std::string token_;
};

absl::Status FromGrpc(const ::grpc::Status& s, const ::grpc::ClientContext& context) {
  if (s.ok()) return absl::OkStatus();
  std::string variant;
  auto it = context.GetServerTrailingMetadata().find("kbs-error-type");
  if (it != context.GetServerTrailingMetadata().end()) {
    variant = std::string(it->second.data(), it->second.size());
  }
  return absl::Status(
      static_cast<absl::StatusCode>(s.error_code()),
      variant.empty() ? s.error_message() : absl::StrCat(variant, ": ", s.error_message()));
}

class GrpcKbsClient final : public KbsClient {
 public:
  explicit GrpcKbsClient(std::shared_ptr<::grpc::Channel> channel)
      : broker_(v1::KeyBroker::NewStub(channel)), admin_(v1::Admin::NewStub(channel)) {}

  absl::StatusOr<std::string> Auth(absl::string_view tee) override {
    ResetSession();
    v1::AuthRequest req;
    req.set_version(std::string(kProtocolVersion));
    req.set_tee(std::string(tee));
    v1::AuthResponse resp;
    ::grpc::ClientContext ctx;
    KBS_RETURN_IF_ERROR(FromGrpc(broker_->Auth(&ctx, req, &resp), ctx));
    session_id_ = resp.session_id();
    return resp.nonce();
  }

  absl::StatusOr<std::string> Attest(const AttestRequest& request) override {
    v1::AttestRequest req;
    req.set_session_id(session_id_);
    req.set_nonce(request.nonce);
    req.set_tee_pubkey_json(common::DumpJson(request.tee_pubkey));
    req.set_primary_evidence_json(common::DumpJson(request.primary_evidence));
    req.set_additional_evidence(request.additional_evidence);
    if (request.init_data.has_value()) {
      req.mutable_init_data()->set_format(request.init_data->format);
      req.mutable_init_data()->set_body(request.init_data->body);
    }
    v1::AttestResponse resp;
    ::grpc::ClientContext ctx;
    KBS_RETURN_IF_ERROR(FromGrpc(broker_->Attest(&ctx, req, &resp), ctx));
    token_ = resp.token();
    return token_;
  }

  absl::StatusOr<std::string> GetResource(absl::string_view path, bool use_token) override {
    return GetResourceVersion(path, use_token, 0, nullptr);
  }

  absl::StatusOr<Json> ResourceVersions(absl::string_view admin_token,
                                        absl::string_view path) override {
    v1::ListResourceVersionsRequest req;
    req.set_path(std::string(path));
    v1::ListResourceVersionsResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->ListResourceVersions(&ctx, req, &resp), ctx));
    Json list = Json::array();
    for (const auto& v : resp.versions()) list.push_back(VersionJson(v));
    return Json{{"path", std::string(path)}, {"versions", list}};
  }
  absl::StatusOr<Json> SetResourceVersionState(absl::string_view admin_token,
                                               absl::string_view path, int64_t version,
                                               absl::string_view state) override {
    v1::SetResourceVersionStateRequest req;
    req.set_path(std::string(path));
    req.set_version(version);
    req.set_state(std::string(state));
    v1::ResourceVersion resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->SetResourceVersionState(&ctx, req, &resp), ctx));
    return VersionJson(resp);
  }
  absl::StatusOr<Json> GenerateKey(absl::string_view admin_token, absl::string_view path,
                                   absl::string_view type, bool rotate) override {
    v1::GenerateKeyRequest req;
    req.set_path(std::string(path));
    req.set_type(std::string(type));
    req.set_rotate(rotate);
    v1::ResourceMetadata resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->GenerateKey(&ctx, req, &resp), ctx));
    return Json{{"path", resp.path()},
                {"size", resp.size()},
                {"sha256", resp.sha256()},
                {"version", resp.version()},
                {"latest_version", resp.latest_version()}};
  }
  absl::StatusOr<Json> RotateKek(absl::string_view admin_token) override {
    v1::RotateKekRequest req;
    v1::RotateKekResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->RotateKek(&ctx, req, &resp), ctx));
    return Json{{"kek", resp.kek()}, {"rewrapped", resp.rewrapped()}};
  }

  absl::StatusOr<Json> TokenSigningKeys(absl::string_view admin_token) override {
    v1::ListTokenSigningKeysRequest req;
    v1::TokenSigningKeysResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->ListTokenSigningKeys(&ctx, req, &resp), ctx));
    return SigningKeysJson(resp);
  }
  absl::StatusOr<Json> RotateTokenSigningKey(absl::string_view admin_token) override {
    v1::RotateTokenSigningKeyRequest req;
    v1::TokenSigningKeysResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->RotateTokenSigningKey(&ctx, req, &resp), ctx));
    return SigningKeysJson(resp);
  }

  absl::StatusOr<std::string> GetResourceVersion(absl::string_view path, bool use_token,
                                                 int64_t version,
                                                 int64_t* released_version) override {
    v1::GetResourceRequest req;
    req.set_path(std::string(path));
    req.set_version(version);
    if (use_token) {
      req.set_token(token_);
    } else {
      req.set_session_id(session_id_);
    }
    v1::GetResourceResponse resp;
    ::grpc::ClientContext ctx;
    KBS_RETURN_IF_ERROR(FromGrpc(broker_->GetResource(&ctx, req, &resp), ctx));
    if (released_version != nullptr) *released_version = resp.version();
    return resp.jwe_json();
  }

  void ResetSession() override {
    session_id_.clear();
    token_.clear();
  }

  absl::StatusOr<Json> PutResource(absl::string_view admin_token, absl::string_view path,
                                   absl::string_view value) override {
    v1::PutResourceRequest req;
    req.set_path(std::string(path));
    req.set_value(std::string(value));
    v1::ResourceMetadata resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->PutResource(&ctx, req, &resp), ctx));
    return Json{{"path", resp.path()},
                {"size", resp.size()},
                {"sha256", resp.sha256()},
                {"version", resp.version()},
                {"latest_version", resp.latest_version()}};
  }
  absl::Status DeleteResource(absl::string_view admin_token, absl::string_view path) override {
    v1::DeleteResourceRequest req;
    req.set_path(std::string(path));
    v1::DeleteResourceResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    return FromGrpc(admin_->DeleteResource(&ctx, req, &resp), ctx);
  }
  absl::StatusOr<Json> ListResources(absl::string_view admin_token) override {
    v1::ListResourcesRequest req;
    v1::ListResourcesResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->ListResources(&ctx, req, &resp), ctx));
    Json list = Json::array();
    for (const auto& md : resp.resources()) {
      list.push_back(Json{{"path", md.path()}, {"size", md.size()}, {"sha256", md.sha256()}});
    }
    return Json{{"resources", list}};
  }
  absl::StatusOr<std::string> SetPolicy(absl::string_view admin_token,
                                        absl::string_view document) override {
    v1::SetPolicyRequest req;
    req.set_document(std::string(document));
    v1::SetPolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->SetPolicy(&ctx, req, &resp), ctx));
    return resp.id();
  }
  absl::StatusOr<Json> GetPolicy(absl::string_view admin_token) override {
    v1::GetPolicyRequest req;
    v1::GetPolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->GetPolicy(&ctx, req, &resp), ctx));
    KBS_ASSIGN_OR_RETURN(Json doc, common::ParseJson(resp.document_json()));
    Json out = {{"id", resp.id()}, {"policy", doc}, {"source", resp.source()}, {"shadow", nullptr}};
    if (!resp.shadow_id().empty()) out["shadow"] = {{"id", resp.shadow_id()}};
    return out;
  }
  absl::StatusOr<Json> SetPolicyVersion(absl::string_view admin_token, absl::string_view document,
                                        bool shadow) override {
    v1::SetPolicyRequest req;
    req.set_document(std::string(document));
    req.set_shadow(shadow);
    v1::SetPolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->SetPolicy(&ctx, req, &resp), ctx));
    Json missing = Json::array();
    for (const std::string& name : resp.missing_refvalues()) missing.push_back(name);
    return Json{{"id", resp.id()}, {"missing_refvalues", missing}};
  }
  absl::StatusOr<Json> PolicyHistory(absl::string_view admin_token) override {
    v1::PolicyHistoryRequest req;
    v1::PolicyHistoryResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->PolicyHistory(&ctx, req, &resp), ctx));
    return common::ParseJson(resp.history_json());
  }
  absl::StatusOr<std::string> ActivatePolicy(absl::string_view admin_token,
                                             absl::string_view version, bool shadow) override {
    v1::ActivatePolicyRequest req;
    req.set_version(std::string(version));
    req.set_shadow(shadow);
    v1::ActivatePolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->ActivatePolicy(&ctx, req, &resp), ctx));
    return resp.id();
  }
  absl::Status ClearShadowPolicy(absl::string_view admin_token) override {
    v1::ClearShadowPolicyRequest req;
    v1::ClearShadowPolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    return FromGrpc(admin_->ClearShadowPolicy(&ctx, req, &resp), ctx);
  }
  absl::StatusOr<Json> EvaluatePolicy(absl::string_view admin_token, const Json& claims,
                                      absl::string_view resource,
                                      absl::string_view document) override {
    v1::EvaluatePolicyRequest req;
    req.set_claims_json(common::DumpJson(claims));
    req.set_resource_path(std::string(resource));
    req.set_document(std::string(document));
    v1::EvaluatePolicyResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->EvaluatePolicy(&ctx, req, &resp), ctx));
    return common::ParseJson(resp.decision_json());
  }
  absl::StatusOr<Json> SetRefValues(absl::string_view admin_token, absl::string_view name,
                                    absl::string_view document) override {
    v1::SetReferenceValuesRequest req;
    req.set_name(std::string(name));
    req.set_document(std::string(document));
    v1::ReferenceValuesResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->SetReferenceValues(&ctx, req, &resp), ctx));
    return common::ParseJson(resp.set_json());
  }
  absl::StatusOr<Json> GetRefValues(absl::string_view admin_token,
                                    absl::string_view name) override {
    v1::GetReferenceValuesRequest req;
    req.set_name(std::string(name));
    v1::ReferenceValuesResponse resp;
    ::grpc::ClientContext ctx;
    Authorize(ctx, admin_token);
    KBS_RETURN_IF_ERROR(FromGrpc(admin_->GetReferenceValues(&ctx, req, &resp), ctx));
    return common::ParseJson(resp.set_json());
  }

 private:
  static void Authorize(::grpc::ClientContext& ctx, absl::string_view token) {
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
  }

  std::unique_ptr<v1::KeyBroker::Stub> broker_;
  std::unique_ptr<v1::Admin::Stub> admin_;
  std::string session_id_;
  std::string token_;
};

}  // namespace

absl::Status HttpErrorToStatus(int http_status, absl::string_view body) {
  std::string message = absl::StrCat("HTTP ", http_status);
  auto json = common::ParseJson(body);
  if (json.ok() && json->is_object()) {
    const Json* type = common::FindMember(*json, "type");
    const Json* detail = common::FindMember(*json, "detail");
    if (type != nullptr && type->is_string()) {
      std::string t = type->get<std::string>();
      absl::StrAppend(&message, " ", t.substr(t.rfind('/') + 1));
    }
    if (detail != nullptr && detail->is_string()) {
      absl::StrAppend(&message, ": ", detail->get<std::string>());
    }
  } else {
    absl::StrAppend(&message, ": ", body.substr(0, 256));
  }
  return absl::Status(CodeForHttp(http_status), message);
}

absl::StatusOr<std::unique_ptr<KbsClient>> NewHttpKbsClient(
    absl::string_view url, const common::HttpClientOptions& options) {
  KBS_ASSIGN_OR_RETURN(std::unique_ptr<common::HttpClient> http,
                       common::HttpClient::Create(url, options));
  return std::unique_ptr<KbsClient>(new HttpKbsClient(std::move(http)));
}

absl::StatusOr<std::unique_ptr<KbsClient>> NewGrpcKbsClient(absl::string_view address,
                                                            const std::string& ca_file) {
  std::shared_ptr<::grpc::ChannelCredentials> creds;
  if (!ca_file.empty()) {
    ::grpc::SslCredentialsOptions ssl;
    KBS_ASSIGN_OR_RETURN(ssl.pem_root_certs, common::ReadFile(ca_file));
    creds = ::grpc::SslCredentials(ssl);
  } else {
    creds = ::grpc::InsecureChannelCredentials();
  }
  ::grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(16 << 20);
  auto channel = ::grpc::CreateCustomChannel(std::string(address), creds, args);
  return std::unique_ptr<KbsClient>(new GrpcKbsClient(std::move(channel)));
}

absl::StatusOr<std::string> RunSampleRcar(KbsClient& client, absl::string_view path,
                                          const RcarOptions& options) {
  KBS_ASSIGN_OR_RETURN(std::string nonce, client.Auth(options.tee));
  KBS_ASSIGN_OR_RETURN(TeeKeyPair key, TeeKeyPair::Generate(options.key_type));
  absl::StatusOr<AttestRequest> built =
      options.evidence_maker
          ? BuildAttestation(nonce, key, options.evidence_maker, options.evidence.init_data_toml)
          : BuildSampleAttestation(nonce, key, options.evidence);
  KBS_ASSIGN_OR_RETURN(AttestRequest request, std::move(built));
  KBS_RETURN_IF_ERROR(client.Attest(request).status());
  KBS_ASSIGN_OR_RETURN(std::string jwe,
                       client.GetResourceVersion(path, options.use_token, options.version,
                                                 options.released_version));
  return DecryptResource(jwe, key);
}

}  // namespace kbs::client
