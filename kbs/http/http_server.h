// The HTTP(S) listener for the KBS protocol: Boost.Beast over Asio, async,
// keep-alive, with the limits the protocol needs (large Bearer tokens:
// header fields of 64 KiB+ and heads of 256 KiB+, a configurable body
// limit), timeouts on idle and slow clients, and TLS through the system
// OpenSSL. Requests are handed to the Router.
#ifndef KBS_KBS_HTTP_HTTP_SERVER_H_
#define KBS_KBS_HTTP_HTTP_SERVER_H_

#include <cstdint>
#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "kbs/http/router.h"

namespace kbs::http {

struct HttpServerOptions {
  std::string host = "127.0.0.1";
  uint16_t port = 8080;  // 0 picks a free port (tests)
  size_t max_header_field_bytes = 128 * 1024;
  size_t max_head_bytes = 256 * 1024;
  size_t max_body_bytes = 2 * 1024 * 1024;
  int threads = 2;
  // A request head (and body) must arrive within this time.
  absl::Duration read_timeout = absl::Seconds(30);
  // Keep-alive connections idle longer than this are closed.
  absl::Duration idle_timeout = absl::Seconds(60);
  // PEM files; both set -> HTTPS.
  std::string tls_cert_file;
  std::string tls_key_file;
  // Requests whose handler may be in progress at once (each holds a fiber
  // and its stack while it waits for its receipt or collateral). Past it,
  // requests get 503 with Retry-After at once; /healthz, /readyz and
  // /metrics are always served.
  int max_in_progress = 4096;
  // How long Stop waits for handlers under way (suspended on a receipt or a
  // collateral fetch): at least the longest collateral deadline.
  absl::Duration stop_grace = absl::Seconds(30);
};

class HttpServer {
 public:
  virtual ~HttpServer() = default;
  // Binds and starts serving on background threads. `router` must outlive
  // the server.
  static absl::StatusOr<std::unique_ptr<HttpServer>> Start(const HttpServerOptions& options,
                                                           Router* router);
  // The bound port.
  virtual uint16_t port() const = 0;
  virtual bool tls() const = 0;
  // Stops accepting, lets handlers under way finish (up to stop_grace),
  // closes connections and joins the threads.
  virtual void Stop() = 0;
};

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_HTTP_SERVER_H_
