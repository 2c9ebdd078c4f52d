// The HTTP adapter: maps the KBS protocol's REST routes onto the broker.
// Decodes requests, calls the broker, encodes responses; no protocol rules
// live here. Every error is the protocol's JSON ErrorInformation.
#ifndef KBS_KBS_HTTP_ROUTER_H_
#define KBS_KBS_HTTP_ROUTER_H_

#include "absl/status/status.h"
#include "kbs/core/audit.h"
#include "kbs/core/broker.h"
#include "kbs/http/http_message.h"
#include "kbs/http/metrics.h"
#include "kbs/session/session_store.h"

namespace kbs::http {

// Thread-safe (the broker is).
class Router final {
 public:
  // All pointers must outlive the router.
  // `audit` may be null (no auditor endpoints).
  Router(Broker* broker, const session::SessionStore* sessions, Metrics* metrics,
         Audit* audit = nullptr)
      : broker_(broker), sessions_(sessions), metrics_(metrics), audit_(audit) {}

  HttpResponse Handle(const HttpRequest& request);

  // The response for a transport-level failure (oversized or malformed
  // request) that never reached routing.
  static HttpResponse ErrorResponse(const absl::Status& status);
  // The 503 for a request refused before routing because the server has
  // too many in progress; counted in the metrics.
  HttpResponse Overloaded(int limit);
  // Probes that are served whatever the load (liveness, readiness, metrics).
  static bool IsProbe(const HttpRequest& request);

 private:
  HttpResponse Dispatch(const HttpRequest& request, Route& route);
  HttpResponse PolicyAdmin(const HttpRequest& request, absl::string_view path);
  // admin/resource-versions/..., admin/keys/..., admin/kek/rotate; nullopt
  // for other admin paths.
  std::optional<HttpResponse> KeyAdmin(const HttpRequest& request, absl::string_view path);
  HttpResponse RefValuesAdmin(const HttpRequest& request, absl::string_view path);
  HttpResponse AuditRequest(const HttpRequest& request, absl::string_view path);

  Broker* broker_;
  const session::SessionStore* sessions_;
  Metrics* metrics_;
  Audit* audit_;
};

// "kbs-session-id=<id>; Expires=<IMF-fixdate>" (no Path, Domain or Secure:
// kbs-protocol.md §2.2).
std::string SessionCookie(absl::string_view session_id, absl::Time expires);
// The kbs-session-id value from a Cookie header, or "".
std::string SessionIdFromCookie(absl::string_view cookie_header);
// The token of "Authorization: Bearer <token>", or "".
std::string BearerToken(absl::string_view authorization_header);

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_ROUTER_H_
