#include "kbs/http/router.h"

#include <map>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/encoding.h"
#include "common/json.h"
#include "kbs/core/errors.h"

namespace kbs::http {
namespace {

using common::Json;

constexpr absl::string_view kPrefix = "/kbs/v0/";

HttpResponse JsonResponse(int status, std::string body) {
  HttpResponse r;
  r.status = status;
  r.body = std::move(body);
  return r;
}

HttpResponse PluginNotFound(absl::string_view path) {
  return Router::ErrorResponse(KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginNotFound,
                                        absl::StrCat("no handler for ", path.substr(0, 128))));
}

std::map<std::string, std::string> QueryParams(absl::string_view target);

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

Json SigningKeysJson(const std::vector<token::SigningKeyInfo>& keys) {
  Json list = Json::array();
  for (const token::SigningKeyInfo& info : keys) list.push_back(info.ToJson());
  return Json{{"keys", std::move(list)}};
}

Json VersionJson(const keystore::ResourceVersion& v) {
  return Json{{"version", v.version},
              {"state", std::string(keystore::VersionStateName(v.state))},
              {"size", v.size},
              {"sha256", v.sha256_hex},
              {"kek", v.kek_id},
              {"created", Rfc3339(v.created)},
              {"updated", Rfc3339(v.updated)}};
}

std::string MetadataJson(const keystore::ResourceMetadata& md) {
  return common::DumpJson(
      Json{{"path", md.path},
           {"size", md.size},
           {"sha256", md.sha256_hex},
           {"version", md.version},
           {"latest_version", md.latest_version},
           {"created", absl::FormatTime(absl::RFC3339_sec, md.created, absl::UTCTimeZone())},
           {"updated", absl::FormatTime(absl::RFC3339_sec, md.updated, absl::UTCTimeZone())}});
}

}  // namespace

absl::string_view ReasonPhrase(int status) {
  switch (status) {
    case 100:
      return "Continue";
    case 200:
      return "OK";
    case 400:
      return "Bad Request";
    case 401:
      return "Unauthorized";
    case 403:
      return "Forbidden";
    case 404:
      return "Not Found";
    case 405:
      return "Method Not Allowed";
    case 408:
      return "Request Timeout";
    case 409:
      return "Conflict";
    case 413:
      return "Payload Too Large";
    case 500:
      return "Internal Server Error";
    case 503:
      return "Service Unavailable";
    default:
      return "Unknown";
  }
}

std::string SessionCookie(absl::string_view session_id, absl::Time expires) {
  return absl::StrCat(kSessionCookie, "=", session_id, "; Expires=",
                      absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", expires, absl::UTCTimeZone()));
}

std::string SessionIdFromCookie(absl::string_view cookie_header) {
  for (absl::string_view pair : absl::StrSplit(cookie_header, ';')) {
    pair = absl::StripAsciiWhitespace(pair);
    if (absl::ConsumePrefix(&pair, kSessionCookie) && absl::ConsumePrefix(&pair, "=")) {
      return std::string(absl::StripAsciiWhitespace(pair));
    }
  }
  return "";
}

std::string BearerToken(absl::string_view authorization_header) {
  absl::string_view value = absl::StripAsciiWhitespace(authorization_header);
  if (value.size() > 7 && absl::EqualsIgnoreCase(value.substr(0, 7), "bearer ")) {
    return std::string(absl::StripAsciiWhitespace(value.substr(7)));
  }
  return "";
}

HttpResponse Router::ErrorResponse(const absl::Status& status) {
  HttpResponse r = JsonResponse(HttpStatusFor(status), ErrorJson(status));
  if (r.status == 503) r.headers.emplace_back("Retry-After", "1");
  return r;
}

HttpResponse Router::Overloaded(int limit) {
  HttpResponse r = ErrorResponse(
      KbsError(absl::StatusCode::kUnavailable, ErrorKind::kHttpFailed,
               absl::StrCat("the KBS has ", limit, " requests in progress; retry later")));
  if (metrics_ != nullptr) metrics_->Record(Route::kOther, r.status, absl::ZeroDuration());
  return r;
}

bool Router::IsProbe(const HttpRequest& request) {
  if (request.method != "GET") return false;
  absl::string_view path = request.target;
  if (size_t q = path.find('?'); q != absl::string_view::npos) path = path.substr(0, q);
  return path == "/healthz" || path == "/readyz" || path == "/metrics";
}

HttpResponse Router::Handle(const HttpRequest& request) {
  absl::Time start = absl::Now();  // for latency metrics only
  Route route = Route::kOther;
  HttpResponse response = Dispatch(request, route);
  if (metrics_ != nullptr) metrics_->Record(route, response.status, absl::Now() - start);
  return response;
}

HttpResponse Router::Dispatch(const HttpRequest& request, Route& route) {
  absl::string_view path = request.target;
  if (size_t q = path.find('?'); q != absl::string_view::npos) path = path.substr(0, q);
  const std::string& method = request.method;

  if (path == "/.well-known/jwks.json" && method == "GET") {
    route = Route::kWellKnown;
    return JsonResponse(200, common::DumpJson(broker_->Jwks()));
  }
  if (path == "/.well-known/openid-configuration" && method == "GET") {
    route = Route::kWellKnown;
    auto doc = broker_->OpenIdConfiguration();
    if (!doc.ok()) return ErrorResponse(doc.status());
    return JsonResponse(200, common::DumpJson(*doc));
  }
  if (path == "/healthz" && method == "GET") {
    route = Route::kHealth;
    return JsonResponse(200, R"({"status":"ok"})");
  }
  if (path == "/readyz" && method == "GET") {
    // Liveness stays /healthz: restarting does not mend a halted log or a
    // missing HSM; readiness says releases would fail and why.
    route = Route::kReady;
    std::vector<std::string> reasons = broker_->NotReadyReasons();
    if (reasons.empty()) return JsonResponse(200, R"({"status":"ready"})");
    return JsonResponse(503, common::DumpJson(Json{{"status", "not ready"}, {"reasons", reasons}}));
  }
  if (path == "/metrics" && method == "GET") {
    route = Route::kMetrics;
    HttpResponse r =
        JsonResponse(200, metrics_ != nullptr ? absl::StrCat(metrics_->Render(sessions_->size()),
                                                             broker_->RenderDecisionMetrics(),
                                                             broker_->RenderStateMetrics())
                                              : "");
    r.content_type = "text/plain; version=0.0.4";
    return r;
  }
  if (!absl::ConsumePrefix(&path, kPrefix)) return PluginNotFound(request.target);

  if (path == "auth" && method == "POST") {
    route = Route::kAuth;
    auto req = ParseAuthRequest(request.body);
    if (!req.ok()) return ErrorResponse(WithKind(req.status(), ErrorKind::kSerdeError));
    auto auth = broker_->Auth(*req);
    if (!auth.ok()) return ErrorResponse(auth.status());
    HttpResponse r = JsonResponse(
        200, common::DumpJson(Json{{"nonce", auth->nonce}, {"extra-params", auth->extra_params}}));
    r.headers.emplace_back("Set-Cookie", SessionCookie(auth->session_id, auth->expires));
    return r;
  }
  if (path == "attest" && method == "POST") {
    route = Route::kAttest;
    std::string session_id = SessionIdFromCookie(request.Header("cookie"));
    auto req = ParseAttestRequest(request.body);
    if (!req.ok()) return ErrorResponse(WithKind(req.status(), ErrorKind::kSerdeError));
    auto attest = broker_->Attest(session_id, *req, request.peer);
    if (!attest.ok()) return ErrorResponse(attest.status());
    HttpResponse r = JsonResponse(200, common::DumpJson(Json{{"token", attest->token}}));
    // The session keeps its original expiry; the cookie is re-sent as is.
    r.headers.emplace_back("Set-Cookie", SessionCookie(session_id, attest->session_expires));
    return r;
  }
  if (absl::ConsumePrefix(&path, "resource/")) {
    std::string admin_token = BearerToken(request.Header("authorization"));
    if (method == "GET") {
      route = Route::kResourceGet;
      Credentials creds{SessionIdFromCookie(request.Header("cookie")), admin_token, request.peer};
      // `?version=N` selects a version; clients that send none get the
      // latest enabled one (the CoCo protocol is unchanged).
      std::optional<int64_t> version;
      auto params = QueryParams(request.target);
      if (auto it = params.find("version"); it != params.end()) {
        int64_t v = 0;
        if (!absl::SimpleAtoi(it->second, &v) || v <= 0) {
          return ErrorResponse(KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                                        "query parameter `version` must be a positive integer"));
        }
        version = v;
      }
      auto released = broker_->GetResource(creds, path, version);
      if (!released.ok()) return ErrorResponse(released.status());
      HttpResponse r = JsonResponse(200, released->jwe.ToJsonString());
      r.headers.emplace_back("KBS-Resource-Version", absl::StrCat(released->version));
      return r;
    }
    route = Route::kAdmin;
    if (method == "POST" || method == "PUT") {
      auto md = broker_->PutResource(admin_token, path, request.body);
      if (!md.ok()) return ErrorResponse(md.status());
      return JsonResponse(200, MetadataJson(*md));
    }
    if (method == "DELETE") {
      absl::Status s = broker_->DeleteResource(admin_token, path);
      if (!s.ok()) return ErrorResponse(s);
      return JsonResponse(200, "{}");
    }
    return PluginNotFound(request.target);
  }
  if (path == "resource-policy" || absl::StartsWith(path, "resource-policy/")) {
    route = Route::kAdmin;
    return PolicyAdmin(request, path);
  }
  if (absl::StartsWith(path, "audit/") && audit_ != nullptr) {
    route = Route::kAdmin;
    return AuditRequest(request, path.substr(6));
  }
  if (path == "reference-values" || absl::StartsWith(path, "reference-values/")) {
    route = Route::kAdmin;
    return RefValuesAdmin(request, path);
  }
  if (absl::StartsWith(path, "admin/")) {
    route = Route::kAdmin;
    if (auto r = KeyAdmin(request, path.substr(6)); r.has_value()) return *std::move(r);
  }
  if (path == "admin/resources" && method == "GET") {
    route = Route::kAdmin;
    auto list = broker_->ListResources(BearerToken(request.Header("authorization")));
    if (!list.ok()) return ErrorResponse(list.status());
    std::string body = "{\"resources\":[";
    for (size_t i = 0; i < list->size(); ++i) {
      if (i > 0) body.push_back(',');
      body += MetadataJson((*list)[i]);
    }
    body += "]}";
    return JsonResponse(200, std::move(body));
  }
  return PluginNotFound(request.target);
}

namespace {

// A JSON request body's optional boolean member.
absl::StatusOr<bool> OptionalBool(const Json& body, absl::string_view key) {
  const Json* v = common::FindMember(body, key);
  if (v == nullptr || v->is_null()) return false;
  if (!v->is_boolean()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    absl::StrCat("`", key, "` must be a boolean"));
  }
  return v->get<bool>();
}

// kbs-client sends policies as {"policy": "<base64url, no padding>"}.
absl::StatusOr<std::string> DecodePolicyMember(const Json& body, bool required) {
  const Json* v = common::FindMember(body, "policy");
  if (v == nullptr && !required) return std::string();
  auto encoded = common::GetStringMember(body, "policy", "resource-policy request");
  if (!encoded.ok()) return WithKind(encoded.status(), ErrorKind::kParsePolicyError);
  auto document = common::Base64UrlDecode(*encoded);
  if (!document.ok()) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kParsePolicyError,
                    "`policy` must be base64url without padding");
  }
  return *document;
}

}  // namespace

HttpResponse Router::PolicyAdmin(const HttpRequest& request, absl::string_view path) {
  const std::string& method = request.method;
  std::string admin_token = BearerToken(request.Header("authorization"));
  auto json_body = [&]() -> absl::StatusOr<Json> {
    auto body = common::ParseJson(request.body);
    if (!body.ok()) return WithKind(body.status(), ErrorKind::kSerdeError);
    if (!body->is_object()) {
      return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                      "the request body must be a JSON object");
    }
    return body;
  };
  if (path == "resource-policy" && method == "POST") {
    auto body = json_body();
    if (!body.ok()) return ErrorResponse(WithKind(body.status(), ErrorKind::kParsePolicyError));
    auto document = DecodePolicyMember(*body, true);
    if (!document.ok()) return ErrorResponse(document.status());
    auto shadow = OptionalBool(*body, "shadow");
    if (!shadow.ok()) return ErrorResponse(shadow.status());
    auto set = broker_->SetPolicy(admin_token, *document, *shadow);
    if (!set.ok()) return ErrorResponse(set.status());
    return JsonResponse(200, common::DumpJson(Json{{"id", set->id},
                                                   {"missing_refvalues", set->missing_refvalues}}));
  }
  if (path == "resource-policy" && method == "GET") {
    auto policy = broker_->GetPolicy(admin_token);
    if (!policy.ok()) return ErrorResponse(policy.status());
    return JsonResponse(200, common::DumpJson(*policy));
  }
  if (path == "resource-policy/history" && method == "GET") {
    auto history = broker_->PolicyHistory(admin_token);
    if (!history.ok()) return ErrorResponse(history.status());
    return JsonResponse(200, common::DumpJson(*history));
  }
  if (path == "resource-policy/activate" && method == "POST") {
    auto body = json_body();
    if (!body.ok()) return ErrorResponse(body.status());
    auto version = common::GetStringMember(*body, "version", "activate request");
    if (!version.ok()) return ErrorResponse(WithKind(version.status(), ErrorKind::kSerdeError));
    auto shadow = OptionalBool(*body, "shadow");
    if (!shadow.ok()) return ErrorResponse(shadow.status());
    auto id = broker_->ActivatePolicy(admin_token, *version, *shadow);
    if (!id.ok()) return ErrorResponse(id.status());
    return JsonResponse(200, common::DumpJson(Json{{"id", *id}, {"shadow", *shadow}}));
  }
  if (path == "resource-policy/shadow" && method == "DELETE") {
    absl::Status s = broker_->ClearShadowPolicy(admin_token);
    if (!s.ok()) return ErrorResponse(s);
    return JsonResponse(200, "{}");
  }
  if (path == "resource-policy/evaluate" && method == "POST") {
    auto body = json_body();
    if (!body.ok()) return ErrorResponse(body.status());
    auto resource = common::GetStringMember(*body, "resource", "evaluate request");
    if (!resource.ok()) return ErrorResponse(WithKind(resource.status(), ErrorKind::kSerdeError));
    auto claims = common::GetObjectMember(*body, "claims", "evaluate request");
    if (!claims.ok()) return ErrorResponse(WithKind(claims.status(), ErrorKind::kSerdeError));
    auto document = DecodePolicyMember(*body, false);
    if (!document.ok()) return ErrorResponse(document.status());
    auto decision = broker_->EvaluatePolicy(admin_token, **claims, *resource, *document);
    if (!decision.ok()) return ErrorResponse(decision.status());
    return JsonResponse(200, common::DumpJson(*decision));
  }
  return PluginNotFound(request.target);
}

std::optional<HttpResponse> Router::KeyAdmin(const HttpRequest& request, absl::string_view path) {
  const std::string token = BearerToken(request.Header("authorization"));
  const std::string& method = request.method;
  auto body_json = [&]() -> absl::StatusOr<Json> {
    auto body = common::ParseJson(request.body.empty() ? "{}" : request.body);
    if (!body.ok() || !body->is_object()) {
      return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                      "the request body must be a JSON object");
    }
    return body;
  };
  // GET/POST admin/resource-versions/REPO/TYPE/TAG
  if (absl::ConsumePrefix(&path, "resource-versions/")) {
    if (method == "GET") {
      auto versions = broker_->ResourceVersions(token, path);
      if (!versions.ok()) return ErrorResponse(versions.status());
      Json list = Json::array();
      for (const keystore::ResourceVersion& v : *versions) list.push_back(VersionJson(v));
      return JsonResponse(200, common::DumpJson(Json{{"path", path}, {"versions", list}}));
    }
    if (method == "POST") {
      auto body = body_json();
      if (!body.ok()) return ErrorResponse(body.status());
      const Json* version = common::FindMember(*body, "version");
      auto state_name = common::GetStringMember(*body, "state", "version request");
      std::optional<keystore::VersionState> state =
          state_name.ok() ? keystore::VersionStateFromName(*state_name) : std::nullopt;
      if (version == nullptr || !version->is_number_integer() || version->get<int64_t>() <= 0 ||
          !state.has_value()) {
        return ErrorResponse(KbsError(
            absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
            "expected {\"version\": N, \"state\": \"enabled\"|\"disabled\"|\"destroyed\"}"));
      }
      auto v = broker_->SetResourceVersionState(token, path, version->get<int64_t>(), *state);
      if (!v.ok()) return ErrorResponse(v.status());
      return JsonResponse(200, common::DumpJson(VersionJson(*v)));
    }
    return PluginNotFound(request.target);
  }
  // POST admin/keys/REPO/TYPE/TAG {"type": "aes256", "rotate": false}
  if (absl::ConsumePrefix(&path, "keys/") && method == "POST") {
    auto body = body_json();
    if (!body.ok()) return ErrorResponse(body.status());
    std::string type = "aes256";
    if (const Json* t = common::FindMember(*body, "type"); t != nullptr) {
      if (!t->is_string()) {
        return ErrorResponse(KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                                      "`type` must be a string"));
      }
      type = t->get<std::string>();
    }
    auto rotate = OptionalBool(*body, "rotate");
    if (!rotate.ok()) return ErrorResponse(rotate.status());
    auto md = broker_->GenerateKey(token, path, type, *rotate);
    if (!md.ok()) return ErrorResponse(md.status());
    return JsonResponse(200, MetadataJson(*md));
  }
  if (path == "token-keys" && method == "GET") {
    auto keys = broker_->TokenSigningKeys(token);
    if (!keys.ok()) return ErrorResponse(keys.status());
    return JsonResponse(200, common::DumpJson(SigningKeysJson(*keys)));
  }
  if (path == "token-keys/rotate" && method == "POST") {
    auto rotated = broker_->RotateTokenSigningKey(token);
    if (!rotated.ok()) return ErrorResponse(rotated.status());
    auto keys = broker_->TokenSigningKeys(token);
    if (!keys.ok()) return ErrorResponse(keys.status());
    Json out = SigningKeysJson(*keys);
    out["current"] = rotated->current;
    out["retired"] = rotated->retired;
    return JsonResponse(200, common::DumpJson(out));
  }
  if (path == "kek/rotate" && method == "POST") {
    auto rotated = broker_->RotateKek(token);
    if (!rotated.ok()) return ErrorResponse(rotated.status());
    return JsonResponse(
        200, common::DumpJson(Json{{"kek", rotated->kek_id}, {"rewrapped", rotated->rewrapped}}));
  }
  return std::nullopt;
}

namespace {

// application/x-www-form-urlencoded query parameters (percent-decoding and
// '+' as space); a malformed escape is kept literally.
std::map<std::string, std::string> QueryParams(absl::string_view target) {
  std::map<std::string, std::string> out;
  size_t q = target.find('?');
  if (q == absl::string_view::npos) return out;
  auto decode = [](absl::string_view in) {
    std::string s;
    for (size_t i = 0; i < in.size(); ++i) {
      int hi, lo;
      auto hex = [](char c) {
        return c >= '0' && c <= '9'   ? c - '0'
               : c >= 'a' && c <= 'f' ? c - 'a' + 10
               : c >= 'A' && c <= 'F' ? c - 'A' + 10
                                      : -1;
      };
      if (in[i] == '%' && i + 2 < in.size() && (hi = hex(in[i + 1])) >= 0 &&
          (lo = hex(in[i + 2])) >= 0) {
        s.push_back(static_cast<char>(hi * 16 + lo));
        i += 2;
      } else {
        s.push_back(in[i] == '+' ? ' ' : in[i]);
      }
    }
    return s;
  };
  for (absl::string_view pair : absl::StrSplit(target.substr(q + 1), '&', absl::SkipEmpty())) {
    size_t eq = pair.find('=');
    out[decode(pair.substr(0, eq))] =
        eq == absl::string_view::npos ? "" : decode(pair.substr(eq + 1));
  }
  return out;
}

absl::StatusOr<uint64_t> U64Param(const std::map<std::string, std::string>& params,
                                  const std::string& name, std::optional<uint64_t> fallback) {
  auto it = params.find(name);
  if (it == params.end()) {
    if (fallback.has_value()) return *fallback;
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    absl::StrCat("missing query parameter `", name, "`"));
  }
  uint64_t v;
  if (!absl::SimpleAtoi(it->second, &v)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    absl::StrCat("query parameter `", name, "` must be an unsigned integer"));
  }
  return v;
}

absl::StatusOr<std::optional<absl::Time>> TimeParam(
    const std::map<std::string, std::string>& params, const std::string& name) {
  auto it = params.find(name);
  if (it == params.end()) return std::optional<absl::Time>();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, it->second, &t, &err)) {
    return KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                    absl::StrCat("query parameter `", name, "` must be an RFC 3339 time"));
  }
  return std::optional<absl::Time>(t);
}

std::string ReceiptsJson(const std::vector<receipts::StoredReceipt>& rows, bool paged,
                         size_t limit) {
  Json list = Json::array();
  for (const receipts::StoredReceipt& r : rows)
    list.push_back({{"index", r.index}, {"leaf", r.leaf}});
  Json out = {{"receipts", std::move(list)}};
  if (paged && rows.size() == limit && !rows.empty()) out["next"] = rows.back().index + 1;
  return common::DumpJson(out);
}

HttpResponse TextResponse(std::string body) {
  HttpResponse r;
  r.status = 200;
  r.content_type = "text/plain; charset=utf-8";
  r.body = std::move(body);
  return r;
}

}  // namespace

HttpResponse Router::AuditRequest(const HttpRequest& request, absl::string_view path) {
  if (request.method != "GET" && !(request.method == "POST" && path == "checkpoint")) {
    return PluginNotFound(request.target);
  }
  std::string token = BearerToken(request.Header("authorization"));
  auto params = QueryParams(request.target);
  if (path == "log-key") return TextResponse(absl::StrCat(audit_->LogKey(), "\n"));
  if (path == "checkpoint") {
    auto note = audit_->Checkpoint(token, request.method == "POST" || params.count("fresh") > 0);
    if (!note.ok()) return ErrorResponse(note.status());
    return TextResponse(*std::move(note));
  }
  if (path == "receipts") {
    auto start = U64Param(params, "start", std::nullopt);
    if (!start.ok()) return ErrorResponse(start.status());
    auto end = U64Param(params, "end", *start > UINT64_MAX - 100 ? UINT64_MAX : *start + 100);
    if (!end.ok()) return ErrorResponse(end.status());
    auto rows = audit_->Receipts(token, *start, *end);
    if (!rows.ok()) return ErrorResponse(rows.status());
    return JsonResponse(200, ReceiptsJson(*rows, false, 0));
  }
  if (path == "leaves") {
    // Bulk download for `kbsctl audit verify|export`: the leaf bytes, one
    // per line (JCS has no raw newlines), up to 10,000 per request.
    auto start = U64Param(params, "start", std::nullopt);
    if (!start.ok()) return ErrorResponse(start.status());
    auto end = U64Param(params, "end", *start > UINT64_MAX - 1000 ? UINT64_MAX : *start + 1000);
    if (!end.ok()) return ErrorResponse(end.status());
    auto lines = audit_->LeafLines(token, *start, *end);
    if (!lines.ok()) return ErrorResponse(lines.status());
    HttpResponse r;
    r.status = 200;
    r.content_type = "application/jsonl";
    r.body = *std::move(lines);
    return r;
  }
  if (path == "query") {
    receipts::ReceiptQuery q;
    auto from = TimeParam(params, "from");
    auto to = TimeParam(params, "to");
    auto after = U64Param(params, "after", 0);
    auto limit = U64Param(params, "limit", 100);
    for (const absl::Status& s : {from.status(), to.status(), after.status(), limit.status()}) {
      if (!s.ok()) return ErrorResponse(s);
    }
    q.from = *from;
    q.to = *to;
    q.after_index = *after;
    if (*limit == 0) {
      // Query would return one match and no `next`: a client paging by it
      // would stop early.
      return ErrorResponse(KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kSerdeError,
                                    "query parameter `limit` must be at least 1 (at most 1000)"));
    }
    q.limit = static_cast<size_t>(std::min<uint64_t>(*limit, 1000));
    for (auto [name, field] : std::initializer_list<std::pair<const char*, std::string*>>{
             {"decision", &q.decision},
             {"resource", &q.resource},
             {"key_version", &q.key_version},
             {"image", &q.image},
             {"measurement", &q.measurement},
             {"tee", &q.tee},
             {"policy", &q.policy_version},
             {"rule", &q.rule},
             {"chip_id", &q.chip_id}}) {
      if (auto it = params.find(name); it != params.end()) *field = it->second;
    }
    auto rows = audit_->Query(token, q);
    if (!rows.ok()) return ErrorResponse(rows.status());
    return JsonResponse(200, ReceiptsJson(*rows, true, q.limit));
  }
  if (path == "proof/inclusion") {
    auto index = U64Param(params, "index", std::nullopt);
    auto size = U64Param(params, "size", std::nullopt);
    if (!index.ok()) return ErrorResponse(index.status());
    if (!size.ok()) return ErrorResponse(size.status());
    auto proof = audit_->InclusionProof(token, *index, *size);
    if (!proof.ok()) return ErrorResponse(proof.status());
    return JsonResponse(200, common::DumpJson(*proof));
  }
  if (path == "proof/consistency") {
    auto size1 = U64Param(params, "size1", std::nullopt);
    auto size2 = U64Param(params, "size2", std::nullopt);
    if (!size1.ok()) return ErrorResponse(size1.status());
    if (!size2.ok()) return ErrorResponse(size2.status());
    auto proof = audit_->ConsistencyProof(token, *size1, *size2);
    if (!proof.ok()) return ErrorResponse(proof.status());
    return JsonResponse(200, common::DumpJson(*proof));
  }
  uint64_t index;
  if (absl::ConsumePrefix(&path, "tlog-proof/") && absl::SimpleAtoi(path, &index)) {
    auto proof = audit_->Prove(token, index);
    if (!proof.ok()) return ErrorResponse(proof.status());
    return TextResponse(*std::move(proof));
  }
  if (absl::ConsumePrefix(&path, "evidence/") && absl::SimpleAtoi(path, &index)) {
    auto evidence = audit_->Evidence(token, index);
    if (!evidence.ok()) return ErrorResponse(evidence.status());
    return JsonResponse(200, *std::move(evidence));
  }
  return PluginNotFound(request.target);
}

HttpResponse Router::RefValuesAdmin(const HttpRequest& request, absl::string_view path) {
  const std::string& method = request.method;
  std::string admin_token = BearerToken(request.Header("authorization"));
  if (path == "reference-values") {
    if (method != "GET") return PluginNotFound(request.target);
    auto list = broker_->ListRefValues(admin_token);
    if (!list.ok()) return ErrorResponse(list.status());
    return JsonResponse(200, common::DumpJson(Json{{"sets", *list}}));
  }
  absl::string_view name = path.substr(std::string_view("reference-values/").size());
  if (method == "PUT" || method == "POST") {
    auto set = broker_->SetRefValues(admin_token, name, request.body);
    if (!set.ok()) return ErrorResponse(set.status());
    return JsonResponse(200, common::DumpJson(*set));
  }
  if (method == "GET") {
    auto set = broker_->GetRefValues(admin_token, name);
    if (!set.ok()) return ErrorResponse(set.status());
    return JsonResponse(200, common::DumpJson(*set));
  }
  if (method == "DELETE") {
    absl::Status s = broker_->DeleteRefValues(admin_token, name);
    if (!s.ok()) return ErrorResponse(s);
    return JsonResponse(200, "{}");
  }
  return PluginNotFound(request.target);
}

}  // namespace kbs::http
