// kbs-bench: a load generator for a running KBS. `kbs-bench rcar` runs full
// RCAR flows (auth, attest with sample evidence, resource GET, decrypt) with
// a fresh EC P-256 TEE key per flow, over HTTP (keep-alive) or gRPC, from N
// concurrent virtual clients for a fixed duration, optionally paced to a
// target rate. The last line of output is one JSON object:
//   {"flows_per_s":..,"p50_ms":..,"p99_ms":..,"errors":..,...}
//
// The client is event-driven (Boost.Asio for HTTP, the gRPC callback API),
// like wrk or ghz, so that on a machine shared with the server it spends
// its CPU on the protocol and the guest-side cryptography rather than on
// thread switches. Latency is measured from each flow's scheduled start, so
// a paced run counts queueing delay (no coordinated omission).
#include <grpcpp/grpcpp.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <atomic>
#include <boost/asio/connect.hpp>
#include <boost/asio/ip/tcp.hpp>
#include <boost/asio/steady_timer.hpp>
#include <boost/beast/core.hpp>
#include <boost/beast/http.hpp>
#include <chrono>
#include <cmath>
#include <iostream>
#include <memory>
#include <mutex>
#include <thread>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/json.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "kbs/client/kbs_client.h"
#include "kbs/client/sample_attester.h"
#include "kbs/core/protocol.h"
#include "proto/kbs/v1/kbs.grpc.pb.h"
#include "tests/testing/dcap_generator.h"
#include "tests/testing/snp_generator.h"
#include "verifier/dcap/collateral.h"
#include "verifier/snp/certs.h"

namespace {

namespace asio = boost::asio;
namespace beast = boost::beast;
namespace bhttp = boost::beast::http;
using tcp = asio::ip::tcp;
using SteadyClock = std::chrono::steady_clock;
using kbs::common::Json;

struct Settings {
  std::string url;
  std::string protocol = "http";
  std::string resource;
  kbs::client::TeeKeyType key_type = kbs::client::TeeKeyType::kEcP256;
  bool bearer = false;
  // "sample", or "snp" with reports signed by a test chain (--snp-signer).
  std::string tee = "sample";
  kbs::client::EvidenceMaker evidence_maker;
  int concurrency = 16;
  double rate = 0;
  SteadyClock::time_point start, measure_from, end;
};

// Results shared by all virtual clients.
class Recorder {
 public:
  void Success(SteadyClock::time_point scheduled, SteadyClock::time_point done, const Settings& s) {
    if (scheduled < s.measure_from) return;
    std::lock_guard<std::mutex> lock(mu_);
    latencies_ms_.push_back(std::chrono::duration<double, std::milli>(done - scheduled).count());
  }
  void Failure(SteadyClock::time_point scheduled, const Settings& s, absl::string_view what) {
    if (scheduled < s.measure_from) return;
    std::lock_guard<std::mutex> lock(mu_);
    ++errors_;
    if (first_error_.empty()) first_error_ = std::string(what);
  }
  std::mutex mu_;
  std::vector<double> latencies_ms_;
  uint64_t errors_ = 0;
  std::string first_error_;
};

// The guest side of one flow: key, evidence, decryption.
struct GuestState {
  std::optional<kbs::client::TeeKeyPair> key;
  // A fresh TEE key and the attestation request for `nonce`.
  absl::StatusOr<kbs::AttestRequest> Attest(absl::string_view nonce, const Settings& s) {
    auto generated = kbs::client::TeeKeyPair::Generate(s.key_type);
    if (!generated.ok()) return generated.status();
    key.emplace(*std::move(generated));
    if (s.evidence_maker) {
      return kbs::client::BuildAttestation(nonce, *key, s.evidence_maker, std::nullopt);
    }
    return kbs::client::BuildSampleAttestation(nonce, *key, {});
  }
};

// SEV-SNP evidence from a test chain written by `kbs-bench snp-chain`: each
// report is signed with the chain's VCEK key, so the client pays the guest's
// ECDSA P-384 signature as the hardware would.
absl::StatusOr<kbs::client::EvidenceMaker> SnpEvidenceMaker(const std::string& dir) {
  namespace snp = kbs::verifier::snp;
  KBS_ASSIGN_OR_RETURN(std::string vcek, kbs::common::ReadFile(dir + "/vcek.der"));
  KBS_ASSIGN_OR_RETURN(std::string pem, kbs::common::ReadFile(dir + "/vcek.key"));
  KBS_ASSIGN_OR_RETURN(kbs::common::EvpPkeyPtr key, kbs::common::PrivateKeyFromPem(pem));
  KBS_ASSIGN_OR_RETURN(snp::VekCertificate vek, snp::ParseVekCertificate(vcek));
  auto shared_key = std::shared_ptr<EVP_PKEY>(key.release(), EVP_PKEY_free);
  snp::Product product = vek.product.value_or(snp::Product::kGenoa);
  std::string chip_id = vek.hwid;
  snp::TcbVersion tcb = vek.tcb;
  return kbs::client::EvidenceMaker(
      [=](absl::string_view report_data,
          const std::optional<std::string>& init_digest) -> absl::StatusOr<Json> {
        kbs::testing::SnpReportFields fields;
        fields.reported_tcb = tcb;
        fields.chip_id = chip_id;
        fields.report_data = std::string(report_data);
        fields.host_data = init_digest.value_or("");
        KBS_ASSIGN_OR_RETURN(std::string report, kbs::testing::SnpTestChain::SignReportWith(
                                                     shared_key.get(), product, fields));
        return kbs::testing::SnpTestChain::EvidenceJson(report, vcek);
      });
}

// TDX evidence from a test PKI written by `kbs-bench tdx-pki`: each quote is
// signed with the attestation key (ECDSA P-256), as the TD's quoting enclave
// would; the QE report and PCK chain are the PKI's.
absl::StatusOr<kbs::client::EvidenceMaker> TdxEvidenceMaker(const std::string& dir) {
  KBS_ASSIGN_OR_RETURN(std::string exported, kbs::common::ReadFile(dir + "/quote_signer.json"));
  KBS_ASSIGN_OR_RETURN(kbs::testing::QuoteSigner signer,
                       kbs::testing::QuoteSigner::Import(exported));
  auto shared = std::make_shared<kbs::testing::QuoteSigner>(std::move(signer));
  return kbs::client::EvidenceMaker(
      [shared](absl::string_view report_data,
               const std::optional<std::string>& init_digest) -> absl::StatusOr<Json> {
        kbs::testing::TdReportFields td;
        td.report_data = std::string(report_data);
        td.mr_config_id = init_digest.value_or("");
        KBS_ASSIGN_OR_RETURN(std::string quote, shared->Sign(kbs::testing::QuoteKind::kTdxV4, td));
        return kbs::testing::DcapTestPki::TdxEvidenceJson(quote);
      });
}

// `kbs-bench tdx-pki --out-dir DIR`: a test Intel PKI for benchmarks: DIR
// is a DCAP collateral directory (TCB info and QE identity valid for 30
// days), plus the quote signer and the root fingerprint to trust.
int WriteTdxPki(const std::string& dir) {
  namespace dcap = kbs::verifier::dcap;
  auto pki = kbs::testing::DcapTestPki::Create();
  absl::Status s = pki.status();
  absl::StatusOr<kbs::testing::QuoteSigner> signer = absl::UnknownError("");
  if (s.ok()) s = (*pki)->IssuePck(kbs::testing::PckOptions{}).status();
  if (s.ok()) {
    signer = (*pki)->MakeQuoteSigner(kbs::testing::QeFields());
    s = signer.status();
  }
  const absl::Time issued = absl::Now() - absl::Hours(1), next = absl::Now() + absl::Hours(720);
  absl::StatusOr<Json> bundle = absl::UnknownError("");
  if (s.ok()) {
    auto pck_crl = (*pki)->MakePckCrl(true, {}, issued, next);
    auto root_crl = (*pki)->MakeRootCrl({}, issued, next);
    s = pck_crl.ok() ? root_crl.status() : pck_crl.status();
    if (s.ok()) {
      bundle =
          (*pki)->CollateralBundle(kbs::testing::DcapTestPki::DefaultTdxTcbInfo(issued, next),
                                   kbs::testing::DcapTestPki::DefaultQeIdentity(true, issued, next),
                                   true, *pck_crl, *root_crl);
      s = bundle.status();
    }
  }
  if (s.ok()) {
    auto collateral = dcap::ParseCollateralBundle(kbs::common::DumpJson(*bundle));
    s = collateral.status();
    if (s.ok()) {
      dcap::CollateralRequest request;
      request.fmspc =
          *kbs::common::HexDecode(absl::AsciiStrToLower(kbs::testing::kDcapDefaultFmspcHex));
      s = dcap::DirectoryCollateral(dir).Store(request, *collateral);
    }
  }
  if (s.ok()) {
    auto exported = signer->Export();
    s = exported.status();
    if (s.ok()) s = kbs::common::WriteFileAtomic(dir + "/quote_signer.json", *exported, 0600);
  }
  if (s.ok()) {
    s = kbs::common::WriteFileAtomic(dir + "/trusted_root", (*pki)->RootFingerprintHex() + "\n");
  }
  if (!s.ok()) {
    std::cerr << "kbs-bench: " << s.message() << "\n";
    return 1;
  }
  std::cout << "wrote a test Intel PKI to " << dir << " (collateral dir; trust root "
            << (*pki)->RootFingerprintHex() << ")\n";
  return 0;
}

// `kbs-bench snp-chain --out-dir DIR`: a test AMD chain for benchmarks.
int WriteSnpChain(const std::string& dir) {
  namespace snp = kbs::verifier::snp;
  auto chain = kbs::testing::SnpTestChain::Create(snp::Product::kGenoa);
  if (!chain.ok()) {
    std::cerr << "kbs-bench: " << chain.status().message() << "\n";
    return 1;
  }
  const snp::TcbVersion tcb = kbs::testing::PlausibleTcb();
  auto vcek = (*chain)->IssueVcek({tcb, std::string(64, '\x5a')});
  auto key = (*chain)->VekKeyPem();
  absl::Status s = vcek.ok() ? key.status() : vcek.status();
  if (s.ok()) s = kbs::common::EnsureDirectory(dir + "/Genoa", 0700);
  if (s.ok()) s = kbs::common::WriteFileAtomic(dir + "/Genoa/cert_chain.pem", (*chain)->ChainPem());
  if (s.ok()) s = kbs::common::WriteFileAtomic(dir + "/vcek.der", *vcek);
  if (s.ok()) s = kbs::common::WriteFileAtomic(dir + "/vcek.key", *key, 0600);
  if (s.ok()) {
    s = kbs::common::WriteFileAtomic(dir + "/trusted_ark",
                                     "Genoa:" + (*chain)->ArkFingerprintHex() + "\n");
  }
  if (!s.ok()) {
    std::cerr << "kbs-bench: " << s.message() << "\n";
    return 1;
  }
  std::cout << "wrote a test AMD chain to " << dir << " (collateral dir; trust "
            << "Genoa:" << (*chain)->ArkFingerprintHex() << ")\n";
  return 0;
}

// Schedules flow starts: as fast as possible, or at `rate` in total.
class Pacer {
 public:
  Pacer(const Settings& s, int index) : s_(s) {
    interval_ = s.rate > 0 ? std::chrono::duration_cast<SteadyClock::duration>(
                                 std::chrono::duration<double>(s.concurrency / s.rate))
                           : SteadyClock::duration::zero();
    next_ = s.start + interval_ * index / std::max(1, s.concurrency);
  }
  // The scheduled start of the next flow, or nullopt when time is up.
  std::optional<SteadyClock::time_point> Next() {
    SteadyClock::time_point t = interval_.count() > 0 ? next_ : std::max(next_, SteadyClock::now());
    if (t >= s_.end) return std::nullopt;
    next_ = t + interval_;
    return t;
  }

 private:
  const Settings& s_;
  SteadyClock::duration interval_;
  SteadyClock::time_point next_;
};

// One virtual client's loop: wait for the next scheduled start, run a flow,
// record it, repeat until the end. `Derived` provides Auth() (the first
// step), OnFailure() and OnFinished().
template <typename Derived>
class Flow : public std::enable_shared_from_this<Derived> {
 protected:
  Flow(asio::io_context& ioc, const Settings& s, Recorder& rec, int index)
      : timer_(ioc), s_(s), rec_(rec), pacer_(s, index) {}

  void Schedule() {
    auto next = pacer_.Next();
    if (!next) return static_cast<Derived*>(this)->OnFinished();
    scheduled_ = *next;
    if (scheduled_ <= SteadyClock::now()) {
      // Due now (always, at full speed): no timer to arm and cancel.
      asio::post(timer_.get_executor(), [self = this->shared_from_this()] { self->Auth(); });
      return;
    }
    timer_.expires_at(scheduled_);
    timer_.async_wait([self = this->shared_from_this()](beast::error_code) { self->Auth(); });
  }
  void Succeed() {
    rec_.Success(scheduled_, SteadyClock::now(), s_);
    Schedule();
  }
  void Fail(absl::string_view what) {
    rec_.Failure(scheduled_, s_, what);
    static_cast<Derived*>(this)->OnFailure();
    Schedule();
  }

  asio::steady_timer timer_;
  const Settings& s_;
  Recorder& rec_;
  Pacer pacer_;
  SteadyClock::time_point scheduled_;
};

// ---- HTTP: one keep-alive connection per virtual client, Asio-driven. ----
class HttpFlow : public Flow<HttpFlow> {
 public:
  HttpFlow(asio::io_context& ioc, const Settings& s, Recorder& rec, tcp::resolver::results_type ep,
           std::string host, int index)
      : Flow(ioc, s, rec, index),
        stream_(ioc),
        watchdog_(ioc),
        endpoints_(std::move(ep)),
        host_(std::move(host)) {}

  void Start() { Schedule(); }

 private:
  friend class Flow<HttpFlow>;
  void OnFinished() {
    finished_ = true;
    watchdog_.cancel();
    beast::error_code ignored;
    stream_.socket().shutdown(tcp::socket::shutdown_both, ignored);
  }

  // One timeout per virtual client instead of one per socket operation
  // (each of which would re-arm the loop's timerfd): a request that makes
  // no progress for kStall gets its socket closed, failing the flow.
  static constexpr auto kStall = std::chrono::seconds(30);
  void Watch() {
    watching_ = true;
    watchdog_.expires_after(kStall);
    watchdog_.async_wait([this, self = shared_from_this()](beast::error_code ec) {
      watching_ = false;
      if (ec || finished_) return;
      if (in_flight_ && SteadyClock::now() - sent_ >= kStall) {
        beast::error_code ignored;
        stream_.socket().close(ignored);
      }
      Watch();
    });
  }
  void OnFailure() {
    beast::error_code ignored;
    stream_.socket().close(ignored);
    connected_ = false;
  }

  void Send(std::string method, std::string target, std::string body,
            void (HttpFlow::*next)(bhttp::response<bhttp::string_body>&)) {
    request_ = absl::StrCat(method, " ", target, " HTTP/1.1\r\nHost: ", host_, "\r\n");
    if (!cookie_.empty())
      absl::StrAppend(&request_, "Cookie: ", kbs::kSessionCookie, "=", cookie_, "\r\n");
    if (!bearer_.empty()) absl::StrAppend(&request_, "Authorization: Bearer ", bearer_, "\r\n");
    if (method != "GET") {
      absl::StrAppend(&request_, "Content-Type: application/json\r\nContent-Length: ", body.size(),
                      "\r\n");
    }
    absl::StrAppend(&request_, "\r\n", body);
    sent_ = SteadyClock::now();
    in_flight_ = true;
    if (!watching_) Watch();
    auto write = [this, self = shared_from_this(), next] {
      asio::async_write(
          stream_, asio::buffer(request_), [this, self, next](beast::error_code ec, size_t) {
            if (ec) {
              in_flight_ = false;
              return Fail(absl::StrCat("write: ", ec.message()));
            }
            response_.emplace();
            response_->body_limit(1 << 20);
            // Beast reads at most the buffer's free capacity per syscall
            // (512 bytes in a new buffer): room for a whole response.
            if (buffer_.capacity() < (16 << 10)) buffer_.reserve(16 << 10);
            bhttp::async_read(
                stream_, buffer_, *response_, [this, self, next](beast::error_code ec, size_t) {
                  in_flight_ = false;
                  if (ec) return Fail(absl::StrCat("read: ", ec.message()));
                  auto res = response_->release();
                  if (!res.keep_alive()) connected_ = false;
                  if (res.result_int() != 200) {
                    return Fail(absl::StrCat("HTTP ", res.result_int(), ": ", res.body()));
                  }
                  (this->*next)(res);
                });
          });
    };
    if (connected_) return write();
    buffer_.clear();
    stream_.async_connect(endpoints_, [this, self = shared_from_this(), write](
                                          beast::error_code ec, const tcp::endpoint&) {
      if (ec) {
        in_flight_ = false;
        return Fail(absl::StrCat("connect: ", ec.message()));
      }
      beast::error_code ignored;
      stream_.socket().set_option(tcp::no_delay(true), ignored);
      connected_ = true;
      write();
    });
  }

  void Auth() {
    cookie_.clear();
    bearer_.clear();
    Send("POST", "/kbs/v0/auth", kbs::client::AuthRequestJson(s_.tee), &HttpFlow::OnAuth);
  }

  void OnAuth(bhttp::response<bhttp::string_body>& res) {
    beast::string_view raw_cookie = res[bhttp::field::set_cookie];
    absl::string_view set_cookie(raw_cookie.data(), raw_cookie.size());
    if (!absl::ConsumePrefix(&set_cookie, "kbs-session-id=")) return Fail("no session cookie");
    cookie_ = std::string(set_cookie.substr(0, set_cookie.find(';')));
    auto body = kbs::common::ParseJson(res.body());
    if (!body.ok() || !body->contains("nonce")) return Fail("bad challenge");
    auto attestation = guest_.Attest((*body)["nonce"].get<std::string>(), s_);
    if (!attestation.ok()) return Fail(attestation.status().message());
    Send("POST", "/kbs/v0/attest", kbs::client::AttestRequestJson(*attestation),
         &HttpFlow::OnAttest);
  }

  void OnAttest(bhttp::response<bhttp::string_body>& res) {
    if (s_.bearer) {
      auto body = kbs::common::ParseJson(res.body());
      if (!body.ok() || !body->contains("token")) return Fail("bad token response");
      bearer_ = (*body)["token"].get<std::string>();
      cookie_.clear();
    }
    Send("GET", absl::StrCat("/kbs/v0/resource/", s_.resource), "", &HttpFlow::OnResource);
  }

  void OnResource(bhttp::response<bhttp::string_body>& res) {
    auto value = kbs::client::DecryptResource(res.body(), *guest_.key);
    if (!value.ok()) return Fail(value.status().message());
    Succeed();
  }

  beast::tcp_stream stream_;
  asio::steady_timer watchdog_;
  bool watching_ = false, finished_ = false, in_flight_ = false;
  SteadyClock::time_point sent_;
  tcp::resolver::results_type endpoints_;
  std::string host_;
  bool connected_ = false;
  beast::flat_buffer buffer_;
  std::string request_;
  std::optional<bhttp::response_parser<bhttp::string_body>> response_;
  std::string cookie_, bearer_;
  GuestState guest_;
};

// ---- gRPC: callback API; an Asio timer thread paces flow starts. ----
// A completion-queue event for the gRPC client.
class CqTag {
 public:
  virtual ~CqTag() = default;
  virtual void Done(bool ok) = 0;
};

class GrpcFlow : public Flow<GrpcFlow>, public CqTag {
 public:
  GrpcFlow(asio::io_context& ioc, const Settings& s, Recorder& rec,
           std::shared_ptr<kbs::v1::KeyBroker::Stub> stub, grpc::CompletionQueue* cq, int index,
           std::atomic<int>& active)
      : Flow(ioc, s, rec, index), stub_(std::move(stub)), cq_(cq), active_(active) {}

  void Start() {
    active_.fetch_add(1);
    Schedule();
  }

  // Called on the completion-queue thread when the outstanding call ends.
  void Done(bool ok) override {
    std::shared_ptr<GrpcFlow> self = std::move(in_flight_);  // keeps us alive to the end
    if (!ok) return Fail("completion queue shut down");
    (this->*next_)();
  }

 private:
  friend class Flow<GrpcFlow>;
  void OnFinished() { active_.fetch_sub(1); }
  void OnFailure() {}

  // Starts `reader`'s call; `next` runs when it completes. The async API
  // delivers completions to a queue this program polls itself, so a call
  // costs no thread hand-off.
  template <typename Reader, typename Resp>
  void Call(Reader reader, Resp* response, void (GrpcFlow::*next)()) {
    next_ = next;
    in_flight_ = shared_from_this();
    reader->StartCall();
    reader->Finish(response, &status_, static_cast<CqTag*>(this));
  }

  void Auth() {
    auth_req_.set_version(std::string(kbs::kProtocolVersion));
    auth_req_.set_tee(s_.tee);
    ctx_ = std::make_unique<grpc::ClientContext>();
    auth_reader_ = stub_->PrepareAsyncAuth(ctx_.get(), auth_req_, cq_);
    Call(auth_reader_.get(), &auth_resp_, &GrpcFlow::OnAuth);
  }

  void OnAuth() {
    if (!status_.ok()) return Fail(status_.error_message());
    auto request = guest_.Attest(auth_resp_.nonce(), s_);
    if (!request.ok()) return Fail(request.status().message());
    attest_req_.set_session_id(auth_resp_.session_id());
    attest_req_.set_nonce(request->nonce);
    attest_req_.set_tee_pubkey_json(kbs::common::DumpJson(request->tee_pubkey));
    attest_req_.set_primary_evidence_json(kbs::common::DumpJson(request->primary_evidence));
    attest_req_.set_additional_evidence(request->additional_evidence);
    ctx_ = std::make_unique<grpc::ClientContext>();
    attest_reader_ = stub_->PrepareAsyncAttest(ctx_.get(), attest_req_, cq_);
    Call(attest_reader_.get(), &attest_resp_, &GrpcFlow::OnAttest);
  }

  void OnAttest() {
    if (!status_.ok()) return Fail(status_.error_message());
    resource_req_.set_path(s_.resource);
    if (s_.bearer) {
      resource_req_.set_token(attest_resp_.token());
    } else {
      resource_req_.set_session_id(auth_resp_.session_id());
    }
    ctx_ = std::make_unique<grpc::ClientContext>();
    resource_reader_ = stub_->PrepareAsyncGetResource(ctx_.get(), resource_req_, cq_);
    Call(resource_reader_.get(), &resource_resp_, &GrpcFlow::OnResource);
  }

  void OnResource() {
    if (!status_.ok()) return Fail(status_.error_message());
    auto value = kbs::client::DecryptResource(resource_resp_.jwe_json(), *guest_.key);
    if (!value.ok()) return Fail(value.status().message());
    Succeed();
  }

  std::shared_ptr<kbs::v1::KeyBroker::Stub> stub_;
  grpc::CompletionQueue* cq_;
  std::atomic<int>& active_;
  std::shared_ptr<GrpcFlow> in_flight_;
  void (GrpcFlow::*next_)() = nullptr;
  grpc::Status status_;
  std::unique_ptr<grpc::ClientContext> ctx_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<kbs::v1::AuthResponse>> auth_reader_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<kbs::v1::AttestResponse>> attest_reader_;
  std::unique_ptr<grpc::ClientAsyncResponseReader<kbs::v1::GetResourceResponse>> resource_reader_;
  kbs::v1::AuthRequest auth_req_;
  kbs::v1::AuthResponse auth_resp_;
  kbs::v1::AttestRequest attest_req_;
  kbs::v1::AttestResponse attest_resp_;
  kbs::v1::GetResourceRequest resource_req_;
  kbs::v1::GetResourceResponse resource_resp_;
  GuestState guest_;
};

double Percentile(const std::vector<double>& sorted, double p) {
  if (sorted.empty()) return 0;
  size_t index = static_cast<size_t>(p * static_cast<double>(sorted.size() - 1) + 0.5);
  return sorted[std::min(index, sorted.size() - 1)];
}

double Round3(double v) { return std::round(v * 1000) / 1000; }

}  // namespace

int main(int argc, char** argv) {
  // Debian's abseil keeps absl::Mutex deadlock detection on; gRPC takes
  // many mutexes per call and the cycle bookkeeping costs measurable CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"kbs-bench: KBS load generator"};
  app.require_subcommand(1);
  CLI::App* rcar = app.add_subcommand("rcar", "Full RCAR flows (auth, attest, resource)");
  CLI::App* snp_chain = app.add_subcommand("snp-chain", "Write a test AMD chain for --tee snp");
  std::string chain_dir, snp_signer, tdx_signer, pki_dir;
  snp_chain->add_option("--out-dir", chain_dir, "Directory (also a collateral dir)")->required();
  CLI::App* tdx_pki = app.add_subcommand("tdx-pki", "Write a test Intel PKI for --tee tdx");
  tdx_pki->add_option("--out-dir", pki_dir, "Directory (also a DCAP collateral dir)")->required();
  Settings s;
  std::string key_type = "ec-p256";
  double duration = 10, warmup = 1;
  int threads = 1;
  int channels = 4;
  rcar->add_option("--url", s.url, "http://HOST:PORT, or HOST:PORT for gRPC")->required();
  rcar->add_option("--protocol", s.protocol, "http or grpc")
      ->check(CLI::IsMember({"http", "grpc"}));
  rcar->add_option("--resource", s.resource, "REPO/TYPE/TAG to fetch")->required();
  rcar->add_option("--duration", duration, "Measured seconds")->check(CLI::Range(0.1, 3600.0));
  rcar->add_option("--warmup", warmup, "Unmeasured seconds first")->check(CLI::Range(0.0, 600.0));
  rcar->add_option("--concurrency", s.concurrency, "Concurrent virtual clients")
      ->check(CLI::Range(1, 4096));
  rcar->add_option("--rate", s.rate, "Target flows per second in total (0 = as fast as possible)")
      ->check(CLI::Range(0.0, 1e7));
  rcar->add_option("--threads", threads, "Client event-loop threads")->check(CLI::Range(1, 64));
  rcar->add_option("--channels", channels, "gRPC channels (HTTP/2 connections)")
      ->check(CLI::Range(1, 256));
  rcar->add_option("--key-type", key_type, "ec-p256, ec-p521 or rsa")
      ->check(CLI::IsMember({"ec-p256", "ec-p521", "rsa"}));
  rcar->add_flag("--bearer", s.bearer, "Fetch by Bearer token instead of the session");
  rcar->add_option("--tee", s.tee, "sample, snp or tdx")
      ->check(CLI::IsMember({"sample", "snp", "tdx"}));
  rcar->add_option("--snp-signer", snp_signer, "Directory written by `kbs-bench snp-chain`");
  rcar->add_option("--tdx-signer", tdx_signer, "Directory written by `kbs-bench tdx-pki`");
  CLI11_PARSE(app, argc, argv);
  if (snp_chain->parsed()) return WriteSnpChain(chain_dir);
  if (tdx_pki->parsed()) return WriteTdxPki(pki_dir);
  s.key_type = *kbs::client::ParseTeeKeyType(key_type);
  if (s.tee == "snp") {
    if (snp_signer.empty()) {
      std::cerr << "kbs-bench: --tee snp needs --snp-signer DIR (see kbs-bench snp-chain)\n";
      return 2;
    }
    auto maker = SnpEvidenceMaker(snp_signer);
    if (!maker.ok()) {
      std::cerr << "kbs-bench: " << maker.status().message() << "\n";
      return 1;
    }
    s.evidence_maker = *std::move(maker);
  }
  if (s.tee == "tdx") {
    if (tdx_signer.empty()) {
      std::cerr << "kbs-bench: --tee tdx needs --tdx-signer DIR (see kbs-bench tdx-pki)\n";
      return 2;
    }
    auto maker = TdxEvidenceMaker(tdx_signer);
    if (!maker.ok()) {
      std::cerr << "kbs-bench: " << maker.status().message() << "\n";
      return 1;
    }
    s.evidence_maker = *std::move(maker);
  }

  s.start = SteadyClock::now() + std::chrono::milliseconds(300);
  s.measure_from = s.start + std::chrono::duration_cast<SteadyClock::duration>(
                                 std::chrono::duration<double>(warmup));
  s.end = s.measure_from + std::chrono::duration_cast<SteadyClock::duration>(
                               std::chrono::duration<double>(duration));

  Recorder recorder;
  // Channels outlive every flow: the last reference to a channel must not be
  // dropped inside one of its own callbacks.
  std::vector<std::shared_ptr<kbs::v1::KeyBroker::Stub>> stubs;
  std::vector<std::unique_ptr<grpc::CompletionQueue>> cqs;
  std::vector<std::thread> cq_threads;
  std::vector<std::unique_ptr<asio::io_context>> loops;
  for (int i = 0; i < threads; ++i) loops.push_back(std::make_unique<asio::io_context>(1));
  // gRPC flows spend most of their time outside Asio (in gRPC callbacks):
  // keep the loops alive until every flow has finished.
  std::vector<asio::executor_work_guard<asio::io_context::executor_type>> guards;
  std::atomic<int> active_grpc_flows{0};

  if (s.protocol == "http") {
    absl::string_view url = s.url;
    if (!absl::ConsumePrefix(&url, "http://")) {
      std::cerr << "kbs-bench: --url must be http://HOST:PORT for HTTP\n";
      return 2;
    }
    size_t colon = url.rfind(':');
    std::string host(url.substr(0, colon)), port(url.substr(colon + 1));
    tcp::resolver resolver(*loops[0]);
    beast::error_code ec;
    auto endpoints = resolver.resolve(host, port, ec);
    if (ec) {
      std::cerr << "kbs-bench: cannot resolve " << host << ": " << ec.message() << "\n";
      return 1;
    }
    for (int i = 0; i < s.concurrency; ++i) {
      std::make_shared<HttpFlow>(*loops[i % threads], s, recorder, endpoints, host, i)->Start();
    }
  } else {
    grpc::ChannelArguments args;
    args.SetMaxReceiveMessageSize(16 << 20);
    // A few HTTP/2 connections spread the load over the server's threads.
    for (int c = 0; c < channels; ++c) {
      args.SetInt("kbs-bench-channel", c);  // distinct channels, not shared
      stubs.push_back(kbs::v1::KeyBroker::NewStub(
          grpc::CreateCustomChannel(s.url, grpc::InsecureChannelCredentials(), args)));
    }
    for (int t = 0; t < threads; ++t) cqs.push_back(std::make_unique<grpc::CompletionQueue>());
    for (int i = 0; i < s.concurrency; ++i) {
      std::make_shared<GrpcFlow>(*loops[i % threads], s, recorder, stubs[i % stubs.size()],
                                 cqs[i % threads].get(), i, active_grpc_flows)
          ->Start();
    }
    for (auto& loop : loops) guards.push_back(asio::make_work_guard(*loop));
    for (auto& cq : cqs) {
      cq_threads.emplace_back([queue = cq.get()] {
        void* tag = nullptr;
        bool ok = false;
        while (queue->Next(&tag, &ok)) static_cast<CqTag*>(tag)->Done(ok);
      });
    }
  }

  std::vector<std::thread> runners;
  for (auto& loop : loops) runners.emplace_back([&loop] { loop->run(); });
  if (!guards.empty()) {
    std::this_thread::sleep_until(s.end);
    // In-flight flows finish their current call (bounded by its deadline).
    auto deadline = SteadyClock::now() + std::chrono::seconds(30);
    while (active_grpc_flows.load() > 0 && SteadyClock::now() < deadline) {
      std::this_thread::sleep_for(std::chrono::milliseconds(10));
    }
    guards.clear();
  }
  for (auto& t : runners) t.join();
  for (auto& cq : cqs) cq->Shutdown();
  for (auto& t : cq_threads) t.join();

  std::vector<double> all;
  uint64_t errors;
  std::string first_error;
  {
    std::lock_guard<std::mutex> lock(recorder.mu_);
    all = recorder.latencies_ms_;
    errors = recorder.errors_;
    first_error = recorder.first_error_;
  }
  std::sort(all.begin(), all.end());
  if (!first_error.empty()) std::cerr << "kbs-bench: first error: " << first_error << "\n";
  Json summary = {{"protocol", s.protocol},
                  {"concurrency", s.concurrency},
                  {"target_rate", s.rate},
                  {"duration_s", duration},
                  {"flows", all.size()},
                  {"flows_per_s", std::round(static_cast<double>(all.size()) / duration * 10) / 10},
                  {"p50_ms", Round3(Percentile(all, 0.50))},
                  {"p99_ms", Round3(Percentile(all, 0.99))},
                  {"max_ms", all.empty() ? 0.0 : Round3(all.back())},
                  {"errors", errors}};
  std::cout << summary.dump() << std::endl;
  return errors == 0 && !all.empty() ? 0 : 1;
}
