#include "tests/testing/raw_http.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <poll.h>
#include <sys/socket.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"

namespace kbs::testing {

std::string BuildRequest(absl::string_view method, absl::string_view target, absl::string_view body,
                         absl::string_view extra_headers) {
  std::string out = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: 127.0.0.1\r\n");
  if (!extra_headers.empty()) absl::StrAppend(&out, extra_headers, "\r\n");
  absl::StrAppend(&out, "Content-Length: ", body.size(), "\r\n\r\n", body);
  return out;
}

absl::StatusOr<RawResponse> RawHttp(int port, absl::string_view request, absl::Duration timeout) {
  int fd = ::socket(AF_INET, SOCK_STREAM | SOCK_CLOEXEC, 0);
  if (fd < 0) return absl::InternalError("socket failed");
  sockaddr_in addr{};
  addr.sin_family = AF_INET;
  addr.sin_port = htons(static_cast<uint16_t>(port));
  addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
  if (::connect(fd, reinterpret_cast<sockaddr*>(&addr), sizeof(addr)) != 0) {
    ::close(fd);
    return absl::UnavailableError(absl::StrCat("connect failed: ", std::strerror(errno)));
  }
  absl::Time deadline = absl::Now() + timeout;
  // The server may answer (and close) before reading everything: write in
  // chunks and stop writing on error, then read the response.
  size_t sent = 0;
  while (sent < request.size()) {
    ssize_t n = ::send(fd, request.data() + sent, std::min<size_t>(request.size() - sent, 65536),
                       MSG_NOSIGNAL);
    if (n <= 0) break;
    sent += static_cast<size_t>(n);
  }
  std::string data;
  char buf[65536];
  RawResponse response;
  while (absl::Now() < deadline) {
    pollfd p{fd, POLLIN, 0};
    int ready = ::poll(&p, 1, 100);
    if (ready < 0) break;
    if (ready == 0) continue;
    ssize_t n = ::recv(fd, buf, sizeof(buf), 0);
    if (n <= 0) break;
    data.append(buf, static_cast<size_t>(n));
    size_t head_end = data.find("\r\n\r\n");
    if (head_end == std::string::npos) continue;
    std::string head = data.substr(0, head_end);
    size_t length = 0;
    for (absl::string_view line : absl::StrSplit(head, "\r\n")) {
      std::string lower = absl::AsciiStrToLower(line);
      if (absl::StartsWith(lower, "content-length:")) {
        (void)absl::SimpleAtoi(absl::StripAsciiWhitespace(line.substr(15)), &length);
      }
    }
    if (data.size() >= head_end + 4 + length) {
      response.head = head;
      response.body = data.substr(head_end + 4, length);
      break;
    }
  }
  ::close(fd);
  if (response.head.empty()) {
    return absl::UnavailableError(
        absl::StrCat("no complete HTTP response (got ", data.size(), " bytes)"));
  }
  std::vector<std::string> first =
      absl::StrSplit(response.head.substr(0, response.head.find('\r')), ' ');
  if (first.size() < 2 || !absl::SimpleAtoi(first[1], &response.status)) {
    return absl::InternalError("bad status line");
  }
  return response;
}

}  // namespace kbs::testing
