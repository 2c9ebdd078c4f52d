// A small synchronous HTTP/1.1 client (Boost.Beast): keep-alive with one
// reconnect, HTTPS through the system OpenSSL (server certificate and host
// name verified against a CA file or the system store), a timeout on every
// step. Used by kbsctl, kbs-bench, the tests and collateral fetchers (AMD
// KDS). Not thread-safe: one client per thread.
#ifndef KBS_COMMON_HTTP_CLIENT_H_
#define KBS_COMMON_HTTP_CLIENT_H_

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kbs::common {

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

  // Sends one request; Unavailable when the server cannot be reached or the
  // exchange fails or times out.
  virtual absl::StatusOr<HttpResult> Send(
      absl::string_view method, absl::string_view target, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
};

}  // namespace kbs::common

#endif  // KBS_COMMON_HTTP_CLIENT_H_
