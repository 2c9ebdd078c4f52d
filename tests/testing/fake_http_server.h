// Test helper: a tiny HTTP/1.1 server on 127.0.0.1 that answers every
// request with a handler's response (one request per connection), to stand
// in for remote services such as AMD KDS in tests.
#ifndef KBS_TESTS_TESTING_FAKE_HTTP_SERVER_H_
#define KBS_TESTS_TESTING_FAKE_HTTP_SERVER_H_

#include <atomic>
#include <functional>
#include <memory>
#include <string>
#include <thread>
#include <vector>

namespace kbs::testing {

struct FakeResponse {
  int status = 200;
  std::string body;
  std::vector<std::pair<std::string, std::string>> headers;
};

class FakeHttpServer {
 public:
  using Handler = std::function<FakeResponse(const std::string& target)>;
  explicit FakeHttpServer(Handler handler);
  ~FakeHttpServer();

  std::string url() const;  // http://127.0.0.1:PORT
  int requests() const { return requests_.load(); }
  // Targets requested so far, in order.
  std::vector<std::string> targets() const;

 private:
  struct Impl;
  std::unique_ptr<Impl> impl_;
  std::atomic<int> requests_{0};
};

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_FAKE_HTTP_SERVER_H_
