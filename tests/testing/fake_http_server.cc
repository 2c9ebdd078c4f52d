#include "tests/testing/fake_http_server.h"

#include <boost/asio/ip/tcp.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <mutex>

#include "absl/strings/str_cat.h"

namespace kbs::testing {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;

struct FakeHttpServer::Impl {
  asio::io_context ioc;
  tcp::acceptor acceptor{ioc};
  std::thread thread;
  std::atomic<bool> stopping{false};
  mutable std::mutex mu;
  std::vector<std::string> targets;
};

FakeHttpServer::FakeHttpServer(Handler handler) : impl_(std::make_unique<Impl>()) {
  tcp::endpoint endpoint(asio::ip::make_address("127.0.0.1"), 0);
  impl_->acceptor.open(endpoint.protocol());
  impl_->acceptor.set_option(asio::socket_base::reuse_address(true));
  impl_->acceptor.bind(endpoint);
  impl_->acceptor.listen();
  impl_->thread = std::thread([this, handler = std::move(handler)] {
    while (!impl_->stopping) {
      beast::error_code ec;
      tcp::socket socket(impl_->ioc);
      impl_->acceptor.accept(socket, ec);
      if (ec || impl_->stopping) break;
      beast::flat_buffer buffer;
      bhttp::request<bhttp::string_body> req;
      bhttp::read(socket, buffer, req, ec);
      if (ec) continue;
      std::string target(req.target());
      {
        std::lock_guard<std::mutex> lock(impl_->mu);
        impl_->targets.push_back(target);
      }
      requests_.fetch_add(1);
      FakeResponse answer = handler(target);
      bhttp::response<bhttp::string_body> res{static_cast<bhttp::status>(answer.status), 11};
      for (const auto& [name, value] : answer.headers) res.set(name, value);
      res.body() = answer.body;
      res.keep_alive(false);
      res.prepare_payload();
      bhttp::write(socket, res, ec);
      socket.shutdown(tcp::socket::shutdown_both, ec);
    }
  });
}

FakeHttpServer::~FakeHttpServer() {
  impl_->stopping = true;
  // Unblock accept() with a connection of our own.
  beast::error_code ec;
  tcp::socket poke(impl_->ioc);
  poke.connect(impl_->acceptor.local_endpoint(), ec);
  impl_->thread.join();
}

std::string FakeHttpServer::url() const {
  return absl::StrCat("http://127.0.0.1:", impl_->acceptor.local_endpoint().port());
}

std::vector<std::string> FakeHttpServer::targets() const {
  std::lock_guard<std::mutex> lock(impl_->mu);
  return impl_->targets;
}

}  // namespace kbs::testing
