#include "common/http_client.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::common {
namespace {

using ::testing::HasSubstr;

// A keep-alive HTTP/1.1 server on 127.0.0.1 answering every request "200
// ok" after `delay`; with `close_after_response` it closes each connection
// after its first answer without saying so (as a server does with an idle
// connection), with `never_answer` it reads and never answers.
struct ServerBehavior {
  absl::Duration delay = absl::ZeroDuration();
  bool close_after_response = false;
  bool never_answer = false;
};

class TestServer {
 public:
  explicit TestServer(ServerBehavior behavior = ServerBehavior()) : behavior_(behavior) {
    listen_fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(listen_fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 &&
        listen(listen_fd_, 16) == 0 &&
        getsockname(listen_fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    acceptor_ = std::thread([this] {
      while (true) {
        int conn = accept(listen_fd_, nullptr, nullptr);
        if (conn < 0) return;
        std::lock_guard<std::mutex> lock(mu_);
        if (stopping_) {
          close(conn);
          return;
        }
        ++connections_;
        conn_fds_.push_back(conn);
        workers_.emplace_back([this, conn] { Serve(conn); });
      }
    });
  }

  ~TestServer() {
    {
      std::lock_guard<std::mutex> lock(mu_);
      stopping_ = true;
      for (int fd : conn_fds_) shutdown(fd, SHUT_RDWR);
    }
    shutdown(listen_fd_, SHUT_RDWR);
    acceptor_.join();
    for (std::thread& t : workers_) t.join();
    for (int fd : conn_fds_) close(fd);
    close(listen_fd_);
  }

  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::string named_url() const { return absl::StrCat("http://kds.test:", port_); }
  int connections() const {
    std::lock_guard<std::mutex> lock(mu_);
    return connections_;
  }
  int requests() const { return requests_.load(); }

 private:
  void Serve(int conn) {
    std::string pending;
    char buf[4096];
    while (true) {
      size_t end;
      while ((end = pending.find("\r\n\r\n")) == std::string::npos) {
        ssize_t n = read(conn, buf, sizeof(buf));
        if (n <= 0) return;
        pending.append(buf, static_cast<size_t>(n));
      }
      pending.erase(0, end + 4);
      ++requests_;
      if (behavior_.never_answer) continue;
      absl::SleepFor(behavior_.delay);
      const char kAnswer[] = "HTTP/1.1 200 OK\r\nContent-Length: 2\r\n\r\nok";
      if (write(conn, kAnswer, sizeof(kAnswer) - 1) < 0) return;
      if (behavior_.close_after_response) {
        shutdown(conn, SHUT_RDWR);
        return;
      }
    }
  }

  ServerBehavior behavior_;
  int listen_fd_ = -1;
  int port_ = 0;
  std::thread acceptor_;
  mutable std::mutex mu_;
  bool stopping_ = false;
  int connections_ = 0;
  std::vector<int> conn_fds_;
  std::vector<std::thread> workers_;
  std::atomic<int> requests_{0};
};

// A name server stand-in: answers 127.0.0.1 after `delay`, or once
// released. Shared with the lookup threads, which may outlive a test.
struct SlowResolver {
  std::mutex mu;
  std::condition_variable cv;
  bool released = false;
  std::atomic<int> calls{0};

  static HostResolver Make(std::shared_ptr<SlowResolver> self, absl::Duration delay) {
    return [self, delay](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
      ++self->calls;
      std::unique_lock<std::mutex> lock(self->mu);
      self->cv.wait_for(lock, absl::ToChronoNanoseconds(delay), [&] { return self->released; });
      return std::vector<std::string>{"127.0.0.1"};
    };
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu);
    released = true;
    cv.notify_all();
  }
};

TEST(HttpClientTest, SendsOverOneKeptAliveConnection) {
  TestServer server;
  auto client = HttpClient::Create(server.url());
  ASSERT_TRUE(client.ok()) << client.status();
  for (int i = 0; i < 3; ++i) {
    auto r = (*client)->SendBy(absl::Now() + absl::Seconds(10), "GET", "/", "", {});
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200);
    EXPECT_EQ(r->body, "ok");
  }
  EXPECT_EQ(server.requests(), 3);
  EXPECT_EQ(server.connections(), 1);
}

TEST(HttpClientTest, RejectsBadUrls) {
  EXPECT_FALSE(HttpClient::Create("ftp://host").ok());
  EXPECT_FALSE(HttpClient::Create("http://host/path").ok());
  EXPECT_FALSE(HttpClient::Create("http://host:http").ok());
  EXPECT_FALSE(HttpClient::Create("http://host:70000").ok());
  EXPECT_TRUE(HttpClient::Create("https://[::1]:8443").ok());
}

// A name server that does not answer cannot hold a request past its
// deadline (getaddrinfo cannot be cancelled: the client stops waiting for
// it), and a later request waits for the same lookup instead of starting
// another.
TEST(HttpClientTest, DeadlineBoundsANameLookupThatDoesNotAnswer) {
  TestServer server;
  auto resolver = std::make_shared<SlowResolver>();
  HttpClientOptions options;
  options.resolver = SlowResolver::Make(resolver, absl::Seconds(60));
  auto client = HttpClient::Create(server.named_url(), options);
  ASSERT_TRUE(client.ok()) << client.status();

  for (int i = 0; i < 2; ++i) {
    absl::Time start = absl::Now();
    auto r = (*client)->SendBy(start + absl::Milliseconds(300), "GET", "/", "", {});
    absl::Duration took = absl::Now() - start;
    ASSERT_FALSE(r.ok());
    EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(r.status().message(), HasSubstr("cannot resolve kds.test"));
    EXPECT_GE(took, absl::Milliseconds(250));
    EXPECT_LT(took, absl::Seconds(2));
  }
  EXPECT_EQ(resolver->calls.load(), 1);
  EXPECT_EQ(server.requests(), 0);

  // Once the name server answers, the next request uses that answer.
  resolver->Release();
  auto r = (*client)->SendBy(absl::Now() + absl::Seconds(10), "GET", "/", "", {});
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(r->status, 200);
  EXPECT_EQ(resolver->calls.load(), 1);
  EXPECT_EQ(server.requests(), 1);
}

// Resolve and exchange share one deadline: a lookup of 400 ms and an answer
// after 400 ms do not fit in 600 ms, though each would fit alone.
TEST(HttpClientTest, OneDeadlineCoversLookupConnectAndExchange) {
  TestServer server({.delay = absl::Milliseconds(400)});
  auto resolver = std::make_shared<SlowResolver>();
  HttpClientOptions options;
  options.resolver = SlowResolver::Make(resolver, absl::Milliseconds(400));
  auto client = HttpClient::Create(server.named_url(), options);
  ASSERT_TRUE(client.ok()) << client.status();
  absl::Time start = absl::Now();
  auto r = (*client)->SendBy(start + absl::Milliseconds(600), "GET", "/", "", {});
  absl::Duration took = absl::Now() - start;
  ASSERT_FALSE(r.ok());
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(took, absl::Milliseconds(1500));

  auto fresh = HttpClient::Create(server.named_url(), options);
  ASSERT_TRUE(fresh.ok());
  r = (*fresh)->SendBy(absl::Now() + absl::Seconds(10), "GET", "/", "", {});
  ASSERT_TRUE(r.ok()) << r.status();
}

// Send() without a deadline gives the whole request options.timeout.
TEST(HttpClientTest, SilentServerTimesOut) {
  TestServer server({.never_answer = true});
  HttpClientOptions options;
  options.timeout = absl::Milliseconds(300);
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  absl::Time start = absl::Now();
  auto r = (*client)->Send("GET", "/", "");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_LT(absl::Now() - start, absl::Seconds(2));
  // A deadline already passed sends nothing.
  r = (*client)->SendBy(absl::Now() - absl::Seconds(1), "GET", "/", "", {});
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(r.status().message(), HasSubstr("deadline passed"));
}

// A kept-alive connection the server closed: by default the request is
// sent again on a new connection; callers that pace requests turn that off
// and see the failure.
TEST(HttpClientTest, ResendsOnAStaleConnectionOnlyWhenAllowed) {
  TestServer server({.close_after_response = true});
  auto resending = HttpClient::Create(server.url());
  ASSERT_TRUE(resending.ok());
  ASSERT_TRUE((*resending)->Send("GET", "/", "").ok());
  absl::SleepFor(absl::Milliseconds(50));  // the server's close arrives
  auto r = (*resending)->Send("GET", "/", "");
  ASSERT_TRUE(r.ok()) << r.status();
  EXPECT_EQ(server.connections(), 2);

  HttpClientOptions options;
  options.resend_on_stale_connection = false;
  auto paced = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(paced.ok());
  ASSERT_TRUE((*paced)->Send("GET", "/", "").ok());
  absl::SleepFor(absl::Milliseconds(50));
  int requests = server.requests();
  r = (*paced)->Send("GET", "/", "");
  EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << r.status();
  EXPECT_EQ(server.requests(), requests);
  EXPECT_EQ(server.connections(), 3);
  // The next request opens a new connection.
  ASSERT_TRUE((*paced)->Send("GET", "/", "").ok());
  EXPECT_EQ(server.connections(), 4);
}

TEST(HttpClientTest, IdleConnectionsAreNotReusedPastMaxIdle) {
  TestServer server;
  HttpClientOptions options;
  options.max_idle = absl::Milliseconds(100);
  auto client = HttpClient::Create(server.url(), options);
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->Send("GET", "/", "").ok());
  ASSERT_TRUE((*client)->Send("GET", "/", "").ok());
  EXPECT_EQ(server.connections(), 1);
  absl::SleepFor(absl::Milliseconds(250));
  ASSERT_TRUE((*client)->Send("GET", "/", "").ok());
  EXPECT_EQ(server.connections(), 2);
}

TEST(RetryAfterTest, SecondsAndHttpDates) {
  const absl::Time now = absl::FromUnixSeconds(784111717);  // 1994-11-06T08:48:37Z
  EXPECT_EQ(ParseRetryAfter("120", now), absl::Seconds(120));
  EXPECT_EQ(ParseRetryAfter(" 0 ", now), absl::ZeroDuration());
  EXPECT_EQ(ParseRetryAfter("99999999999999999999999", now), absl::InfiniteDuration());
  // RFC 9110 §5.6.7's three forms of one instant, a minute after `now`.
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:49:37 GMT", now), absl::Seconds(60));
  EXPECT_EQ(ParseRetryAfter("Sunday, 06-Nov-94 08:49:37 GMT", now), absl::Seconds(60));
  EXPECT_EQ(ParseRetryAfter("Sun Nov  6 08:49:37 1994", now), absl::Seconds(60));
  // A date already passed asks for no wait.
  EXPECT_EQ(ParseRetryAfter("Sun, 06 Nov 1994 08:00:00 GMT", now), absl::ZeroDuration());
  for (const char* bad :
       {"", "soon", "-5", "1.5", "Sun, 06 Nov 1994 08:49:37 CET", "2026-01-01T00:00:00Z"}) {
    EXPECT_EQ(ParseRetryAfter(bad, now), std::nullopt) << bad;
  }
}

}  // namespace
}  // namespace kbs::common
