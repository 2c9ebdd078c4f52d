// A small synchronous HTTP/1.1 client (Boost.Beast) for kbsctl, kbs-bench
// and the end-to-end tests: keep-alive with one reconnect, HTTPS through the
// system OpenSSL (server certificate verified against a CA file), and a
// one-cookie jar for `kbs-session-id`, like the agent's reqwest client.
// Not thread-safe: one client per thread.
#ifndef KBS_KBS_CLIENT_HTTP_CLIENT_H_
#define KBS_KBS_CLIENT_HTTP_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kbs::client {

struct HttpClientOptions {
  // PEM CA bundle for https:// (default: the system store).
  std::string ca_file;
  absl::Duration timeout = absl::Seconds(60);
};

struct HttpResult {
  int status = 0;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;  // lowercased names
  std::string Header(absl::string_view lower_name) const;
};

class HttpClient {
 public:
  virtual ~HttpClient() = default;
  // `base_url`: http://HOST:PORT or https://HOST:PORT (no path).
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(absl::string_view base_url,
                                                            const HttpClientOptions& options = {});

  // Sends one request; Unavailable when the server cannot be reached.
  virtual absl::StatusOr<HttpResult> Send(
      absl::string_view method, absl::string_view target, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;

  // The cookie jar (kbs-session-id), sent on every request when set.
  virtual void set_session_cookie(std::string value) = 0;
  virtual const std::string& session_cookie() const = 0;
};

}  // namespace kbs::client

#endif  // KBS_KBS_CLIENT_HTTP_CLIENT_H_
