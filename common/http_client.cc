#include "common/http_client.h"

#include <arpa/inet.h>
#include <netdb.h>
#include <netinet/in.h>
#include <sys/socket.h>

#include <algorithm>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <chrono>
#include <condition_variable>
#include <mutex>
#include <optional>
#include <system_error>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/time/clock.h"
#include "common/status_macros.h"

namespace kbs::common {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct Url {
  bool tls = false;
  std::string host;
  uint16_t port = 0;
};

absl::StatusOr<Url> ParseUrl(absl::string_view url) {
  Url out;
  if (absl::ConsumePrefix(&url, "https://")) {
    out.tls = true;
  } else if (!absl::ConsumePrefix(&url, "http://")) {
    return absl::InvalidArgumentError(
        absl::StrCat("URL must start with http:// or https://: ", url));
  }
  while (absl::ConsumeSuffix(&url, "/")) {
  }
  if (url.find('/') != absl::string_view::npos) {
    return absl::InvalidArgumentError("URL must not have a path (use http://HOST:PORT)");
  }
  size_t colon = url.rfind(':');
  bool bracketed = !url.empty() && url.front() == '[';
  std::string port;
  if (colon == absl::string_view::npos || (bracketed && url.back() == ']')) {
    out.host = std::string(url);
    port = out.tls ? "443" : "80";
  } else {
    out.host = std::string(url.substr(0, colon));
    port = std::string(url.substr(colon + 1));
  }
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty()) return absl::InvalidArgumentError("URL has no host");
  uint32_t number = 0;
  if (!absl::SimpleAtoi(port, &number) || number == 0 || number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("URL port must be 1..65535: ", port));
  }
  out.port = static_cast<uint16_t>(number);
  return out;
}

// getaddrinfo(): the addresses of `host`, numeric.
absl::StatusOr<std::vector<std::string>> SystemResolve(const std::string& host) {
  addrinfo hints{};
  hints.ai_family = AF_UNSPEC;
  hints.ai_socktype = SOCK_STREAM;
  hints.ai_flags = AI_ADDRCONFIG;
  addrinfo* list = nullptr;
  int rc = getaddrinfo(host.c_str(), nullptr, &hints, &list);
  if (rc != 0) {
    std::string why = rc == EAI_SYSTEM ? "system error" : gai_strerror(rc);
    if (rc == EAI_NONAME) return absl::NotFoundError(absl::StrCat(host, ": ", why));
    return absl::UnavailableError(absl::StrCat(host, ": ", why));
  }
  std::vector<std::string> out;
  for (const addrinfo* a = list; a != nullptr; a = a->ai_next) {
    char text[INET6_ADDRSTRLEN] = {};
    const void* raw = nullptr;
    if (a->ai_family == AF_INET) {
      raw = &reinterpret_cast<const sockaddr_in*>(a->ai_addr)->sin_addr;
    } else if (a->ai_family == AF_INET6) {
      raw = &reinterpret_cast<const sockaddr_in6*>(a->ai_addr)->sin6_addr;
    }
    if (raw != nullptr && inet_ntop(a->ai_family, raw, text, sizeof(text)) != nullptr) {
      out.emplace_back(text);
    }
  }
  freeaddrinfo(list);
  if (out.empty()) return absl::NotFoundError(absl::StrCat(host, " has no address"));
  return out;
}

// A name lookup running on a detached thread. The thread and the client
// share it, so whichever is last frees it; the client can walk away at its
// deadline while the lookup goes on.
struct PendingLookup {
  std::mutex mu;
  std::condition_variable done_cv;
  bool done = false;
  absl::StatusOr<std::vector<std::string>> result = absl::UnavailableError("lookup running");
};

// Deadlines far away are capped, so that steady_clock arithmetic cannot
// overflow.
std::chrono::steady_clock::time_point SteadyDeadline(absl::Time deadline) {
  absl::Duration left =
      std::clamp(deadline - absl::Now(), absl::ZeroDuration(), absl::Hours(24 * 365));
  return std::chrono::steady_clock::now() +
         std::chrono::duration_cast<std::chrono::steady_clock::duration>(
             absl::ToChronoNanoseconds(left));
}

class BeastHttpClient final : public HttpClient {
 public:
  BeastHttpClient(Url url, const HttpClientOptions& options)
      : url_(std::move(url)), options_(options), ssl_ctx_(asio::ssl::context::tls_client) {
    if (!options_.resolver) options_.resolver = SystemResolve;
  }

  absl::Status Init() {
    if (url_.tls) {
      beast::error_code ec;
      if (options_.ca_file.empty()) {
        ssl_ctx_.set_default_verify_paths(ec);
      } else {
        ssl_ctx_.load_verify_file(options_.ca_file, ec);
      }
      if (ec) {
        return absl::InvalidArgumentError(absl::StrCat("cannot load CA file: ", ec.message()));
      }
      ssl_ctx_.set_verify_mode(asio::ssl::verify_peer);
    }
    return absl::OkStatus();
  }

  absl::StatusOr<HttpResult> Send(
      absl::string_view method, absl::string_view target, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers) override {
    return SendBy(absl::Now() + options_.timeout, method, target, body, headers);
  }

  absl::StatusOr<HttpResult> SendBy(
      absl::Time deadline, absl::string_view method, absl::string_view target,
      absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers) override {
    if (Connected() && absl::Now() - last_used_ > options_.max_idle) Disconnect();
    // A kept-alive connection may have been closed by the server: resend once
    // on a fresh connection when the failure happened on a reused one.
    const bool reused = Connected();
    auto result = SendOnce(deadline, method, target, body, headers);
    if (!result.ok() && reused && options_.resend_on_stale_connection &&
        result.status().code() == absl::StatusCode::kUnavailable && absl::Now() < deadline) {
      Disconnect();
      result = SendOnce(deadline, method, target, body, headers);
    }
    if (result.ok()) last_used_ = absl::Now();
    return result;
  }

 private:
  // Beast's stream timeouts apply to asynchronous operations only: each step
  // runs asynchronously to completion or to the request's deadline.
  void Run() {
    ioc_.restart();
    ioc_.run();
  }

  bool Connected() const { return plain_.has_value() || tls_.has_value(); }

  void Disconnect() {
    beast::error_code ignored;
    if (plain_) plain_->socket().shutdown(tcp::socket::shutdown_both, ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    plain_.reset();
    tls_.reset();
    // Bytes of an abandoned response must not be read as the next one's.
    buffer_.clear();
  }

  static void ExpireAt(beast::tcp_stream& stream, absl::Time deadline) {
    if (deadline == absl::InfiniteFuture()) {
      stream.expires_never();
    } else {
      stream.expires_at(SteadyDeadline(deadline));
    }
  }

  absl::Status PastDeadline(absl::string_view step, absl::Time deadline) const {
    if (absl::Now() < deadline) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("deadline passed before ", step, " ", url_.host, ":", url_.port));
  }

  // The addresses of the host, by `deadline`. getaddrinfo() cannot be
  // cancelled (asio's async_resolve runs it on a helper thread that its
  // io_context waits for), so it runs on a detached thread that owns its
  // result; at the deadline the client stops waiting. At most one lookup
  // per client is in flight: a later request waits for the same one.
  absl::StatusOr<std::vector<tcp::endpoint>> Resolve(absl::Time deadline) {
    beast::error_code ec;
    asio::ip::address literal = asio::ip::make_address(url_.host, ec);
    if (!ec) return std::vector<tcp::endpoint>{tcp::endpoint(literal, url_.port)};
    KBS_RETURN_IF_ERROR(PastDeadline("resolving", deadline));
    if (lookup_ == nullptr) {
      auto lookup = std::make_shared<PendingLookup>();
      try {
        std::thread([lookup, resolver = options_.resolver, host = url_.host] {
          absl::StatusOr<std::vector<std::string>> result = resolver(host);
          std::lock_guard<std::mutex> lock(lookup->mu);
          lookup->result = std::move(result);
          lookup->done = true;
          lookup->done_cv.notify_all();
        }).detach();
      } catch (const std::system_error& e) {
        return absl::UnavailableError(
            absl::StrCat("cannot start a name lookup for ", url_.host, ": ", e.what()));
      }
      lookup_ = std::move(lookup);
    }
    absl::StatusOr<std::vector<std::string>> addresses;
    {
      std::unique_lock<std::mutex> lock(lookup_->mu);
      if (!lookup_->done_cv.wait_until(lock, SteadyDeadline(deadline),
                                       [this] { return lookup_->done; })) {
        return absl::UnavailableError(
            absl::StrCat("cannot resolve ", url_.host, ": no answer before the deadline"));
      }
      addresses = std::move(lookup_->result);
    }
    lookup_.reset();
    if (!addresses.ok()) {
      return absl::UnavailableError(
          absl::StrCat("cannot resolve ", url_.host, ": ", addresses.status().message()));
    }
    std::vector<tcp::endpoint> endpoints;
    for (const std::string& text : *addresses) {
      asio::ip::address address = asio::ip::make_address(text, ec);
      if (!ec) endpoints.emplace_back(address, url_.port);
    }
    if (endpoints.empty()) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", url_.host, ": no address"));
    }
    return endpoints;
  }

  absl::Status Connect(absl::Time deadline) {
    auto endpoints = Resolve(deadline);
    if (!endpoints.ok()) return endpoints.status();
    KBS_RETURN_IF_ERROR(PastDeadline("connecting to", deadline));
    beast::error_code ec;
    if (url_.tls) {
      tls_.emplace(ioc_, ssl_ctx_);
      auto& lowest = beast::get_lowest_layer(*tls_);
      ExpireAt(lowest, deadline);
      lowest.async_connect(*endpoints,
                           [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
      Run();
      if (!ec) {
        // SNI and host-name verification.
        if (!SSL_set_tlsext_host_name(tls_->native_handle(), url_.host.c_str())) {
          ec = beast::error_code(static_cast<int>(::ERR_get_error()),
                                 asio::error::get_ssl_category());
        }
        tls_->set_verify_callback(asio::ssl::host_name_verification(url_.host));
      }
      if (!ec) {
        // The handshake's reads and writes run under the same expiry.
        tls_->async_handshake(asio::ssl::stream_base::client,
                              [&ec](beast::error_code e) { ec = e; });
        Run();
      }
    } else {
      plain_.emplace(ioc_);
      ExpireAt(*plain_, deadline);
      plain_->async_connect(*endpoints,
                            [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
      Run();
    }
    if (ec) {
      Disconnect();
      return absl::UnavailableError(
          absl::StrCat("cannot connect to ", url_.host, ":", url_.port, ": ", ec.message()));
    }
    beast::error_code ignored;
    if (plain_) plain_->socket().set_option(tcp::no_delay(true), ignored);
    if (tls_) beast::get_lowest_layer(*tls_).socket().set_option(tcp::no_delay(true), ignored);
    return absl::OkStatus();
  }

  template <typename Stream>
  absl::StatusOr<HttpResult> Exchange(Stream& stream, bhttp::request<bhttp::string_body>& req,
                                      absl::Time deadline) {
    beast::error_code ec;
    // One expiry for the write and the read: together they end by the
    // deadline.
    ExpireAt(beast::get_lowest_layer(stream), deadline);
    bhttp::async_write(stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return absl::UnavailableError(absl::StrCat("HTTP write failed: ", ec.message()));
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(1 << 20);
    parser.body_limit(64 << 20);
    // Beast reads at most the buffer's free capacity (and 64 KiB) per
    // syscall, and the parser empties the buffer into the body as it goes:
    // without room, a large body (an audit download) came in 512-byte reads,
    // each with a recvmsg and a timer re-arm.
    if (buffer_.capacity() < kReadChunk) buffer_.reserve(kReadChunk);
    bhttp::async_read(stream, buffer_, parser, [&ec](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return absl::UnavailableError(absl::StrCat("HTTP read failed: ", ec.message()));
    bhttp::response<bhttp::string_body> res = parser.release();
    HttpResult out;
    out.status = static_cast<int>(res.result_int());
    out.body = std::move(res.body());
    for (const auto& field : res) {
      std::string name(field.name_string());
      absl::AsciiStrToLower(&name);
      out.headers.emplace_back(std::move(name), std::string(field.value()));
    }
    if (!res.keep_alive()) Disconnect();
    return out;
  }

  absl::StatusOr<HttpResult> SendOnce(
      absl::Time deadline, absl::string_view method, absl::string_view target,
      absl::string_view body, const std::vector<std::pair<std::string, std::string>>& headers) {
    if (!Connected()) {
      absl::Status s = Connect(deadline);
      if (!s.ok()) return s;
    }
    if (absl::Status s = PastDeadline("sending to", deadline); !s.ok()) {
      Disconnect();
      return s;
    }
    bhttp::request<bhttp::string_body> req;
    req.method_string(beast::string_view(method.data(), method.size()));
    req.target(beast::string_view(target.data(), target.size()));
    req.version(11);
    req.keep_alive(true);
    req.set(bhttp::field::host, url_.host);
    req.set(bhttp::field::user_agent, "kbs/0.1");
    for (const auto& [name, value] : headers) req.set(name, value);
    if (!body.empty() || method == "POST" || method == "PUT") {
      req.body() = std::string(body);
      req.prepare_payload();
    }
    absl::StatusOr<HttpResult> result =
        url_.tls ? Exchange(*tls_, req, deadline) : Exchange(*plain_, req, deadline);
    if (!result.ok()) Disconnect();
    return result;
  }

  Url url_;
  HttpClientOptions options_;
  static constexpr size_t kReadChunk = 64 << 10;
  asio::io_context ioc_;
  asio::ssl::context ssl_ctx_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
  absl::Time last_used_ = absl::InfinitePast();
  std::shared_ptr<PendingLookup> lookup_;  // a lookup still running, if any
};

}  // namespace

std::string HttpResult::Header(absl::string_view lower_name) const {
  for (const auto& [name, value] : headers) {
    if (name == lower_name) return value;
  }
  return "";
}

absl::StatusOr<std::unique_ptr<HttpClient>> HttpClient::Create(absl::string_view base_url,
                                                               const HttpClientOptions& options) {
  auto url = ParseUrl(base_url);
  if (!url.ok()) return url.status();
  auto client = std::make_unique<BeastHttpClient>(*std::move(url), options);
  absl::Status s = client->Init();
  if (!s.ok()) return s;
  return std::unique_ptr<HttpClient>(std::move(client));
}

std::optional<absl::Duration> ParseRetryAfter(absl::string_view value, absl::Time now) {
  value = absl::StripAsciiWhitespace(value);
  if (value.empty()) return std::nullopt;
  if (std::all_of(value.begin(), value.end(), [](char c) { return absl::ascii_isdigit(c); })) {
    int64_t seconds = 0;
    // Too many digits to be a delay anyone means: the longest one.
    if (!absl::SimpleAtoi(value, &seconds)) return absl::InfiniteDuration();
    return absl::Seconds(seconds);
  }
  // HTTP-date (RFC 9110 §5.6.7): IMF-fixdate, then the obsolete RFC 850 and
  // asctime forms, which recipients must accept too. Runs of spaces (asctime
  // pads the day with one) are read as one.
  std::string text;
  for (char c : value) {
    if (c == ' ' && !text.empty() && text.back() == ' ') continue;
    text.push_back(c);
  }
  for (const char* format :
       {"%a, %d %b %Y %H:%M:%S GMT", "%A, %d-%b-%y %H:%M:%S GMT", "%a %b %d %H:%M:%S %Y"}) {
    absl::Time at;
    std::string ignored;
    if (absl::ParseTime(format, text, absl::UTCTimeZone(), &at, &ignored)) {
      return std::max(at - now, absl::ZeroDuration());
    }
  }
  return std::nullopt;
}

}  // namespace kbs::common
