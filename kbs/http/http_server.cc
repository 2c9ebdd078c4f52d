#include "kbs/http/http_server.h"

#include <array>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/ssl.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <boost/beast/ssl.hpp>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/fiber.h"
#include "common/log.h"
#include "kbs/core/errors.h"
#include "kbs/http/request_parser.h"

namespace kbs::http {
namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

// The status line and headers; the body is written after it, uncopied.
std::string SerializeHead(const HttpResponse& r, bool keep_alive) {
  std::string out = absl::StrCat("HTTP/1.1 ", r.status, " ", ReasonPhrase(r.status), "\r\n");
  if (!r.content_type.empty()) absl::StrAppend(&out, "Content-Type: ", r.content_type, "\r\n");
  for (const auto& [name, value] : r.headers) absl::StrAppend(&out, name, ": ", value, "\r\n");
  absl::StrAppend(&out, "Content-Length: ", r.body.size(), "\r\n");
  if (!keep_alive) out += "Connection: close\r\n";
  out += "\r\n";
  return out;
}

struct ServerState {
  HttpServerOptions options;
  Router* router;
  // Requests whose handler has started and not yet returned; Stop waits for
  // them, because a suspended one is resumed through its io_context.
  mutable std::atomic<int> handling{0};
  std::atomic<bool> stopping{false};
};

// One connection; lives as long as an async operation holds it.
template <typename Stream>
class Connection : public std::enable_shared_from_this<Connection<Stream>> {
 public:
  Connection(Stream stream, const ServerState* state, std::string peer)
      : stream_(std::move(stream)), state_(state), peer_(std::move(peer)) {}

  void Start() {
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).expires_after(ToChrono(state_->options.read_timeout));
      stream_.async_handshake(asio::ssl::stream_base::server,
                              [self = this->shared_from_this()](beast::error_code ec) {
                                if (!ec) self->ReadHeader(/*first=*/true);
                              });
    } else {
      ReadHeader(/*first=*/true);
    }
  }

 private:
  static std::chrono::nanoseconds ToChrono(absl::Duration d) {
    return absl::ToChronoNanoseconds(d);
  }

  void ReadHeader(bool first) {
    const HttpServerOptions& o = state_->options;
    // An idle keep-alive connection keeps at most kIdleBuffer (a large head
    // or body grew it); below that the next request reads without regrowing.
    if (buffer_.capacity() > kIdleBuffer && buffer_.size() == 0) buffer_.shrink_to_fit();
    parser_.emplace(o.max_header_field_bytes, o.max_head_bytes, o.max_body_bytes);
    // Between requests a keep-alive connection may idle; once bytes arrive
    // the head must be complete within the read timeout. Asio has one timer
    // per stream, so the longer bound applies to the head of a follow-up
    // request.
    beast::get_lowest_layer(stream_).expires_after(
        ToChrono(first ? o.read_timeout : std::max(o.idle_timeout, o.read_timeout)));
    bhttp::async_read_header(
        stream_, buffer_, *parser_,
        [self = this->shared_from_this()](beast::error_code ec, size_t) { self->OnHeader(ec); });
  }

  void OnHeader(beast::error_code ec) {
    if (ec) return OnReadError(ec);
    beast::string_view expect;
    for (const auto& [name, value] : parser_->request().headers) {
      if (name == "expect") expect = value;
    }
    if (!parser_->is_done() && beast::iequals(expect, "100-continue")) {
      auto cont = std::make_shared<std::string>("HTTP/1.1 100 Continue\r\n\r\n");
      asio::async_write(stream_, asio::buffer(*cont),
                        [self = this->shared_from_this(), cont](beast::error_code ec, size_t) {
                          if (ec) return self->Close();
                          self->ReadBody();
                        });
      return;
    }
    ReadBody();
  }

  void ReadBody() {
    if (parser_->is_done()) return Dispatch();
    // Beast reads at most the buffer's free capacity per syscall (512 bytes
    // in a new buffer), and the parser empties it into the body as it goes:
    // room for the body (up to kBodyChunk) turns a 7 KB attestation's ~14
    // recvmsg calls, each with a timer re-arm, into one or two (a TDX flow:
    // 17 fewer syscalls in the KBS, counted with `perf stat`). The head was
    // parsed alone, so the buffer holds the body's first bytes (and perhaps
    // bytes of the next request).
    if (const auto length = parser_->content_length(); length && *length > buffer_.size()) {
      const size_t want = buffer_.size() + std::min<uint64_t>(*length - buffer_.size(), kBodyChunk);
      if (buffer_.capacity() < want) buffer_.reserve(want);
    }
    beast::get_lowest_layer(stream_).expires_after(ToChrono(state_->options.read_timeout));
    bhttp::async_read(stream_, buffer_, *parser_,
                      [self = this->shared_from_this()](beast::error_code ec, size_t) {
                        if (ec) return self->OnReadError(ec);
                        self->Dispatch();
                      });
  }

  void OnReadError(beast::error_code ec) {
    if (ec == bhttp::error::end_of_stream || ec == beast::error::timeout ||
        ec == asio::error::eof || ec == asio::error::connection_reset ||
        ec == asio::error::operation_aborted || ec.category() == asio::error::get_ssl_category() ||
        ec == asio::ssl::error::stream_truncated) {
      return Close();
    }
    absl::Status status;
    if (ec == bhttp::error::header_limit) {
      status = KbsError(absl::StatusCode::kResourceExhausted, ErrorKind::kHttpFailed,
                        parser_->field_too_large()
                            ? absl::StrCat("a request header field exceeds ",
                                           state_->options.max_header_field_bytes, " bytes")
                            : absl::StrCat("the request head exceeds ",
                                           state_->options.max_head_bytes, " bytes"));
    } else if (ec == bhttp::error::body_limit) {
      status = KbsError(
          absl::StatusCode::kResourceExhausted, ErrorKind::kHttpFailed,
          absl::StrCat("the request body exceeds ", state_->options.max_body_bytes, " bytes"));
    } else if (ec.category() == beast::error_code(bhttp::error::header_limit).category() ||
               ec == bhttp::error::partial_message) {
      status = KbsError(absl::StatusCode::kInvalidArgument, ErrorKind::kHttpFailed,
                        absl::StrCat("malformed HTTP request: ", ec.message()));
    } else {
      return Close();
    }
    Write(Router::ErrorResponse(status), /*keep_alive=*/false);
  }

  // The handler runs on a fiber: when it waits for its receipt to become
  // durable, this thread serves other connections meanwhile, and the
  // writer's notification resumes it here.
  void Dispatch() {
    // Counted before `stopping` is read: Stop sets `stopping` before it
    // reads the count, so either it waits for this handler or this handler
    // sees it stopping (no handler can start unseen after Stop has looked).
    const int in_progress = state_->handling.fetch_add(1, std::memory_order_seq_cst);
    if (state_->stopping.load(std::memory_order_seq_cst)) {
      state_->handling.fetch_sub(1, std::memory_order_acq_rel);
      return Write(Router::ErrorResponse(KbsError(absl::StatusCode::kUnavailable,
                                                  ErrorKind::kHttpFailed, "the KBS is stopping")),
                   /*keep_alive=*/false);
    }
    // Bounded: a flood of connections (or a stalled receipt log) must not
    // hold a fiber stack per request until memory or mappings run out.
    if (in_progress >= state_->options.max_in_progress && !Router::IsProbe(parser_->request())) {
      state_->handling.fetch_sub(1, std::memory_order_acq_rel);
      return Write(state_->router->Overloaded(state_->options.max_in_progress),
                   parser_->keep_alive());
    }
    auto executor = beast::get_lowest_layer(stream_).get_executor();
    common::Fiber::Start(
        [self = this->shared_from_this()] {
          HttpRequest& request = self->parser_->request();
          request.peer = self->peer_;
          bool keep_alive = self->parser_->keep_alive();
          HttpResponse response = self->state_->router->Handle(request);
          // Done before the response goes out: the client's next request
          // (on another connection) may arrive before this fiber ends.
          self->state_->handling.fetch_sub(1, std::memory_order_acq_rel);
          self->Write(std::move(response), keep_alive);
        },
        [executor](std::function<void()> resume) { asio::post(executor, std::move(resume)); });
  }

  void Write(HttpResponse response, bool keep_alive) {
    out_ = SerializeHead(response, keep_alive);
    out_body_ = std::move(response.body);
    beast::get_lowest_layer(stream_).expires_after(ToChrono(state_->options.read_timeout));
    asio::async_write(stream_, std::array{asio::buffer(out_), asio::buffer(out_body_)},
                      [self = this->shared_from_this(), keep_alive](beast::error_code ec, size_t) {
                        if (ec || !keep_alive) return self->Close();
                        self->ReadHeader(/*first=*/false);
                      });
  }

  void Close() {
    beast::error_code ignored;
    if constexpr (std::is_same_v<Stream, beast::ssl_stream<beast::tcp_stream>>) {
      beast::get_lowest_layer(stream_).socket().shutdown(tcp::socket::shutdown_both, ignored);
    } else {
      stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
    }
  }

  Stream stream_;
  const ServerState* state_;
  std::string peer_;
  // Room reserved ahead of a body's bytes: bounded, as a client may announce
  // a large body and send nothing.
  static constexpr size_t kBodyChunk = 16 << 10;
  static constexpr size_t kIdleBuffer = 64 << 10;
  beast::flat_buffer buffer_;
  std::optional<RequestParser> parser_;
  std::string out_, out_body_;
};

class BeastHttpServer final : public HttpServer {
 public:
  BeastHttpServer(const HttpServerOptions& options, Router* router)
      : state_{options, router},
        iocs_(MakeLoops(options.threads)),
        acceptor_(*iocs_[0]),
        accept_backoff_(*iocs_[0]),
        ssl_ctx_(asio::ssl::context::tls_server) {}

  ~BeastHttpServer() override { Stop(); }

  absl::Status Init() {
    const HttpServerOptions& o = state_.options;
    tls_ = !o.tls_cert_file.empty() || !o.tls_key_file.empty();
    if (tls_) {
      if (o.tls_cert_file.empty() || o.tls_key_file.empty()) {
        return absl::InvalidArgumentError("HTTPS needs both a certificate and a key file");
      }
      beast::error_code ec;
      ssl_ctx_.set_options(asio::ssl::context::default_workarounds | asio::ssl::context::no_sslv2 |
                           asio::ssl::context::no_sslv3 | asio::ssl::context::no_tlsv1 |
                           asio::ssl::context::no_tlsv1_1 | asio::ssl::context::single_dh_use);
      ssl_ctx_.use_certificate_chain_file(o.tls_cert_file, ec);
      if (ec) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot load TLS certificate ", o.tls_cert_file, ": ", ec.message()));
      }
      ssl_ctx_.use_private_key_file(o.tls_key_file, asio::ssl::context::pem, ec);
      if (ec) {
        return absl::InvalidArgumentError(
            absl::StrCat("cannot load TLS key ", o.tls_key_file, ": ", ec.message()));
      }
    }
    beast::error_code ec;
    asio::ip::address address = asio::ip::make_address(o.host, ec);
    if (ec) return absl::InvalidArgumentError(absl::StrCat("invalid listen address ", o.host));
    tcp::endpoint endpoint(address, o.port);
    acceptor_.open(endpoint.protocol(), ec);
    if (!ec) acceptor_.set_option(asio::socket_base::reuse_address(true), ec);
    if (!ec) acceptor_.bind(endpoint, ec);
    if (!ec) acceptor_.listen(asio::socket_base::max_listen_connections, ec);
    if (ec) {
      return absl::UnavailableError(
          absl::StrCat("cannot listen on ", o.host, ":", o.port, ": ", ec.message()));
    }
    port_ = acceptor_.local_endpoint().port();
    Accept();
    for (auto& ioc : iocs_) {
      // Loops without connections must keep running until Stop().
      work_.push_back(asio::make_work_guard(*ioc));
      threads_.emplace_back([loop = ioc.get()] { loop->run(); });
    }
    return absl::OkStatus();
  }

  uint16_t port() const override { return port_; }
  bool tls() const override { return tls_; }

  void Stop() override {
    if (stopped_.exchange(true)) return;
    asio::post(acceptor_.get_executor(), [this] {
      beast::error_code ignored;
      acceptor_.close(ignored);
    });
    // Requests under way finish (their receipts commit within milliseconds,
    // or fail; a collateral fetch ends by its deadline); new ones are
    // refused. A handler still suspended after the grace period would be
    // resumed into a destroyed io_context, so then the loops are left
    // allocated.
    state_.stopping.store(true, std::memory_order_seq_cst);
    const absl::Time deadline = absl::Now() + state_.options.stop_grace;
    while (state_.handling.load(std::memory_order_acquire) > 0 && absl::Now() < deadline &&
           !threads_.empty()) {
      absl::SleepFor(absl::Milliseconds(2));
    }
    const bool leak = state_.handling.load(std::memory_order_acquire) > 0 && !threads_.empty();
    work_.clear();
    for (auto& ioc : iocs_) ioc->stop();
    for (std::thread& t : threads_) {
      if (t.joinable()) t.join();
    }
    if (leak) {
      KBS_LOG(kError, "HTTP server stopped with ", state_.handling.load(),
              " requests still waiting; their event loops are not freed");
      for (auto& ioc : iocs_) (void)ioc.release();
    }
  }

 private:
  // One io_context per thread, each connection bound to one of them: a
  // connection's handlers never run concurrently (no strands needed) and
  // threads never hand work to each other.
  static std::vector<std::unique_ptr<asio::io_context>> MakeLoops(int threads) {
    std::vector<std::unique_ptr<asio::io_context>> loops;
    for (int i = 0; i < std::max(1, threads); ++i) {
      loops.push_back(std::make_unique<asio::io_context>(1));
    }
    return loops;
  }

  void Accept() {
    asio::io_context& loop = *iocs_[next_loop_++ % iocs_.size()];
    acceptor_.async_accept(loop, [this](beast::error_code ec, tcp::socket socket) {
      if (ec) {
        if (ec == asio::error::operation_aborted || stopped_) return;
        // Out of descriptors and similar: keep serving existing clients and
        // retry shortly instead of spinning on the failing accept.
        KBS_LOG(kWarning, "accept failed: ", ec.message());
        accept_backoff_.expires_after(std::chrono::milliseconds(100));
        accept_backoff_.async_wait([this](beast::error_code wait_ec) {
          if (!wait_ec && !stopped_) Accept();
        });
        return;
      } else {
        beast::error_code ignored;
        socket.set_option(tcp::no_delay(true), ignored);
        std::string peer;
        auto remote = socket.remote_endpoint(ignored);
        if (!ignored) peer = absl::StrCat(remote.address().to_string(), ":", remote.port());
        if (tls_) {
          std::make_shared<Connection<beast::ssl_stream<beast::tcp_stream>>>(
              beast::ssl_stream<beast::tcp_stream>(beast::tcp_stream(std::move(socket)), ssl_ctx_),
              &state_, std::move(peer))
              ->Start();
        } else {
          std::make_shared<Connection<beast::tcp_stream>>(beast::tcp_stream(std::move(socket)),
                                                          &state_, std::move(peer))
              ->Start();
        }
      }
      Accept();
    });
  }

  ServerState state_;
  std::vector<std::unique_ptr<asio::io_context>> iocs_;
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> work_;
  size_t next_loop_ = 0;  // used only on iocs_[0]'s thread
  tcp::acceptor acceptor_;
  asio::steady_timer accept_backoff_;
  asio::ssl::context ssl_ctx_;
  bool tls_ = false;
  uint16_t port_ = 0;
  std::vector<std::thread> threads_;
  std::atomic<bool> stopped_{false};
};

}  // namespace

absl::StatusOr<std::unique_ptr<HttpServer>> HttpServer::Start(const HttpServerOptions& options,
                                                              Router* router) {
  auto server = std::make_unique<BeastHttpServer>(options, router);
  absl::Status status = server->Init();
  if (!status.ok()) return status;
  return std::unique_ptr<HttpServer>(std::move(server));
}

}  // namespace kbs::http
