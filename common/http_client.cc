#include "common/http_client.h"

#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"

namespace kbs::common {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct Url {
  bool tls = false;
  std::string host;
  std::string port;
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
  if (colon == absl::string_view::npos || (bracketed && url.back() == ']')) {
    out.host = std::string(url);
    out.port = out.tls ? "443" : "80";
  } else {
    out.host = std::string(url.substr(0, colon));
    out.port = std::string(url.substr(colon + 1));
  }
  if (out.host.size() > 2 && out.host.front() == '[' && out.host.back() == ']') {
    out.host = out.host.substr(1, out.host.size() - 2);
  }
  if (out.host.empty()) return absl::InvalidArgumentError("URL has no host");
  return out;
}

class BeastHttpClient final : public HttpClient {
 public:
  BeastHttpClient(Url url, const HttpClientOptions& options)
      : url_(std::move(url)), options_(options), ssl_ctx_(asio::ssl::context::tls_client) {}

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
    // A kept-alive connection may have been closed by the server; retry once
    // on a fresh connection when the failure happened on a reused one.
    bool reused = Connected();
    auto result = SendOnce(method, target, body, headers);
    if (!result.ok() && reused && result.status().code() == absl::StatusCode::kUnavailable) {
      Disconnect();
      result = SendOnce(method, target, body, headers);
    }
    return result;
  }

 private:
  // Beast's stream timeouts (expires_after) apply to asynchronous operations
  // only: each step runs asynchronously to completion or timeout.
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

  absl::Status Connect() {
    beast::error_code ec;
    tcp::resolver resolver(ioc_);
    tcp::resolver::results_type endpoints;
    asio::steady_timer timer(ioc_, absl::ToChronoNanoseconds(options_.timeout));
    bool resolved = false;
    resolver.async_resolve(url_.host, url_.port,
                           [&](beast::error_code e, tcp::resolver::results_type r) {
                             resolved = true;
                             ec = e;
                             endpoints = std::move(r);
                             timer.cancel();
                           });
    timer.async_wait([&](beast::error_code e) {
      if (!e && !resolved) resolver.cancel();
    });
    Run();
    if (ec) {
      return absl::UnavailableError(absl::StrCat("cannot resolve ", url_.host, ": ", ec.message()));
    }
    if (url_.tls) {
      tls_.emplace(ioc_, ssl_ctx_);
      auto& lowest = beast::get_lowest_layer(*tls_);
      lowest.expires_after(absl::ToChronoNanoseconds(options_.timeout));
      lowest.async_connect(endpoints, [&ec](beast::error_code e, const tcp::endpoint&) { ec = e; });
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
        tls_->async_handshake(asio::ssl::stream_base::client,
                              [&ec](beast::error_code e) { ec = e; });
        Run();
      }
    } else {
      plain_.emplace(ioc_);
      plain_->expires_after(absl::ToChronoNanoseconds(options_.timeout));
      plain_->async_connect(endpoints,
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
  absl::StatusOr<HttpResult> Exchange(Stream& stream, bhttp::request<bhttp::string_body>& req) {
    beast::error_code ec;
    beast::get_lowest_layer(stream).expires_after(absl::ToChronoNanoseconds(options_.timeout));
    bhttp::async_write(stream, req, [&ec](beast::error_code e, size_t) { ec = e; });
    Run();
    if (ec) return absl::UnavailableError(absl::StrCat("HTTP write failed: ", ec.message()));
    bhttp::response_parser<bhttp::string_body> parser;
    parser.header_limit(1 << 20);
    parser.body_limit(64 << 20);
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
      absl::string_view method, absl::string_view target, absl::string_view body,
      const std::vector<std::pair<std::string, std::string>>& headers) {
    if (!Connected()) {
      absl::Status s = Connect();
      if (!s.ok()) return s;
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
    absl::StatusOr<HttpResult> result = url_.tls ? Exchange(*tls_, req) : Exchange(*plain_, req);
    if (!result.ok()) {
      Disconnect();
      return result;
    }
    return result;
  }

  Url url_;
  HttpClientOptions options_;
  asio::io_context ioc_;
  asio::ssl::context ssl_ctx_;
  std::optional<beast::tcp_stream> plain_;
  std::optional<beast::ssl_stream<beast::tcp_stream>> tls_;
  beast::flat_buffer buffer_;
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

}  // namespace kbs::common
