// A small synchronous HTTP/1.1 client (Boost.Beast): keep-alive, HTTPS
// through the system OpenSSL (server certificate and host name verified
// against a CA file or the system store), and one deadline per request that
// bounds everything the request does: name resolution, connect, TLS
// handshake, write and read, and the optional resend on a fresh connection.
// Used by kbsctl, kbs-bench, the tests and the collateral fetchers (AMD KDS,
// Intel PCS). Not thread-safe: one client per thread (or behind a mutex).
#ifndef KBS_COMMON_HTTP_CLIENT_H_
#define KBS_COMMON_HTTP_CLIENT_H_

#include <functional>
#include <memory>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kbs::common {

// Resolves a host name to numeric IP addresses ("192.0.2.1", "2001:db8::1"),
// blocking. It runs on a detached thread of its own, which the client
// abandons at the request's deadline (a getaddrinfo() cannot be cancelled),
// so it must own everything it uses. NotFound or Unavailable when the name
// does not resolve.
using HostResolver =
    std::function<absl::StatusOr<std::vector<std::string>>(const std::string& host)>;

struct HttpClientOptions {
  // PEM CA bundle for https:// (default: the system store).
  std::string ca_file;
  // The whole of one Send() without a deadline: resolve, connect, handshake,
  // write, read and the resend below.
  absl::Duration timeout = absl::Seconds(60);
  // When a kept-alive connection fails (the server closed it while idle),
  // send the request once more on a fresh connection, within the same
  // deadline. Callers that pace their requests (a resend is a request to
  // the server) turn this off and retry on their own schedule.
  bool resend_on_stale_connection = true;
  // A kept-alive connection idle for longer is closed instead of reused
  // (servers close idle connections after a few seconds).
  absl::Duration max_idle = absl::InfiniteDuration();
  // Empty: getaddrinfo(). Tests substitute a resolver of their own.
  HostResolver resolver;
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
  // `base_url`: http://HOST[:PORT] or https://HOST[:PORT] (no path); the
  // port is numeric. InvalidArgument for anything else or an unreadable CA
  // file.
  static absl::StatusOr<std::unique_ptr<HttpClient>> Create(absl::string_view base_url,
                                                            const HttpClientOptions& options = {});

  // Sends one request and reads its response, all before `deadline` (real
  // time): returns by then whatever the network or the name server do.
  // Unavailable when the server cannot be reached, the exchange fails, or
  // the deadline passes (a name lookup still running then is left to finish
  // on its own thread, and a later request waits for that same lookup
  // instead of starting another).
  virtual absl::StatusOr<HttpResult> SendBy(
      absl::Time deadline, absl::string_view method, absl::string_view target,
      absl::string_view body, const std::vector<std::pair<std::string, std::string>>& headers) = 0;

  // SendBy(now + options.timeout, ...).
  virtual absl::StatusOr<HttpResult> Send(
      absl::string_view method, absl::string_view target, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers = {}) = 0;
};

// The delay a Retry-After header value asks for (RFC 9110 §10.2.3): either
// delay-seconds or an HTTP-date (IMF-fixdate, or the obsolete RFC 850 and
// asctime forms, §5.6.7), judged against `now`. A date in the past is zero;
// nullopt when the value is neither.
std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now);

}  // namespace kbs::common

#endif  // KBS_COMMON_HTTP_CLIENT_H_
