#include "kbs/http/router.h"

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
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

std::string MetadataJson(const keystore::ResourceMetadata& md) {
  return common::DumpJson(
      Json{{"path", md.path},
           {"size", md.size},
           {"sha256", md.sha256_hex},
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
    return JsonResponse(200, common::DumpJson(broker_->jwks()));
  }
  if (path == "/healthz" && method == "GET") {
    route = Route::kHealth;
    return JsonResponse(200, R"({"status":"ok"})");
  }
  if (path == "/metrics" && method == "GET") {
    route = Route::kMetrics;
    HttpResponse r =
        JsonResponse(200, metrics_ != nullptr ? metrics_->Render(sessions_->size()) : "");
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
    auto attest = broker_->Attest(session_id, *req);
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
      Credentials creds{SessionIdFromCookie(request.Header("cookie")), admin_token};
      auto jwe = broker_->GetResource(creds, path);
      if (!jwe.ok()) return ErrorResponse(jwe.status());
      return JsonResponse(200, jwe->ToJsonString());
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
  if (path == "resource-policy") {
    route = Route::kAdmin;
    std::string admin_token = BearerToken(request.Header("authorization"));
    if (method == "POST") {
      // kbs-client sends {"policy": "<base64url, no padding>"}.
      auto body = common::ParseJson(request.body);
      if (!body.ok()) return ErrorResponse(WithKind(body.status(), ErrorKind::kParsePolicyError));
      auto encoded = common::GetStringMember(*body, "policy", "resource-policy request");
      if (!encoded.ok()) {
        return ErrorResponse(WithKind(encoded.status(), ErrorKind::kParsePolicyError));
      }
      auto document = common::Base64UrlDecode(*encoded);
      if (!document.ok()) {
        return ErrorResponse(KbsError(absl::StatusCode::kInvalidArgument,
                                      ErrorKind::kParsePolicyError,
                                      "`policy` must be base64url without padding"));
      }
      auto id = broker_->SetPolicy(admin_token, *document);
      if (!id.ok()) return ErrorResponse(id.status());
      return JsonResponse(200, common::DumpJson(Json{{"id", *id}}));
    }
    if (method == "GET") {
      auto policy = broker_->GetPolicy(admin_token);
      if (!policy.ok()) return ErrorResponse(policy.status());
      return JsonResponse(200, common::DumpJson(*policy));
    }
    return PluginNotFound(request.target);
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

}  // namespace kbs::http
