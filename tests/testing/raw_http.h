// Test helper: sends raw bytes to a loopback port and reads one HTTP
// response, for requests no well-behaved client library would send.
#ifndef KBS_TESTS_TESTING_RAW_HTTP_H_
#define KBS_TESTS_TESTING_RAW_HTTP_H_

#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"

namespace kbs::testing {

struct RawResponse {
  int status = 0;
  std::string head;
  std::string body;
};

// Connects to 127.0.0.1:`port`, sends `request`, and reads the response
// head and its Content-Length body (or until the server closes).
absl::StatusOr<RawResponse> RawHttp(int port, absl::string_view request,
                                    absl::Duration timeout = absl::Seconds(10));

// Builds a request with Host, Content-Length and the given extra header
// lines (each "Name: value").
std::string BuildRequest(absl::string_view method, absl::string_view target, absl::string_view body,
                         absl::string_view extra_headers = "");

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_RAW_HTTP_H_
