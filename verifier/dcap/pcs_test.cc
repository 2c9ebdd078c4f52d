#include "verifier/dcap/pcs.h"

#include <arpa/inet.h>
#include <netinet/in.h>
#include <sys/socket.h>
#include <unistd.h>

#include <atomic>
#include <condition_variable>
#include <cstdlib>
#include <filesystem>
#include <future>
#include <memory>
#include <mutex>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/time/clock.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/fake_http_server.h"
#include "tests/testing/testdata.h"

namespace kbs::verifier::dcap {
namespace {

using ::testing::ElementsAre;
using ::testing::HasSubstr;
using ::testing::Not;

std::string Read(const std::string& relative) {
  return common::ReadFile(kbs::testing::TestDataDir() + "/" + relative).value_or("");
}

std::string TempDir(const std::string& name) {
  std::string dir = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// As Intel PCS encodes its issuer-chain headers: everything but RFC 3986
// unreserved characters escaped (newlines, '+', '/', '=', spaces).
std::string UrlEncode(const std::string& s) {
  std::string out;
  for (unsigned char c : s) {
    if (std::isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppendFormat(&out, "%%%02X", c);
    }
  }
  return out;
}

// The exact text of `member`'s object in a PCS body {"member":{..},"signature":".."}
// as served, found without the JSON parser under test.
std::string SignedText(const std::string& body, const std::string& member) {
  std::string prefix = absl::StrCat("{\"", member, "\":");
  size_t end = body.rfind(",\"signature\":\"");
  if (body.rfind(prefix, 0) != 0 || end == std::string::npos) return "";
  return body.substr(prefix.size(), end - prefix.size());
}

std::string SignatureBytes(const std::string& body) {
  size_t at = body.rfind(",\"signature\":\"");
  if (at == std::string::npos) return "";
  return common::HexDecode(body.substr(at + 14, 128)).value_or("");
}

// A listening socket that never accepts: connections complete in the
// kernel's backlog, requests are never answered.
class SilentServer {
 public:
  SilentServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 && listen(fd_, 16) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
  }
  ~SilentServer() { close(fd_); }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  int port() const { return port_; }

 private:
  int fd_ = -1;
  int port_ = 0;
};

// Accepts connections and records each request head, answering 404; to see
// request headers, which FakeHttpServer does not show.
class RecordingServer {
 public:
  RecordingServer() {
    fd_ = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    socklen_t len = sizeof(addr);
    if (bind(fd_, reinterpret_cast<sockaddr*>(&addr), len) == 0 && listen(fd_, 16) == 0 &&
        getsockname(fd_, reinterpret_cast<sockaddr*>(&addr), &len) == 0) {
      port_ = ntohs(addr.sin_port);
    }
    thread_ = std::thread([this] {
      while (true) {
        int conn = accept(fd_, nullptr, nullptr);
        if (conn < 0 || stopping_) {
          if (conn >= 0) close(conn);
          return;
        }
        std::string head;
        char buf[4096];
        while (head.find("\r\n\r\n") == std::string::npos) {
          ssize_t n = read(conn, buf, sizeof(buf));
          if (n <= 0) break;
          head.append(buf, static_cast<size_t>(n));
        }
        {
          std::lock_guard<std::mutex> lock(mu_);
          heads_.push_back(head);
        }
        const char kAnswer[] =
            "HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\nConnection: close\r\n\r\n";
        (void)!write(conn, kAnswer, sizeof(kAnswer) - 1);
        close(conn);
      }
    });
  }
  ~RecordingServer() {
    stopping_ = true;
    // Unblock accept() with a connection of our own.
    int poke = socket(AF_INET, SOCK_STREAM, 0);
    sockaddr_in addr{};
    addr.sin_family = AF_INET;
    addr.sin_addr.s_addr = htonl(INADDR_LOOPBACK);
    addr.sin_port = htons(static_cast<uint16_t>(port_));
    (void)connect(poke, reinterpret_cast<sockaddr*>(&addr), sizeof(addr));
    thread_.join();
    close(poke);
    close(fd_);
  }
  std::string url() const { return absl::StrCat("http://127.0.0.1:", port_); }
  std::vector<std::string> heads() const {
    std::lock_guard<std::mutex> lock(mu_);
    return heads_;
  }

 private:
  int fd_ = -1;
  int port_ = 0;
  std::atomic<bool> stopping_{false};
  std::thread thread_;
  mutable std::mutex mu_;
  std::vector<std::string> heads_;
};

constexpr char kFmspcHex[] = "50806f000000";
const std::string kFmspc("\x50\x80\x6f\x00\x00\x00", 6);
const std::string kTcbTarget = "/tdx/certification/v4/tcb?fmspc=50806f000000";
const std::string kQeTarget = "/tdx/certification/v4/qe/identity";
const std::string kPckCrlTarget = "/sgx/certification/v4/pckcrl?ca=platform&encoding=der";
const std::string kRootCrlTarget = "/IntelSGXRootCA.der";

// A PCS stand-in serving the real 2023-06 TDX collateral of FMSPC
// 50806f000000; each knob changes one thing about its answers.
class PcsTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!std::filesystem::exists(kbs::testing::TestDataDir() +
                                 "/tdx/gotdx-tcbInfo-50806f000000-2023-06.json")) {
      GTEST_SKIP() << "real TDX collateral not found: set KBS_TESTDATA to shared/testdata";
    }
    tcb_body_ = Read("tdx/gotdx-tcbInfo-50806f000000-2023-06.json");
    qe_body_ = Read("tdx/gotdx-tdqe-identity-2023-06.json");
    chain_ = Read("intel-common/derived-tcb-signing-chain-2018-2025.pem");
    pck_crl_ = Read("intel-common/gotdx-pckcrl-platform-2023-06.der");
    root_crl_ = Read("intel-common/gotdx-rootcrl-2023-04.der");
    ASSERT_FALSE(tcb_body_.empty() || qe_body_.empty() || chain_.empty() || pck_crl_.empty() ||
                 root_crl_.empty());
  }

  testing::FakeResponse Serve(const std::string& target) {
    if (always_503_) return {503, "busy", {}};
    if (throttle_.load() > 0) {
      --throttle_;
      return {429, "slow down", {{"Retry-After", "1"}}};
    }
    if (target == kTcbTarget) {
      return {
          200,
          tcb_body_,
          {{old_header_ ? "SGX-TCB-Info-Issuer-Chain" : "TCB-Info-Issuer-Chain", UrlEncode(chain_)},
           {"Content-Type", "application/json"}}};
    }
    if (target == kQeTarget) {
      return {200, qe_body_, {{"SGX-Enclave-Identity-Issuer-Chain", UrlEncode(chain_)}}};
    }
    if (target == kPckCrlTarget && pck_crl_status_ != 404) {
      return {pck_crl_status_, pck_crl_text_.empty() ? pck_crl_ : pck_crl_text_, {}};
    }
    if (target == kRootCrlTarget && serve_root_crl_) return {200, root_crl_, {}};
    return {404, "not found", {}};
  }

  PcsCollateral::Options OptionsFor(const testing::FakeHttpServer& server) {
    PcsCollateral::Options options;
    options.base_url = server.url();
    options.root_ca_crl_url = server.url() + kRootCrlTarget;
    options.retry_backoff = absl::Milliseconds(50);
    return options;
  }

  CollateralRequest Request() const { return {DcapTee::kTdx, kFmspc, PckCa::kPlatform}; }

  std::string tcb_body_, qe_body_, chain_, pck_crl_, root_crl_;
  std::atomic<int> throttle_{0};
  bool always_503_ = false;
  bool old_header_ = false;
  bool serve_root_crl_ = true;
  int pck_crl_status_ = 200;
  std::string pck_crl_text_;  // served instead of the DER when set
  // 2023-06-20T00:00:00Z: inside every item's validity.
  common::FakeClock clock_{absl::FromUnixSeconds(1687219200)};
};

TEST_F(PcsTest, FetchesCollateralAsServedAndKeepsItUntilNextUpdate) {
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();

  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_THAT(pcs.targets(), ElementsAre(kTcbTarget, kQeTarget, kPckCrlTarget, kRootCrlTarget));
  EXPECT_EQ((*fetcher)->requests_sent(), 4);
  // The signed text byte for byte, and the signatures as raw r||s.
  EXPECT_EQ(c->tcb_info, SignedText(tcb_body_, "tcbInfo"));
  EXPECT_THAT(c->tcb_info, HasSubstr("\"fmspc\":\"50806f000000\""));
  EXPECT_EQ(c->tcb_info_signature, SignatureBytes(tcb_body_));
  EXPECT_EQ(c->tcb_info_signature.size(), 64u);
  EXPECT_EQ(c->qe_identity, SignedText(qe_body_, "enclaveIdentity"));
  EXPECT_EQ(c->qe_identity_signature, SignatureBytes(qe_body_));
  // The URL-encoded headers, decoded.
  EXPECT_EQ(c->tcb_info_issuer_chain, chain_);
  EXPECT_EQ(c->qe_identity_issuer_chain, chain_);
  EXPECT_EQ(c->pck_crl, pck_crl_);
  EXPECT_EQ(c->root_ca_crl, root_crl_);

  // Within validity and the refresh interval: from memory, no request.
  clock_.Advance(absl::Hours(12));
  auto again = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_EQ(again->tcb_info, c->tcb_info);
  EXPECT_EQ(again->pck_crl, c->pck_crl);
  EXPECT_EQ((*fetcher)->requests_sent(), 4);
  EXPECT_EQ(pcs.requests(), 4);

  // After a day the set is fetched again (new CRL entries take effect).
  clock_.Advance(absl::Hours(13));
  ASSERT_TRUE((*fetcher)->Get(Request(), absl::Seconds(10)).ok());
  EXPECT_EQ((*fetcher)->requests_sent(), 8);

  // The QE identity and the PCK CRL expire on 2023-07-08: fetched again.
  clock_.Advance(absl::Hours(24 * 18));  // 2023-07-09
  ASSERT_TRUE((*fetcher)->Get(Request(), absl::Seconds(10)).ok());
  EXPECT_EQ((*fetcher)->requests_sent(), 12);
}

TEST_F(PcsTest, StoresWhatItFetchesInTheDirectoryCache) {
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  std::string dir = TempDir("pcs_cache");
  DirectoryCollateral cache(dir);
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), &cache, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();

  // The layout of collateral.h.
  EXPECT_TRUE(std::filesystem::exists(dir + "/tdx/tcb_info/" + kFmspcHex + ".json"));
  EXPECT_TRUE(std::filesystem::exists(dir + "/tdx/qe_identity.json"));
  EXPECT_EQ(common::ReadFile(dir + "/tcb_signing_chain.pem").value_or(""), chain_);
  EXPECT_EQ(common::ReadFile(dir + "/pck_crl/platform.der").value_or(""), pck_crl_);
  EXPECT_EQ(common::ReadFile(dir + "/root_ca_crl.der").value_or(""), root_crl_);
  // Read back, it is the same collateral.
  auto stored = DirectoryCollateral(dir).Get(Request(), absl::Seconds(1));
  ASSERT_TRUE(stored.ok()) << stored.status();
  EXPECT_EQ(stored->tcb_info, c->tcb_info);
  EXPECT_EQ(stored->tcb_info_signature, c->tcb_info_signature);
  EXPECT_EQ(stored->qe_identity, c->qe_identity);
  EXPECT_EQ(stored->qe_identity_signature, c->qe_identity_signature);
  EXPECT_EQ(stored->tcb_info_issuer_chain, c->tcb_info_issuer_chain);
  EXPECT_EQ(stored->pck_crl, c->pck_crl);
  EXPECT_EQ(stored->root_ca_crl, c->root_ca_crl);
}

// With trust anchors, only collateral that verifies is kept: a set signed
// under another root is Unavailable and never reaches the directory, whose
// copy stays the fallback.
TEST_F(PcsTest, KeepsOnlyCollateralThatVerifies) {
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  std::string dir = TempDir("pcs_verified");
  DirectoryCollateral cache(dir);
  RootAnchors intel = RootAnchors::IntelDefault();
  PcsCollateral::Options options = OptionsFor(pcs);
  options.anchors = &intel;
  auto fetcher = PcsCollateral::Create(options, &cache, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  ASSERT_TRUE((*fetcher)->Get(Request(), absl::Seconds(10)).ok());
  EXPECT_TRUE(std::filesystem::exists(dir + "/tdx/qe_identity.json"));

  std::string other_dir = TempDir("pcs_unverified");
  DirectoryCollateral other_cache(other_dir);
  RootAnchors other;
  ASSERT_TRUE(other.Add(std::string(64, 'a')).ok());
  options.anchors = &other;
  auto strict = PcsCollateral::Create(options, &other_cache, &clock_);
  ASSERT_TRUE(strict.ok()) << strict.status();
  auto c = (*strict)->Get(Request(), absl::Seconds(10));
  ASSERT_FALSE(c.ok());
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(c.status().message(), HasSubstr("does not verify"));
  EXPECT_FALSE(std::filesystem::exists(other_dir + "/tdx/qe_identity.json"));
}

TEST_F(PcsTest, UnknownFmspcIsNotFound) {
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  CollateralRequest request = Request();
  request.fmspc = std::string("\x00\x90\x6e\xa1\x00\x00", 6);
  auto c = (*fetcher)->Get(request, absl::Seconds(10));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kNotFound) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("no tdx TCB info for FMSPC 00906ea10000"));
  EXPECT_EQ(pcs.requests(), 1);
  // Nor is an FMSPC of the wrong length sent anywhere.
  request.fmspc = "short";
  EXPECT_EQ((*fetcher)->Get(request, absl::Seconds(1)).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(pcs.requests(), 1);
}

TEST_F(PcsTest, BuildsSgxTargetsUnderTheBasePathPrefix) {
  testing::FakeHttpServer pcs([](const std::string&) {
    return testing::FakeResponse{404, "not found", {}};
  });
  PcsCollateral::Options options = OptionsFor(pcs);
  options.base_url = pcs.url() + "/pccs/";
  auto fetcher = PcsCollateral::Create(options, nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  CollateralRequest request{DcapTee::kSgx, kFmspc, PckCa::kProcessor};
  EXPECT_EQ((*fetcher)->Get(request, absl::Seconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_THAT(pcs.targets(), ElementsAre("/pccs/sgx/certification/v4/tcb?fmspc=50806f000000"));
}

TEST_F(PcsTest, WaitsAsToldByRetryAfter) {
  throttle_ = 1;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tcb_info, SignedText(tcb_body_, "tcbInfo"));
  EXPECT_EQ(pcs.requests(), 5);
  EXPECT_EQ((*fetcher)->requests_sent(), 5);
  EXPECT_EQ(pcs.targets()[0], kTcbTarget);
  EXPECT_EQ(pcs.targets()[1], kTcbTarget);
}

TEST_F(PcsTest, RetryAfterPastTheDeadlineIsUnavailable) {
  throttle_ = 1000;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Milliseconds(500));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("HTTP 429"));
  EXPECT_EQ(pcs.requests(), 1);
}

TEST_F(PcsTest, AlwaysBusyServerIsUnavailableAtTheDeadline) {
  always_503_ = true;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(1));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("TCB info for FMSPC 50806f000000"));
  EXPECT_THAT(c.status().message(), HasSubstr("HTTP 503"));
  EXPECT_GE(pcs.requests(), 2);  // retried
}

// A server that accepts and never answers. The call runs on a thread of its
// own, with everything it uses, so that a client ignoring its timeout fails
// this test instead of hanging the suite.
TEST_F(PcsTest, SilentServerIsUnavailableAtTheDeadline) {
  struct Call {
    SilentServer silent;
    common::FakeClock clock{absl::FromUnixSeconds(1687219200)};
    std::unique_ptr<PcsCollateral> fetcher;
    std::promise<absl::Status> done;
  };
  auto call = std::make_shared<Call>();
  ASSERT_NE(call->silent.port(), 0);
  PcsCollateral::Options options;
  options.base_url = call->silent.url();
  options.root_ca_crl_url = "";
  auto fetcher = PcsCollateral::Create(options, nullptr, &call->clock);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  call->fetcher = *std::move(fetcher);
  std::future<absl::Status> result = call->done.get_future();
  CollateralRequest request = Request();
  std::thread([call, request] {
    call->done.set_value(call->fetcher->Get(request, absl::Seconds(1)).status());
  }).detach();
  ASSERT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "PcsCollateral::Get did not return: the HTTP client does not time out";
  absl::Status status = result.get();
  EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
  EXPECT_THAT(status.message(), HasSubstr("TCB info"));
}

TEST_F(PcsTest, MissingCrlsAreLeftOut) {
  pck_crl_status_ = 404;
  serve_root_crl_ = false;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tcb_info, SignedText(tcb_body_, "tcbInfo"));
  EXPECT_TRUE(c->pck_crl.empty());
  EXPECT_TRUE(c->root_ca_crl.empty());

  // No root CRL URL: not asked for.
  PcsCollateral::Options options = OptionsFor(pcs);
  options.root_ca_crl_url = "";
  auto no_root = PcsCollateral::Create(options, nullptr, &clock_);
  ASSERT_TRUE(no_root.ok()) << no_root.status();
  ASSERT_TRUE((*no_root)->Get(Request(), absl::Seconds(10)).ok());
  EXPECT_EQ((*no_root)->requests_sent(), 3);
  EXPECT_THAT(pcs.targets().back(), Not(HasSubstr("Root")));
}

TEST_F(PcsTest, CrlFailureOtherThanNotFoundIsUnavailable) {
  pck_crl_status_ = 400;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("PCK platform CA CRL"));

  pck_crl_status_ = 200;
  pck_crl_text_ = "not a CRL";
  c = (*fetcher)->Get(Request(), absl::Seconds(10));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
}

// A PCCS serving the PCK CRL as PEM and, on another host, the root CA CRL as
// hex text: both come out as the DER Intel signed.
TEST_F(PcsTest, CrlsInPemOrHexBecomeDer) {
  std::string b64 = common::Base64Encode(pck_crl_);
  pck_crl_text_ = "-----BEGIN X509 CRL-----\n";
  for (size_t i = 0; i < b64.size(); i += 64)
    absl::StrAppend(&pck_crl_text_, b64.substr(i, 64), "\n");
  absl::StrAppend(&pck_crl_text_, "-----END X509 CRL-----\n");
  serve_root_crl_ = false;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  std::string hex_root = common::HexEncode(root_crl_);
  testing::FakeHttpServer root_host([&](const std::string& t) {
    if (t == "/sgx/certification/v4/rootcacrl") return testing::FakeResponse{200, hex_root, {}};
    return testing::FakeResponse{404, "not found", {}};
  });
  PcsCollateral::Options options = OptionsFor(pcs);
  options.root_ca_crl_url = root_host.url() + "/sgx/certification/v4/rootcacrl";
  auto fetcher = PcsCollateral::Create(options, nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->pck_crl, pck_crl_);
  EXPECT_EQ(c->root_ca_crl, root_crl_);
  EXPECT_EQ(pcs.requests(), 3);
  EXPECT_EQ(root_host.requests(), 1);
}

TEST_F(PcsTest, ReadsTheOlderTcbInfoChainHeader) {
  old_header_ = true;
  testing::FakeHttpServer pcs([this](const std::string& t) { return Serve(t); });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->tcb_info_issuer_chain, chain_);
}

TEST_F(PcsTest, MissingIssuerChainIsUnavailable) {
  testing::FakeHttpServer pcs([this](const std::string& t) {
    testing::FakeResponse r = Serve(t);
    if (t == kTcbTarget) r.headers.clear();
    return r;
  });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("TCB-Info-Issuer-Chain"));
}

TEST_F(PcsTest, SendsTheApiKeyToPcsOnly) {
  RecordingServer pcs;
  PcsCollateral::Options options;
  options.base_url = pcs.url();
  options.root_ca_crl_url = "";
  options.api_key = "0123456789abcdef";
  auto fetcher = PcsCollateral::Create(options, nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  EXPECT_EQ((*fetcher)->Get(Request(), absl::Seconds(10)).status().code(),
            absl::StatusCode::kNotFound);
  std::vector<std::string> heads = pcs.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_THAT(heads[0], HasSubstr("Ocp-Apim-Subscription-Key: 0123456789abcdef\r\n"));

  // The root CA CRL host is someone else: no key for it.
  testing::FakeHttpServer full_pcs([this](const std::string& t) { return Serve(t); });
  RecordingServer root_host;
  options = OptionsFor(full_pcs);
  options.root_ca_crl_url = root_host.url() + kRootCrlTarget;
  options.api_key = "0123456789abcdef";
  fetcher = PcsCollateral::Create(options, nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_TRUE(c->root_ca_crl.empty());  // the recorder answers 404
  heads = root_host.heads();
  ASSERT_EQ(heads.size(), 1u);
  EXPECT_THAT(heads[0], HasSubstr("GET /IntelSGXRootCA.der HTTP/1.1"));
  EXPECT_THAT(heads[0], Not(HasSubstr("0123456789abcdef")));
}

// Retry-After may be an HTTP-date (RFC 9110 §10.2.3), judged by the
// injected clock.
TEST_F(PcsTest, HonorsRetryAfterAsAnHttpDate) {
  std::atomic<int> throttled{0};
  auto date = [this](absl::Duration from_now) {
    return absl::FormatTime("%a, %d %b %Y %H:%M:%S GMT", clock_.Now() + from_now,
                            absl::UTCTimeZone());
  };
  const std::string soon = date(absl::Seconds(2));
  testing::FakeHttpServer pcs([&](const std::string& t) {
    if (throttled.fetch_add(1) == 0) return testing::FakeResponse{429, "", {{"Retry-After", soon}}};
    return Serve(t);
  });
  auto fetcher = PcsCollateral::Create(OptionsFor(pcs), nullptr, &clock_);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  absl::Time start = absl::Now();
  auto c = (*fetcher)->Get(Request(), absl::Seconds(10));
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_GE(absl::Now() - start, absl::Milliseconds(1900));  // the backoff alone is 50 ms
  EXPECT_EQ(pcs.requests(), 5);

  // A date past the deadline: Unavailable at once, after one request.
  const std::string late = date(absl::Hours(1));
  testing::FakeHttpServer busy([&](const std::string&) {
    return testing::FakeResponse{429, "", {{"Retry-After", late}}};
  });
  auto other = PcsCollateral::Create(OptionsFor(busy), nullptr, &clock_);
  ASSERT_TRUE(other.ok()) << other.status();
  start = absl::Now();
  c = (*other)->Get(Request(), absl::Seconds(2));
  EXPECT_EQ(c.status().code(), absl::StatusCode::kUnavailable) << c.status();
  EXPECT_THAT(c.status().message(), HasSubstr("Retry-After 1h"));
  EXPECT_LT(absl::Now() - start, absl::Seconds(1));
  EXPECT_EQ(busy.requests(), 1);
}

// A name server that never answers holds no attestation past its deadline,
// neither the one whose fetch resolves nor one waiting for the fetch lock.
// The calls run on threads of their own, with everything they use, so that
// a resolution that ignores the deadline fails this test instead of hanging
// the suite.
TEST_F(PcsTest, UnansweredNameLookupEndsAtTheDeadline) {
  struct Lookup {
    std::mutex mu;
    std::condition_variable cv;
    bool released = false;
  };
  struct Call {
    std::shared_ptr<Lookup> lookup = std::make_shared<Lookup>();
    common::FakeClock clock{absl::FromUnixSeconds(1687219200)};
    std::unique_ptr<PcsCollateral> fetcher;
    std::promise<std::pair<absl::Status, absl::Duration>> done[2];
  };
  auto call = std::make_shared<Call>();
  PcsCollateral::Options options;
  options.base_url = "http://pcs.test:8081";
  options.root_ca_crl_url = "";
  options.http.resolver =
      [lookup = call->lookup](const std::string&) -> absl::StatusOr<std::vector<std::string>> {
    std::unique_lock<std::mutex> lock(lookup->mu);
    lookup->cv.wait_for(lock, std::chrono::seconds(60), [&] { return lookup->released; });
    return absl::UnavailableError("no name server");
  };
  auto fetcher = PcsCollateral::Create(options, nullptr, &call->clock);
  ASSERT_TRUE(fetcher.ok()) << fetcher.status();
  call->fetcher = *std::move(fetcher);
  CollateralRequest request = Request();
  for (int i = 0; i < 2; ++i) {
    std::thread([call, request, i] {
      absl::Time start = absl::Now();
      absl::Status s = call->fetcher->Get(request, absl::Seconds(1)).status();
      call->done[i].set_value({s, absl::Now() - start});
    }).detach();
  }
  for (int i = 0; i < 2; ++i) {
    auto result = call->done[i].get_future();
    ASSERT_EQ(result.wait_for(std::chrono::seconds(30)), std::future_status::ready)
        << "PcsCollateral::Get did not return: name resolution is not bounded";
    auto [status, took] = result.get();
    EXPECT_EQ(status.code(), absl::StatusCode::kUnavailable) << status;
    EXPECT_LT(took, absl::Milliseconds(2500)) << status;
  }
  {
    std::lock_guard<std::mutex> lock(call->lookup->mu);
    call->lookup->released = true;
    call->lookup->cv.notify_all();
  }
}

TEST(PcsOptionsTest, RejectsBadUrlsAndNoClock) {
  common::FakeClock clock(absl::UnixEpoch());
  PcsCollateral::Options options;
  EXPECT_EQ(PcsCollateral::Create(options, nullptr, nullptr).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.base_url = "pcs.example";
  EXPECT_EQ(PcsCollateral::Create(options, nullptr, &clock).status().code(),
            absl::StatusCode::kInvalidArgument);
  options.base_url = "http://127.0.0.1:1";
  options.root_ca_crl_url = "ftp://root.example/crl";
  EXPECT_EQ(PcsCollateral::Create(options, nullptr, &clock).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST(PcsInternalTest, PercentDecode) {
  EXPECT_EQ(internal::PercentDecode("a%20b%0A%2b+%2F").value_or("?"), "a b\n++/");
  EXPECT_EQ(internal::PercentDecode("").value_or("?"), "");
  EXPECT_FALSE(internal::PercentDecode("%").ok());
  EXPECT_FALSE(internal::PercentDecode("ab%2").ok());
  EXPECT_FALSE(internal::PercentDecode("%G0").ok());
}

TEST(PcsInternalTest, CrlToDerRejectsWhatIsNotACrl) {
  EXPECT_FALSE(internal::CrlToDer("").ok());
  EXPECT_FALSE(internal::CrlToDer("3082").ok());
  EXPECT_FALSE(internal::CrlToDer("-----BEGIN X509 CRL-----\nAAAA\n-----END X509 CRL-----\n").ok());
  EXPECT_FALSE(internal::CrlToDer(std::string("\x30\x03\x02\x01\x01", 5)).ok());
}

}  // namespace
}  // namespace kbs::verifier::dcap
