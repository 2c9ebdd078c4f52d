// Transport-neutral HTTP request/response values passed between the socket
// layer (http_server.cc, Boost.Beast) and the router (router.cc), so the
// router can be tested without sockets.
#ifndef KBS_KBS_HTTP_HTTP_MESSAGE_H_
#define KBS_KBS_HTTP_HTTP_MESSAGE_H_

#include <string>
#include <utility>
#include <vector>

#include "absl/strings/string_view.h"

namespace kbs::http {

struct HttpRequest {
  std::string method;  // "GET", "POST", ...
  std::string target;  // origin-form, may carry a query
  // Header fields with lowercased names, in arrival order.
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
  std::string peer;  // client address, for logs

  // The first field named `lower_name`, or "" when absent.
  absl::string_view Header(absl::string_view lower_name) const {
    for (const auto& [name, value] : headers) {
      if (name == lower_name) return value;
    }
    return {};
  }
};

struct HttpResponse {
  int status = 200;
  std::string content_type = "application/json";
  std::vector<std::pair<std::string, std::string>> headers;
  std::string body;
};

absl::string_view ReasonPhrase(int status);

}  // namespace kbs::http

#endif  // KBS_KBS_HTTP_HTTP_MESSAGE_H_
