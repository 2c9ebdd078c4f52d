// End-to-end tests: the real `kbs` and `kbsctl` binaries on loopback,
// driven over HTTP and gRPC the way CoCo clients and operators drive them.
#include <grpcpp/grpcpp.h>

#include <filesystem>
#include <future>
#include <thread>

#include "absl/cleanup/cleanup.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/http_client.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/client/kbs_client.h"
#include "proto/kbs/v1/kbs.grpc.pb.h"
#include "tests/proto/health.grpc.pb.h"
#include "tests/testing/dcap_generator.h"
#include "tests/testing/fake_http_server.h"
#include "tests/testing/kbs_process.h"
#include "tests/testing/raw_http.h"
#include "tests/testing/snp_generator.h"
#include "tests/testing/test_certs.h"
#include "tests/testing/testdata.h"
#include "verifier/dcap/collateral.h"
#include "verifier/snp/evidence.h"

namespace kbs {
namespace {

using client::KbsClient;
using client::RcarOptions;
using client::TeeKeyType;
using common::Json;
using ::testing::HasSubstr;
using testing::KbsProcess;
using ::testing::Not;
using testing::RawHttp;

constexpr char kTypePrefix[] = "https://github.com/confidential-containers/kbs/errors/";
constexpr char kResource[] = "models/llama/key";
constexpr char kValue[] = "model-weights-key-0123456789abcdef";

std::unique_ptr<KbsProcess> StartKbs(KbsProcess::Options options = {}) {
  auto kbs = KbsProcess::Start(options);
  EXPECT_TRUE(kbs.ok()) << kbs.status();
  return kbs.ok() ? *std::move(kbs) : nullptr;
}

std::unique_ptr<KbsClient> Http(const KbsProcess& kbs) {
  return *client::NewHttpKbsClient(kbs.http_url());
}
std::unique_ptr<KbsClient> Grpc(const KbsProcess& kbs) {
  return *client::NewGrpcKbsClient(kbs.grpc_address());
}

// SEV-SNP evidence signed by `chain`'s VCEK for a guest with `tcb` and
// `chip_id`: with the VCEK in its cert_chain (`vcek_der`), or without it (the
// KBS must find it in its collateral or fetch it from KDS). `tamper` changes
// a signed byte after signing.
client::EvidenceMaker SnpEvidenceMaker(const testing::SnpTestChain& chain,
                                       verifier::snp::TcbVersion tcb, std::string chip_id,
                                       std::optional<std::string> vcek_der,
                                       const bool* tamper = nullptr) {
  return [&chain, tcb, chip_id, vcek_der, tamper](
             absl::string_view report_data,
             const std::optional<std::string>& init_digest) -> absl::StatusOr<Json> {
    testing::SnpReportFields fields;
    fields.reported_tcb = tcb;
    fields.chip_id = chip_id;
    fields.report_data = std::string(report_data);
    fields.host_data = init_digest.value_or("");
    auto report = chain.SignReport(fields);
    if (!report.ok()) return report.status();
    absl::StatusOr<Json> json;
    if (vcek_der.has_value()) {
      json = testing::SnpTestChain::EvidenceJson(*report, *vcek_der);
    } else {
      verifier::snp::SnpEvidence evidence;
      evidence.report = *std::move(report);
      json = verifier::snp::SnpEvidenceToJson(evidence);
    }
    if (!json.ok()) return json.status();
    if (tamper != nullptr && *tamper) (*json)["attestation_report"]["measurement"][0] = 0;
    return *std::move(json);
  };
}

using HealthStatus = ::grpc::health::v1::HealthCheckResponse;

// The server's grpc.health.v1 status (UNKNOWN when the call failed).
HealthStatus::ServingStatus GrpcHealth(const KbsProcess& kbs) {
  auto channel = ::grpc::CreateChannel(kbs.grpc_address(), ::grpc::InsecureChannelCredentials());
  ::grpc::ClientContext ctx;
  ctx.set_deadline(std::chrono::system_clock::now() + std::chrono::seconds(5));
  ::grpc::health::v1::HealthCheckRequest req;
  HealthStatus resp;
  ::grpc::Status status = ::grpc::health::v1::Health::NewStub(channel)->Check(&ctx, req, &resp);
  return status.ok() ? resp.status() : HealthStatus::UNKNOWN;
}

void Provision(KbsProcess& kbs, const std::string& policy = "allow-all") {
  auto admin = Http(kbs);
  ASSERT_TRUE(admin->PutResource(kbs.AdminToken(), kResource, kValue).ok());
  ASSERT_TRUE(admin->SetPolicy(kbs.AdminToken(), Json{{"preset", policy}}.dump()).ok());
}

// Status and parsed JSON error of a raw request.
struct Answer {
  int status = 0;
  std::string type;
  std::string detail;
};
Answer Raw(const KbsProcess& kbs, const std::string& request) {
  auto r = RawHttp(kbs.http_port(), request);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return {};
  Answer a{r->status, "", ""};
  auto json = common::ParseJson(r->body);
  EXPECT_TRUE(json.ok()) << "error body is not JSON: " << r->body;
  if (json.ok() && json->is_object()) {
    a.type = json->value("type", "");
    a.detail = json->value("detail", "");
  }
  EXPECT_THAT(r->head, HasSubstr("Content-Type: application/json")) << r->head;
  return a;
}

bool Healthy(const KbsProcess& kbs) {
  auto r = RawHttp(kbs.http_port(), testing::BuildRequest("GET", "/healthz", ""));
  return r.ok() && r->status == 200;
}

class E2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    kbs_ = StartKbs();
    ASSERT_NE(kbs_, nullptr);
    Provision(*kbs_);
  }
  void TearDown() override {
    if (kbs_ != nullptr) {
      EXPECT_TRUE(Healthy(*kbs_)) << "server stopped serving";
      EXPECT_EQ(kbs_->Stop(), 0) << kbs_->Log();
    }
  }
  std::unique_ptr<KbsProcess> kbs_;
};

TEST_F(E2eTest, RcarOverHttpAndGrpcEveryKeyTypeByCookieAndBearer) {
  for (bool grpc : {false, true}) {
    auto client = grpc ? Grpc(*kbs_) : Http(*kbs_);
    for (TeeKeyType type : {TeeKeyType::kEcP256, TeeKeyType::kEcP521, TeeKeyType::kRsa}) {
      for (bool bearer : {false, true}) {
        RcarOptions options;
        options.key_type = type;
        options.use_token = bearer;
        auto value = client::RunSampleRcar(*client, kResource, options);
        ASSERT_TRUE(value.ok()) << (grpc ? "grpc " : "http ") << static_cast<int>(type)
                                << (bearer ? " bearer: " : " cookie: ") << value.status();
        EXPECT_EQ(*value, kValue);
      }
    }
  }
}

TEST_F(E2eTest, InitDataAndDevicesBindIntoTheToken) {
  auto client = Http(*kbs_);
  RcarOptions options;
  options.evidence.init_data_toml =
      "version = \"0.1.0\"\nalgorithm = \"sha256\"\n[data]\n\"x\" = \"y\"\n";
  options.evidence.devices = {"sampledevice"};
  options.evidence.claims = Json{{"measurement", "ab12"}, {"debug", false}};
  auto value = client::RunSampleRcar(*client, kResource, options);
  ASSERT_TRUE(value.ok()) << value.status();
  // A gRPC attestation of the same shape, then the token's claims.
  auto grpc = Grpc(*kbs_);
  auto nonce = grpc->Auth("sample");
  auto key = *client::TeeKeyPair::Generate(TeeKeyType::kEcP256);
  auto token = grpc->Attest(*client::BuildSampleAttestation(*nonce, key, options.evidence));
  ASSERT_TRUE(token.ok()) << token.status();
  EXPECT_LT(token->size(), 16384u);
  std::vector<std::string> parts = absl::StrSplit(*token, '.');
  Json claims = Json::parse(*common::Base64UrlDecode(parts[1]));
  const Json& cpu = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"];
  EXPECT_EQ(cpu["sample"]["measurement"], "ab12");
  EXPECT_EQ(cpu["init_data_claims"]["x"], "y");
  EXPECT_TRUE(
      claims["submods"]["gpu0"]["ear.veraison.annotated-evidence"].contains("sampledevice"));
  // Tampered device evidence fails the whole attestation: the primary
  // evidence binds the whole additional-evidence string.
  auto nonce2 = grpc->Auth("sample");
  auto request = *client::BuildSampleAttestation(*nonce2, key, options.evidence);
  Json devices = Json::parse(request.additional_evidence);
  devices["sampledevice"]["report_data"] = common::Base64Encode(std::string(48, 'x'));
  request.additional_evidence = devices.dump();
  auto tampered = grpc->Attest(request);
  EXPECT_EQ(tampered.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(tampered.status().message(), HasSubstr("report_data does not match"));
}

TEST_F(E2eTest, AttestationFailuresOverHttp) {
  const std::string auth_body = client::AuthRequestJson("sample");
  // Wrong protocol version.
  Answer version =
      Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth",
                                       R"({"version":"0.3.0","tee":"sample","extra-params":""})"));
  EXPECT_EQ(version.status, 401);
  EXPECT_EQ(version.type, absl::StrCat(kTypePrefix, "AttestationError"));
  EXPECT_THAT(version.detail, HasSubstr("KBS Client Protocol Version Mismatch"));
  // Unknown TEE, wrong types, malformed and truncated JSON.
  Answer tee =
      Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth",
                                       R"({"version":"0.4.0","tee":"foo","extra-params":""})"));
  EXPECT_EQ(tee.status, 400);
  EXPECT_THAT(tee.detail, HasSubstr("unknown TEE"));
  Answer types =
      Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth",
                                       R"({"version":4,"tee":"sample","extra-params":""})"));
  EXPECT_EQ(types.status, 400);
  EXPECT_EQ(types.type, absl::StrCat(kTypePrefix, "SerdeError"));
  EXPECT_EQ(Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth", "{{{")).status, 400);
  EXPECT_EQ(
      Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth", auth_body.substr(0, 20))).status,
      400);
  EXPECT_EQ(
      Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/attest", R"({"runtime-data":{"nonce":7}})"))
          .status,
      400);

  // Wrong nonce, reused nonce, tampered report data: 401 and nothing released.
  auto http = common::HttpClient::Create(kbs_->http_url());
  ASSERT_TRUE(http.ok());
  auto key = *client::TeeKeyPair::Generate(TeeKeyType::kEcP256);
  std::string cookie;  // "kbs-session-id=..." from the last /auth
  auto attest = [&](const std::string& nonce, const client::SampleEvidenceOptions& o) {
    std::vector<std::pair<std::string, std::string>> headers = {
        {"Content-Type", "application/json"}};
    if (!cookie.empty()) headers.emplace_back("Cookie", cookie);
    return (*http)->Send("POST", "/kbs/v0/attest",
                         client::AttestRequestJson(*client::BuildSampleAttestation(nonce, key, o)),
                         headers);
  };
  auto challenge = [&]() {
    auto r =
        (*http)->Send("POST", "/kbs/v0/auth", auth_body, {{"Content-Type", "application/json"}});
    EXPECT_EQ(r->status, 200);
    std::string set_cookie = r->Header("set-cookie");
    cookie = set_cookie.substr(0, set_cookie.find(';'));
    return Json::parse(r->body)["nonce"].get<std::string>();
  };
  challenge();
  auto wrong = attest(common::Base64Encode(std::string(32, 'n')), {});
  EXPECT_EQ(wrong->status, 401);
  EXPECT_THAT(wrong->body, HasSubstr("nonce does not match"));

  std::string nonce = challenge();
  ASSERT_EQ(attest(nonce, {})->status, 200);
  auto reused = attest(nonce, {});
  EXPECT_EQ(reused->status, 401);
  EXPECT_THAT(reused->body, HasSubstr("already used"));

  nonce = challenge();
  client::SampleEvidenceOptions tampered;
  tampered.tamper_report_data = true;
  auto bad = attest(nonce, tampered);
  EXPECT_EQ(bad->status, 401);
  EXPECT_THAT(bad->body, HasSubstr("report_data does not match"));
  auto after =
      (*http)->Send("GET", absl::StrCat("/kbs/v0/resource/", kResource), "", {{"Cookie", cookie}});
  EXPECT_EQ(after->status, 401);

  // Attest without a session cookie.
  cookie.clear();
  auto no_cookie = attest(nonce, {});
  EXPECT_EQ(no_cookie->status, 401);
  EXPECT_THAT(no_cookie->body, HasSubstr("cookie"));
}

TEST_F(E2eTest, ResourceAndRoutingFailures) {
  auto client = Http(*kbs_);
  auto missing = client::RunSampleRcar(*client, "models/llama/absent", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound) << missing.status();
  Answer plugin = Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/nebula-ca/credential", ""));
  EXPECT_EQ(plugin.status, 404);
  EXPECT_EQ(plugin.type, absl::StrCat(kTypePrefix, "PluginNotFound"));
  Answer wrong_method = Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/auth", ""));
  EXPECT_EQ(wrong_method.status, 404);
  Answer no_token = Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/resource/a/b/c", ""));
  EXPECT_EQ(no_token.status, 401);
  EXPECT_EQ(no_token.type, absl::StrCat(kTypePrefix, "TokenNotFound"));
  Answer forged = Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/resource/a/b/c", "",
                                                   "Authorization: Bearer a.b.c"));
  EXPECT_EQ(forged.status, 401);
  EXPECT_EQ(forged.type, absl::StrCat(kTypePrefix, "TokenVerifierError"));

  // A policy deny is 403 (the client gives up instead of re-attesting).
  ASSERT_TRUE(client->SetPolicy(kbs_->AdminToken(), R"({"preset":"deny-all"})").ok());
  auto denied = client::RunSampleRcar(*client, kResource, {});
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied) << denied.status();
  EXPECT_THAT(denied.status().message(), HasSubstr("PolicyDeny"));
  auto denied_grpc = client::RunSampleRcar(*Grpc(*kbs_), kResource, {});
  EXPECT_EQ(denied_grpc.status().code(), absl::StatusCode::kPermissionDenied);
}

TEST_F(E2eTest, OversizedAndMalformedRequests) {
  // Body over the 2 MiB default.
  std::string big(3 * 1024 * 1024, 'x');
  Answer body = Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/auth", big));
  EXPECT_EQ(body.status, 413);
  EXPECT_EQ(body.type, absl::StrCat(kTypePrefix, "HTTPFailed"));
  // Header fields of 64 KiB and heads of 256 KiB are accepted...
  std::string token_64k(64 * 1024, 'a');
  Answer big_token = Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/resource/a/b/c", "",
                                                      "Authorization: Bearer " + token_64k));
  EXPECT_EQ(big_token.status, 401);  // parsed and rejected as a token, not as a header
  std::string fields;
  for (int i = 0; i < 4; ++i)
    absl::StrAppend(&fields, "X-Pad-", i, ": ", std::string(60000, 'p'), "\r\n");
  fields.resize(fields.size() - 2);
  EXPECT_EQ(Raw(*kbs_, testing::BuildRequest("GET", "/healthz", "", fields)).status, 200);
  // ...larger ones get 413.
  Answer huge_field =
      Raw(*kbs_, testing::BuildRequest("GET", "/kbs/v0/resource/a/b/c", "",
                                       "Authorization: Bearer " + std::string(200 * 1024, 'a')));
  EXPECT_EQ(huge_field.status, 413);
  std::string too_many;
  for (int i = 0; i < 6; ++i)
    absl::StrAppend(&too_many, "X-Pad-", i, ": ", std::string(60000, 'p'), "\r\n");
  too_many.resize(too_many.size() - 2);
  EXPECT_EQ(Raw(*kbs_, testing::BuildRequest("GET", "/healthz", "", too_many)).status, 413);
  // Not HTTP at all.
  Answer garbage = Raw(*kbs_, "THIS IS NOT HTTP\r\n\r\n");
  EXPECT_EQ(garbage.status, 400);
  EXPECT_EQ(Raw(*kbs_, "GET /healthz HTTP/1.1\r\nContent-Length: abc\r\n\r\n").status, 400);
  // Keep-alive: several requests on one connection.
  auto http = common::HttpClient::Create(kbs_->http_url());
  for (int i = 0; i < 3; ++i) EXPECT_EQ((*http)->Send("GET", "/healthz", "")->status, 200);
}

TEST_F(E2eTest, AdminAuthentication) {
  auto client = Http(*kbs_);
  Answer none = Raw(*kbs_, testing::BuildRequest("POST", "/kbs/v0/resource/a/b/c", "v"));
  EXPECT_EQ(none.status, 401);
  EXPECT_EQ(none.type, absl::StrCat(kTypePrefix, "AdminAuthAccess"));
  auto expired = client->PutResource(kbs_->AdminToken(absl::Minutes(-10)), "a/b/c", "v");
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));
  auto other = *jose::JwtSigner::Create(*common::GenerateEd25519Key());
  std::string foreign = *other->Sign(Json{{"exp", absl::ToUnixSeconds(absl::Now()) + 300}});
  EXPECT_EQ(client->PutResource(foreign, "a/b/c", "v").status().code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(client->DeleteResource(foreign, kResource).code(), absl::StatusCode::kUnauthenticated);
  auto grpc = Grpc(*kbs_);
  EXPECT_EQ(grpc->ListResources(foreign).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(grpc->ListResources("").status().code(), absl::StatusCode::kUnauthenticated);
  // Nothing changed.
  auto list = grpc->ListResources(kbs_->AdminToken());
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ((*list)["resources"].size(), 1u);
  EXPECT_EQ((*list)["resources"][0]["path"], kResource);
}

TEST_F(E2eTest, GrpcErrorsHealthAndAdmin) {
  auto grpc = Grpc(*kbs_);
  EXPECT_EQ(grpc->Auth("nope").status().code(), absl::StatusCode::kInvalidArgument);
  auto missing = client::RunSampleRcar(*grpc, "a/b/absent", {});
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_THAT(missing.status().message(), HasSubstr("PluginInternalError"));
  EXPECT_TRUE(grpc->PutResource(kbs_->AdminToken(), "a/b/c", "grpc value").ok());
  auto value = client::RunSampleRcar(*grpc, "a/b/c", {});
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, "grpc value");
  EXPECT_TRUE(grpc->DeleteResource(kbs_->AdminToken(), "a/b/c").ok());
  auto policy = grpc->GetPolicy(kbs_->AdminToken());
  ASSERT_TRUE(policy.ok());
  EXPECT_EQ((*policy)["policy"]["preset"], "allow-all");

  EXPECT_EQ(GrpcHealth(*kbs_), HealthStatus::SERVING);
  // Malformed JSON in a gRPC field.
  auto channel = ::grpc::CreateChannel(kbs_->grpc_address(), ::grpc::InsecureChannelCredentials());
  auto stub = v1::KeyBroker::NewStub(channel);
  ::grpc::ClientContext ctx2;
  v1::AttestRequest bad;
  bad.set_tee_pubkey_json("{");
  v1::AttestResponse out;
  EXPECT_EQ(stub->Attest(&ctx2, bad, &out).error_code(), ::grpc::StatusCode::INVALID_ARGUMENT);

  // Every call above is on /metrics, by method and status code.
  auto metrics = RawHttp(kbs_->http_port(), testing::BuildRequest("GET", "/metrics", ""));
  ASSERT_TRUE(metrics.ok()) << metrics.status();
  for (const char* line :
       {"kbs_grpc_requests_total{method=\"Auth\",code=\"INVALID_ARGUMENT\"} 1\n",
        "kbs_grpc_requests_total{method=\"Auth\",code=\"OK\"} 2\n",
        "kbs_grpc_requests_total{method=\"Attest\",code=\"OK\"} 2\n",
        "kbs_grpc_requests_total{method=\"Attest\",code=\"INVALID_ARGUMENT\"} 1\n",
        "kbs_grpc_requests_total{method=\"GetResource\",code=\"NOT_FOUND\"} 1\n",
        "kbs_grpc_requests_total{method=\"GetResource\",code=\"OK\"} 1\n",
        "kbs_grpc_requests_total{method=\"Admin\",code=\"OK\"} 3\n",
        "kbs_grpc_request_duration_seconds_count{method=\"Attest\"} 3\n"}) {
    EXPECT_THAT(metrics->body, HasSubstr(line));
  }
  // Those seven lines and no other method (health checks are not counted).
  size_t lines = 0;
  for (size_t at = 0;
       (at = metrics->body.find("\nkbs_grpc_requests_total{", at)) != std::string::npos; ++at) {
    ++lines;
  }
  EXPECT_EQ(lines, 7u) << metrics->body;
}

TEST(E2eSessionTest, ExpiredSession) {
  auto kbs = StartKbs({.config_toml = "[attestation]\nsession_timeout = 1\n"});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);
  auto client = Http(*kbs);
  auto nonce = client->Auth("sample");
  ASSERT_TRUE(nonce.ok());
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  auto key = *client::TeeKeyPair::Generate(TeeKeyType::kEcP256);
  auto token = client->Attest(*client::BuildSampleAttestation(*nonce, key, {}));
  EXPECT_EQ(token.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(token.status().message(), HasSubstr("expired"));
  // An attested session expires too.
  auto value = client::RunSampleRcar(*client, kResource, {});
  ASSERT_TRUE(value.ok()) << value.status();
  std::this_thread::sleep_for(std::chrono::milliseconds(1300));
  EXPECT_EQ(client->GetResource(kResource, false).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST(E2eDefaultsTest, SampleTeeRefusedUnlessEnabled) {
  auto kbs = StartKbs({.allow_sample = false});
  ASSERT_NE(kbs, nullptr);
  auto nonce = Http(*kbs)->Auth("sample");
  EXPECT_EQ(nonce.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(nonce.status().message(), HasSubstr("--allow-sample-tee"));
  EXPECT_EQ(Grpc(*kbs)->Auth("sample").status().code(), absl::StatusCode::kUnauthenticated);
}

TEST(E2eDefaultsTest, AdminClosedWithoutKey) {
  auto kbs = StartKbs({.admin_key = false});
  ASSERT_NE(kbs, nullptr);
  Answer closed = Raw(*kbs, testing::BuildRequest("POST", "/kbs/v0/resource/a/b/c", "v",
                                                  "Authorization: Bearer x.y.z"));
  EXPECT_EQ(closed.status, 401);
  EXPECT_THAT(closed.detail, HasSubstr("closed"));
}

TEST(E2eDefaultsTest, PlainHttpRefusedOffLoopback) {
  auto r = testing::RunCommand({testing::KbsBinary(), "--http", "0.0.0.0:0", "--no-grpc",
                                "--data-dir", "/nonexistent-not-created"});
  EXPECT_NE(r.exit_code, 0);
  EXPECT_THAT(r.output, HasSubstr("--insecure-http"));
  auto bad_config = testing::RunCommand({testing::KbsBinary(), "--config", "/nonexistent.toml"});
  EXPECT_NE(bad_config.exit_code, 0);
}

TEST(E2eDefaultsTest, OneKbsPerDataDirectory) {
  auto first = StartKbs();
  ASSERT_NE(first, nullptr);
  auto second = testing::RunCommand({testing::KbsBinary(), "--data-dir", first->data_dir(),
                                     "--http", "127.0.0.1:0", "--no-grpc"});
  EXPECT_NE(second.exit_code, 0);
  EXPECT_THAT(second.output, HasSubstr("another process uses this data directory"));
  EXPECT_TRUE(Healthy(*first));
}

TEST(E2eRestartTest, StateSurvivesRestart) {
  auto first = StartKbs();
  ASSERT_NE(first, nullptr);
  Provision(*first);
  auto client = Http(*first);
  RcarOptions options;
  options.use_token = true;
  auto nonce = client->Auth("sample");
  auto key = *client::TeeKeyPair::Generate(TeeKeyType::kEcP256);
  auto token = client->Attest(*client::BuildSampleAttestation(*nonce, key, {}));
  ASSERT_TRUE(token.ok());
  // The token's signing key is rotated out (over gRPC) before the restart:
  // as a retired key it still verifies the token until it expires.
  auto rotated = Grpc(*first)->RotateTokenSigningKey(first->AdminToken());
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  const std::string retired = (*rotated)["retired"].get<std::string>();
  EXPECT_NE((*rotated)["current"], retired);
  EXPECT_EQ(Grpc(*first)->RotateTokenSigningKey("not-a-token").status().code(),
            absl::StatusCode::kUnauthenticated);
  ASSERT_EQ(first->Stop(), 0);

  KbsProcess::Options again;
  again.data_dir = first->data_dir();
  auto second = StartKbs(again);
  ASSERT_NE(second, nullptr);
  auto restarted = Http(*second);
  // Same signing key (the Bearer token still verifies), resource and policy.
  auto request = common::HttpClient::Create(second->http_url());
  auto r = (*request)->Send("GET", absl::StrCat("/kbs/v0/resource/", kResource), "",
                            {{"Authorization", "Bearer " + *token}});
  ASSERT_EQ(r->status, 200) << r->body;
  EXPECT_EQ(*client::DecryptResource(r->body, key), kValue);
  auto keys = restarted->TokenSigningKeys(second->AdminToken());
  ASSERT_TRUE(keys.ok()) << keys.status();
  bool found = false;
  for (const Json& k : (*keys)["keys"]) {
    if (k["kid"] == retired) found = k["state"] == "retired" && k.contains("published_until");
  }
  EXPECT_TRUE(found) << keys->dump();
  EXPECT_EQ(std::filesystem::status(first->data_dir() + "/token-keys.json").permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
  EXPECT_EQ(std::filesystem::status(first->data_dir() + "/master.key").permissions() &
                std::filesystem::perms::all,
            std::filesystem::perms::owner_read | std::filesystem::perms::owner_write);
}

TEST(E2eTlsTest, HttpsAndGrpcTls) {
  auto tls = testing::MakeLoopbackCertificate();
  ASSERT_TRUE(tls.ok()) << tls.status();
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbs_tls_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir);
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/cert.pem", tls->cert_pem, 0644).ok());
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/key.pem", tls->key_pem, 0600).ok());
  auto kbs =
      StartKbs({.extra_args = {"--tls-cert", dir + "/cert.pem", "--tls-key", dir + "/key.pem"}});
  ASSERT_NE(kbs, nullptr);
  std::string https = absl::StrCat("https://127.0.0.1:", kbs->http_port());
  auto client = client::NewHttpKbsClient(https, {.ca_file = dir + "/cert.pem"});
  ASSERT_TRUE(client.ok());
  ASSERT_TRUE((*client)->PutResource(kbs->AdminToken(), kResource, kValue).ok());
  ASSERT_TRUE((*client)->SetPolicy(kbs->AdminToken(), "allow-all").ok());
  auto value = client::RunSampleRcar(**client, kResource, {});
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, kValue);
  // By IP (the certificate has an IP SAN): no dependence on name resolution.
  auto grpc = client::NewGrpcKbsClient(kbs->grpc_address(), dir + "/cert.pem");
  auto grpc_value = client::RunSampleRcar(**grpc, kResource, {});
  ASSERT_TRUE(grpc_value.ok()) << grpc_value.status();
  // A client that does not trust the certificate cannot connect.
  auto untrusted = client::NewHttpKbsClient(https);
  EXPECT_FALSE((*untrusted)->Auth("sample").ok());
  std::filesystem::remove_all(dir);
}

// SEV-SNP through the whole stack: generated evidence signed by a test AMD
// chain whose ARK is configured as a trust anchor.
TEST(E2eSnpTest, SnpAttestationReleasesAndTamperingDoesNot) {
  auto chain = testing::SnpTestChain::Create(verifier::snp::Product::kGenoa);
  ASSERT_TRUE(chain.ok()) << chain.status();
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbs_snp_e2e_" + std::to_string(::getpid()));
  std::filesystem::create_directories(dir + "/Genoa");
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/Genoa/cert_chain.pem", (*chain)->ChainPem()).ok());
  auto kbs = StartKbs({.allow_sample = false,
                       .config_toml = absl::StrCat("[snp]\ncollateral_dir = \"", dir,
                                                   "\"\nkds_url = \"\"\ntrusted_arks = [\"Genoa:",
                                                   (*chain)->ArkFingerprintHex(), "\"]\n")});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);

  const verifier::snp::TcbVersion tcb = testing::PlausibleTcb();
  const std::string chip_id(64, '\x5a');
  auto vcek = (*chain)->IssueVcek({tcb, chip_id});
  ASSERT_TRUE(vcek.ok()) << vcek.status();
  bool tamper = false;
  RcarOptions options;
  options.tee = "snp";
  options.evidence_maker = SnpEvidenceMaker(**chain, tcb, chip_id, *vcek, &tamper);
  for (bool grpc : {false, true}) {
    auto client = grpc ? Grpc(*kbs) : Http(*kbs);
    tamper = false;
    auto value = client::RunSampleRcar(*client, kResource, options);
    ASSERT_TRUE(value.ok()) << value.status() << kbs->Log();
    EXPECT_EQ(*value, kValue);
    // With init-data bound into HOST_DATA.
    options.evidence.init_data_toml = "algorithm = \"sha256\"\n[data]\n\"k\" = \"v\"\n";
    EXPECT_TRUE(client::RunSampleRcar(*client, kResource, options).ok());
    options.evidence.init_data_toml.reset();
    tamper = true;
    auto tampered = client::RunSampleRcar(*client, kResource, options);
    EXPECT_EQ(tampered.status().code(), absl::StatusCode::kUnauthenticated) << tampered.status();
    EXPECT_THAT(tampered.status().message(), HasSubstr("signature does not verify"));
  }
  // The sample TEE stays off on this KBS.
  EXPECT_EQ(Http(*kbs)->Auth("sample").status().code(), absl::StatusCode::kUnauthenticated);
  std::filesystem::remove_all(dir);
}

// A test AMD chain (Genoa) whose VCEK only a fake KDS serves, and only once
// Release() was called: an SNP attestation whose evidence lacks the VCEK
// holds its request in progress until then. KDS sees one fetch however many
// wait (the KBS serializes them).
class HeldKds {
 public:
  static absl::StatusOr<std::unique_ptr<HeldKds>> Create(absl::string_view name, char chip_byte) {
    auto held = std::unique_ptr<HeldKds>(new HeldKds(std::string(64, chip_byte)));
    KBS_ASSIGN_OR_RETURN(held->chain_,
                         testing::SnpTestChain::Create(verifier::snp::Product::kGenoa));
    KBS_ASSIGN_OR_RETURN(held->vcek_, held->chain_->IssueVcek({held->tcb_, held->chip_id_}));
    HeldKds* h = held.get();
    held->kds_.emplace([h](const std::string& target) {
      h->released_.wait();
      if (absl::StrContains(target, "/vcek/v1/Genoa/") && !absl::StrContains(target, "crl")) {
        return testing::FakeResponse{200, h->vcek_, {}};
      }
      return testing::FakeResponse{404, "", {}};
    });
    held->dir_ =
        std::filesystem::temp_directory_path() / absl::StrCat("kbs_", name, "_", ::getpid());
    std::filesystem::create_directories(held->dir_ + "/Genoa");
    KBS_RETURN_IF_ERROR(
        common::WriteFileAtomic(held->dir_ + "/Genoa/cert_chain.pem", held->chain_->ChainPem()));
    return held;
  }
  ~HeldKds() {
    ReleaseAndJoin();
    kds_.reset();
    std::filesystem::remove_all(dir_);
  }

  // The [snp] section of a KBS configuration that fetches from this KDS.
  std::string SnpConfig() const {
    return absl::StrCat("[snp]\ncollateral_dir = \"", dir_, "\"\nkds_url = \"", kds_->url(),
                        "\"\nkds_min_interval = 0\ncollateral_timeout = 60\n",
                        "trusted_arks = [\"Genoa:", chain_->ArkFingerprintHex(), "\"]\n");
  }
  // SNP evidence without the VCEK.
  RcarOptions Options() const {
    RcarOptions options;
    options.tee = "snp";
    options.evidence_maker = SnpEvidenceMaker(*chain_, tcb_, chip_id_, std::nullopt);
    return options;
  }
  int requests() const { return kds_->requests(); }
  // Waits (up to 30 s) for the first fetch; returns how many KDS saw.
  int AwaitFetch() const {
    const absl::Time give_up = absl::Now() + absl::Seconds(30);
    while (requests() == 0 && absl::Now() < give_up) absl::SleepFor(absl::Milliseconds(10));
    return requests();
  }
  void Release() {
    std::lock_guard<std::mutex> lock(mu_);
    if (!release_called_) release_.set_value();
    release_called_ = true;
  }
  // Runs `rcar` on a thread of its own into `*result`, again while the KBS
  // refuses it for having too many requests in progress (the test's own
  // probes may hold the last place just then).
  void StartPod(std::function<absl::StatusOr<std::string>()> rcar,
                absl::StatusOr<std::string>* result) {
    pods_.emplace_back([rcar = std::move(rcar), result] {
      do {
        *result = rcar();
      } while (absl::StrContains(result->status().message(), " in progress; retry later"));
    });
  }
  // Lets KDS answer and waits for the pods: call it before what they
  // reference goes (an absl::Cleanup covers a failed ASSERT).
  void ReleaseAndJoin() {
    Release();
    for (std::thread& t : pods_) t.join();
    pods_.clear();
  }

 private:
  explicit HeldKds(std::string chip_id)
      : tcb_(testing::PlausibleTcb()),
        chip_id_(std::move(chip_id)),
        released_(release_.get_future().share()) {}

  std::unique_ptr<testing::SnpTestChain> chain_;
  const verifier::snp::TcbVersion tcb_;
  const std::string chip_id_;
  std::string vcek_;
  std::mutex mu_;
  bool release_called_ = false;
  std::promise<void> release_;
  std::shared_future<void> released_;
  std::optional<testing::FakeHttpServer> kds_;
  std::string dir_;
  std::vector<std::thread> pods_;
};

// Requests in progress are bounded: with [server] max_requests_in_progress
// handlers waiting (here on a KDS that does not answer yet), further requests
// get 503 with Retry-After at once, the probes are still served, and the
// waiting attestations complete once KDS answers.
TEST(E2eOverloadTest, RequestsBeyondTheLimitGet503AndProbesStillAnswer) {
  auto kds = HeldKds::Create("overload_e2e", '\x3c');
  ASSERT_TRUE(kds.ok()) << kds.status();
  constexpr int kLimit = 16;
  auto kbs = StartKbs({.allow_sample = true,
                       .config_toml = absl::StrCat("[server]\nmax_requests_in_progress = ", kLimit,
                                                   "\n", (*kds)->SnpConfig())});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);

  const RcarOptions options = (*kds)->Options();
  std::vector<absl::StatusOr<std::string>> results(kLimit, absl::UnknownError("not run"));
  absl::Cleanup cleanup = [&] { (*kds)->ReleaseAndJoin(); };
  for (int i = 0; i < kLimit; ++i) {
    (*kds)->StartPod([&] { return client::RunSampleRcar(*Http(*kbs), kResource, options); },
                     &results[i]);
  }
  ASSERT_EQ((*kds)->AwaitFetch(), 1) << kbs->Log();
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  // Once all of them wait on KDS, an auth gets 503 at once.
  std::optional<testing::RawResponse> refused;
  while (!refused.has_value() && absl::Now() < give_up) {
    auto r =
        RawHttp(kbs->http_port(),
                testing::BuildRequest("POST", "/kbs/v0/auth",
                                      R"({"version":"0.4.0","tee":"sample","extra-params":""})",
                                      "Content-Type: application/json"));
    ASSERT_TRUE(r.ok()) << r.status();
    if (r->status == 503) {
      refused = *r;
    } else {
      ASSERT_EQ(r->status, 200) << r->head << r->body;
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  ASSERT_TRUE(refused.has_value()) << "no request was refused" << kbs->Log();
  EXPECT_THAT(refused->head, HasSubstr("Retry-After: 1"));
  EXPECT_THAT(refused->body, HasSubstr("requests in progress"));
  for (const char* probe : {"/healthz", "/readyz", "/metrics"}) {
    auto r = RawHttp(kbs->http_port(), testing::BuildRequest("GET", probe, ""));
    ASSERT_TRUE(r.ok()) << r.status();
    EXPECT_EQ(r->status, 200) << probe << r->body;
  }
  EXPECT_EQ((*kds)->requests(), 1) << "KDS fetches are serialized";

  (*kds)->ReleaseAndJoin();
  for (const auto& value : results) {
    ASSERT_TRUE(value.ok()) << value.status() << kbs->Log();
    EXPECT_EQ(*value, kValue);
  }
  auto client = Http(*kbs);
  EXPECT_TRUE(client->Auth("sample").ok());
}

// gRPC handlers run on fibers as HTTP's do: with one handler thread and
// SNP attestations stalled on KDS, other pods' releases over gRPC still go
// through (a blocked thread would hold them until KDS answered); past
// [server] max_requests_in_progress, calls get RESOURCE_EXHAUSTED at once.
TEST(E2eGrpcFibersTest, StalledAttestationsDoNotHoldOtherReleases) {
  auto kds = HeldKds::Create("grpc_fibers_e2e", '\x4b');
  ASSERT_TRUE(kds.ok()) << kds.status();
  constexpr int kLimit = 16;  // the smallest the configuration takes
  auto kbs = StartKbs(
      {.allow_sample = true,
       .config_toml = absl::StrCat("[server]\nthreads = 1\nmax_requests_in_progress = ", kLimit,
                                   "\n", (*kds)->SnpConfig())});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);

  const RcarOptions snp = (*kds)->Options();
  constexpr int kStalled = kLimit - 1;  // and one more below
  std::vector<absl::StatusOr<std::string>> results(kLimit, absl::UnknownError("not run"));
  std::future<absl::StatusOr<std::string>> other;
  absl::Cleanup cleanup = [&] {
    (*kds)->ReleaseAndJoin();
    if (other.valid()) other.wait();
  };
  for (int i = 0; i < kStalled; ++i) {
    (*kds)->StartPod([&] { return client::RunSampleRcar(*Grpc(*kbs), kResource, snp); },
                     &results[i]);
  }
  ASSERT_EQ((*kds)->AwaitFetch(), 1) << kbs->Log();
  // A sample-TEE pod: Auth, Attest (a durable receipt) and GetResource.
  other = std::async(std::launch::async,
                     [&] { return client::RunSampleRcar(*Grpc(*kbs), kResource, {}); });
  ASSERT_EQ(other.wait_for(std::chrono::seconds(30)), std::future_status::ready)
      << "a release waited for the stalled attestations" << kbs->Log();
  auto value = other.get();
  ASSERT_TRUE(value.ok()) << value.status();
  EXPECT_EQ(*value, kValue);

  // One more stalled attestation fills the limit: then an Attest is
  // refused at once (Auth, which never waits, is still served).
  (*kds)->StartPod([&] { return client::RunSampleRcar(*Grpc(*kbs), kResource, snp); },
                   &results[kStalled]);
  absl::Status refused;
  const absl::Time give_up = absl::Now() + absl::Seconds(30);
  while (refused.ok() && absl::Now() < give_up) {
    auto attempt = client::RunSampleRcar(*Grpc(*kbs), kResource, {});
    if (!attempt.ok()) {
      refused = attempt.status();
    } else {
      absl::SleepFor(absl::Milliseconds(20));
    }
  }
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted) << refused << kbs->Log();
  EXPECT_THAT(refused.message(), HasSubstr("16 calls in progress"));
  EXPECT_EQ((*kds)->requests(), 1) << "KDS fetches are serialized";

  (*kds)->ReleaseAndJoin();
  for (const auto& r : results) {
    ASSERT_TRUE(r.ok()) << r.status() << kbs->Log();
    EXPECT_EQ(*r, kValue);
  }
}

// Resource versions and generated keys, over HTTP and gRPC: releases get the
// latest enabled version (named in a header and in the receipt), a client
// may name a version, disabled and destroyed versions are not released,
// and a KEK rotation keeps every value readable.
TEST(E2eKeysTest, VersionsRotationAndGeneratedKeys) {
  auto kbs = StartKbs({});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);
  auto admin = Http(*kbs);
  const std::string token = kbs->AdminToken();
  ASSERT_TRUE(admin->PutResource(token, kResource, "second value").ok());
  for (bool grpc : {false, true}) {
    auto client = grpc ? Grpc(*kbs) : Http(*kbs);
    RcarOptions options;
    int64_t released = 0;
    options.released_version = &released;
    auto latest = client::RunSampleRcar(*client, kResource, options);
    ASSERT_TRUE(latest.ok()) << latest.status();
    EXPECT_EQ(*latest, "second value");
    EXPECT_EQ(released, 2);
    options.version = 1;
    auto first = client::RunSampleRcar(*client, kResource, options);
    ASSERT_TRUE(first.ok()) << first.status();
    EXPECT_EQ(*first, kValue);
    EXPECT_EQ(released, 1);
    options.version = 7;
    EXPECT_EQ(client::RunSampleRcar(*client, kResource, options).status().code(),
              absl::StatusCode::kNotFound);
  }
  // Disable version 2: releases fall back to 1; re-enable; destroy 1.
  auto disabled = admin->SetResourceVersionState(token, kResource, 2, "disabled");
  ASSERT_TRUE(disabled.ok()) << disabled.status();
  EXPECT_EQ((*disabled)["state"], "disabled");
  RcarOptions options;
  int64_t released = 0;
  options.released_version = &released;
  EXPECT_EQ(*client::RunSampleRcar(*Http(*kbs), kResource, options), kValue);
  options.version = 2;
  EXPECT_EQ(client::RunSampleRcar(*Http(*kbs), kResource, options).status().code(),
            absl::StatusCode::kNotFound);
  options.version = 0;
  ASSERT_TRUE(admin->SetResourceVersionState(token, kResource, 2, "enabled").ok());
  ASSERT_TRUE(admin->SetResourceVersionState(token, kResource, 1, "destroyed").ok());
  auto revived = admin->SetResourceVersionState(token, kResource, 1, "enabled");
  ASSERT_FALSE(revived.ok());
  EXPECT_THAT(revived.status().message(), HasSubstr("destroyed"));
  options.version = 1;
  EXPECT_EQ(client::RunSampleRcar(*Http(*kbs), kResource, options).status().code(),
            absl::StatusCode::kNotFound);
  auto versions = admin->ResourceVersions(token, kResource);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ((*versions)["versions"][0]["state"], "destroyed");
  EXPECT_EQ((*versions)["versions"][1]["state"], "enabled");

  // A generated key: nobody sees it but an attested TEE; rotation adds a
  // version and both stay releasable.
  auto created = Grpc(*kbs)->GenerateKey(token, "models/mistral/key", "aes256", false);
  ASSERT_TRUE(created.ok()) << created.status();
  EXPECT_EQ((*created)["version"], 1);
  EXPECT_EQ(admin->GenerateKey(token, "models/mistral/key", "aes256", false).status().code(),
            absl::StatusCode::kAlreadyExists);
  ASSERT_TRUE(admin->GenerateKey(token, "models/mistral/key", "ec-p256", true).ok());
  options.version = 1;
  auto v1 = client::RunSampleRcar(*Http(*kbs), "models/mistral/key", options);
  ASSERT_TRUE(v1.ok()) << v1.status();
  EXPECT_EQ(v1->size(), 32u);
  options.version = 0;
  auto v2 = client::RunSampleRcar(*Http(*kbs), "models/mistral/key", options);
  ASSERT_TRUE(v2.ok());
  EXPECT_THAT(*v2, HasSubstr("BEGIN PRIVATE KEY"));
  EXPECT_EQ(released, 2);

  // KEK rotation: every data key re-wrapped, values unchanged.
  auto rotated = admin->RotateKek(token);
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ((*rotated)["kek"], "local:2");
  EXPECT_EQ((*rotated)["rewrapped"], 3);  // kResource v2 and the generated two versions
  options.version = 1;
  EXPECT_EQ(*client::RunSampleRcar(*Http(*kbs), "models/mistral/key", options), *v1);

  // The receipts name the version released.
  auto list = testing::RunCommand({testing::KbsctlBinary(), "resource", "versions", kResource,
                                   "--url", kbs->http_url(), "--admin-key", kbs->admin_key_file()});
  EXPECT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr("\"destroyed\""));
}

// kbsctl model seal / unseal: a sealed file names its key version, so a
// later rotation does not make it unreadable; a tampered file writes nothing.
TEST(E2eModelTest, SealUnsealThroughTheKbs) {
  auto kbs = StartKbs({});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbs_model_e2e_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  std::string weights(3 * 4096 + 17, '\0');
  for (size_t i = 0; i < weights.size(); ++i) weights[i] = static_cast<char>(i * 131 + 7);
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/w.bin", weights).ok());
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), testing::KbsctlBinary());
    for (const std::string& a : {std::string("--url"), kbs->http_url(), std::string("--admin-key"),
                                 kbs->admin_key_file()}) {
      args.push_back(a);
    }
    return testing::RunCommand(args);
  };
  auto sealed = run({"model", "seal", "--in", dir + "/w.bin", "--out", dir + "/w.sealed",
                     "--resource", "models/weights/key", "--chunk-size", "4096"});
  ASSERT_EQ(sealed.exit_code, 0) << sealed.output;
  EXPECT_THAT(sealed.output, HasSubstr("\"key_version\":1"));
  // A second model sealed later under the same resource makes version 2.
  ASSERT_EQ(run({"model", "seal", "--in", dir + "/w.bin", "--out", dir + "/w2.sealed", "--resource",
                 "models/weights/key"})
                .exit_code,
            0);
  auto unsealed = run({"model", "unseal", "--in", dir + "/w.sealed", "--out", dir + "/w.out"});
  ASSERT_EQ(unsealed.exit_code, 0) << unsealed.output;
  EXPECT_EQ(*common::ReadFile(dir + "/w.out"), weights);
  // Tampered: a clear error and no file under the final name.
  std::string bytes = *common::ReadFile(dir + "/w.sealed");
  bytes[bytes.size() / 2] ^= 1;
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/bad.sealed", bytes).ok());
  auto bad = run({"model", "unseal", "--in", dir + "/bad.sealed", "--out", dir + "/bad.out"});
  EXPECT_NE(bad.exit_code, 0);
  EXPECT_THAT(bad.output, HasSubstr("failed authentication"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.out"));
  EXPECT_FALSE(std::filesystem::exists(dir + "/bad.out.partial"));
  // Its key version disabled: the KBS does not release it, nothing written.
  ASSERT_TRUE(Http(*kbs)
                  ->SetResourceVersionState(kbs->AdminToken(), "models/weights/key", 1, "disabled")
                  .ok());
  auto refused = run({"model", "unseal", "--in", dir + "/w.sealed", "--out", dir + "/w2.out"});
  EXPECT_NE(refused.exit_code, 0);
  EXPECT_FALSE(std::filesystem::exists(dir + "/w2.out"));
  std::filesystem::remove_all(dir);
}

// The KEK in an HSM (SoftHSM2 through PKCS#11): values are released through
// it, the database holds no plaintext, an HSM that goes away gives 503 and
// no release, and the KBS recovers by itself when it returns.
TEST(E2eHsmTest, Pkcs11KekReleasesFailsClosedAndRecovers) {
  const std::string module = "/usr/lib/softhsm/libsofthsm2.so";
  if (!std::filesystem::exists(module) || !std::filesystem::exists("/usr/bin/softhsm2-util")) {
    GTEST_SKIP() << "SoftHSM2 is not installed (scripts/install-deps.sh test installs it)";
  }
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbs_hsm_e2e_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  // A throwaway token, as scripts/softhsm_token.sh makes one.
  std::filesystem::create_directories(dir + "/tokens");
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/softhsm2.conf",
                                      absl::StrCat("directories.tokendir = ", dir,
                                                   "/tokens\nobjectstore.backend = file\n"),
                                      0600)
                  .ok());
  ::setenv("SOFTHSM2_CONF", (dir + "/softhsm2.conf").c_str(), 1);
  auto made = testing::RunCommand({"/usr/bin/softhsm2-util", "--init-token", "--free", "--label",
                                   "kbs-e2e", "--so-pin", "12345678", "--pin", "1234"});
  ASSERT_EQ(made.exit_code, 0) << made.output;
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/pin", "1234\n", 0600).ok());
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/wrong-pin", "wrong-pin-86420\n", 0600).ok());
  auto keygen = testing::RunCommand(
      {testing::KbsctlBinary(), "admin", "keygen", "--out-dir", dir + "/auditor"});
  ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
  auto options_for = [&](const std::string& pin_file, const std::string& data_dir) {
    return KbsProcess::Options{
        .config_toml =
            absl::StrCat("[keystore]\nbackend = \"pkcs11\"\npkcs11_module = \"", module,
                         "\"\npkcs11_token = \"kbs-e2e\"\npkcs11_pin_file = \"", pin_file, "\"\n"),
        .extra_args = {"--auditor-public-key", dir + "/auditor/admin.pub"},
        .data_dir = data_dir};
  };
  // The newest failed receipt, read back as an auditor does.
  auto last_failure = [&](const KbsProcess& k) -> std::string {
    auto list = testing::RunCommand({testing::KbsctlBinary(), "--url", k.http_url(), "audit",
                                     "--auditor-key", dir + "/auditor/admin.key", "list",
                                     "--decision", "failed"});
    EXPECT_EQ(list.exit_code, 0) << list.output;
    std::vector<std::string> lines = absl::StrSplit(list.output, '\n', absl::SkipEmpty());
    return lines.empty() ? "" : lines.back();
  };
  // A data directory of our own: each restart below reuses it.
  const std::string data_dir = dir + "/data";
  auto kbs = StartKbs(options_for(dir + "/pin", data_dir));
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);
  RcarOptions options;
  auto value = client::RunSampleRcar(*Http(*kbs), kResource, options);
  ASSERT_TRUE(value.ok()) << value.status() << kbs->Log();
  EXPECT_EQ(*value, kValue);
  auto versions = Http(*kbs)->ResourceVersions(kbs->AdminToken(), kResource);
  ASSERT_TRUE(versions.ok());
  EXPECT_EQ((*versions)["versions"][0]["kek"], "pkcs11:kbs-kek.1");

  // The HSM goes away: 503, nothing released.
  std::filesystem::rename(dir + "/tokens", dir + "/tokens.away");
  auto gone = client::RunSampleRcar(*Http(*kbs), kResource, options);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kUnavailable) << gone.status();
  // Not ready (live all the same), and the metric says why.
  // Status and body of a GET (0 and "" when the request itself failed).
  auto get = [&](const KbsProcess& k, const std::string& path) {
    auto r = testing::RawHttp(k.http_port(), testing::BuildRequest("GET", path, "", ""));
    return r.ok() ? *std::move(r) : testing::RawResponse{};
  };
  auto ready = get(*kbs, "/readyz");
  EXPECT_EQ(ready.status, 503);
  EXPECT_THAT(ready.body, HasSubstr("key-encryption key: HSM unavailable"));
  EXPECT_EQ(get(*kbs, "/healthz").status, 200);
  EXPECT_THAT(get(*kbs, "/metrics").body, HasSubstr("\nkbs_kek_available 0\n"));
  std::string failed = last_failure(*kbs);
  EXPECT_THAT(failed, HasSubstr("HSM unavailable")) << failed;
  EXPECT_THAT(failed, HasSubstr(absl::StrCat("\"resource\":\"", kResource, "\"")));
  // It comes back: the KBS reconnects by itself (within its backoff).
  std::filesystem::rename(dir + "/tokens.away", dir + "/tokens");
  absl::StatusOr<std::string> back = absl::UnknownError("not tried");
  for (int i = 0; i < 40 && !back.ok(); ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    back = client::RunSampleRcar(*Http(*kbs), kResource, options);
  }
  ASSERT_TRUE(back.ok()) << back.status();
  EXPECT_EQ(*back, kValue);
  EXPECT_EQ(get(*kbs, "/readyz").status, 200);
  EXPECT_THAT(get(*kbs, "/metrics").body, HasSubstr("\nkbs_kek_available 1\n"));
  // KEK rotation inside the HSM; the value is unchanged.
  auto rotated = Http(*kbs)->RotateKek(kbs->AdminToken());
  ASSERT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ((*rotated)["kek"], "pkcs11:kbs-kek.2");
  EXPECT_EQ(*client::RunSampleRcar(*Http(*kbs), kResource, options), kValue);

  // The HSM is away when the KBS boots: it starts anyway, releases nothing
  // (503, failed receipt) and recovers by itself when the token appears.
  ASSERT_EQ(kbs->Stop(), 0);
  std::filesystem::rename(dir + "/tokens", dir + "/tokens.away");
  kbs = StartKbs(options_for(dir + "/pin", data_dir));
  ASSERT_NE(kbs, nullptr);
  gone = client::RunSampleRcar(*Http(*kbs), kResource, options);
  EXPECT_EQ(gone.status().code(), absl::StatusCode::kUnavailable) << gone.status();
  EXPECT_THAT(last_failure(*kbs), HasSubstr("HSM unavailable"));
  EXPECT_EQ(get(*kbs, "/readyz").status, 503);
  // gRPC health says the same (updated every 2 s).
  auto wait_health = [&](HealthStatus::ServingStatus want) {
    for (int i = 0; i < 40 && GrpcHealth(*kbs) != want; ++i) {
      absl::SleepFor(absl::Milliseconds(250));
    }
    return GrpcHealth(*kbs);
  };
  EXPECT_EQ(wait_health(HealthStatus::NOT_SERVING), HealthStatus::NOT_SERVING);
  std::filesystem::rename(dir + "/tokens.away", dir + "/tokens");
  // With no release traffic at all, the KBS's own probe reconnects and
  // readiness returns (Kubernetes sends no traffic to a pod that is not
  // ready).
  int ready_status = 0;
  for (int i = 0; i < 80 && ready_status != 200; ++i) {
    absl::SleepFor(absl::Milliseconds(250));
    ready_status = get(*kbs, "/readyz").status;
  }
  ASSERT_EQ(ready_status, 200) << kbs->Log();
  EXPECT_EQ(wait_health(HealthStatus::SERVING), HealthStatus::SERVING);
  back = client::RunSampleRcar(*Http(*kbs), kResource, options);
  ASSERT_TRUE(back.ok()) << back.status() << kbs->Log();
  EXPECT_EQ(*back, kValue);

  // A PIN the token refuses: the KBS starts, releases nothing (503, failed
  // receipt naming the refusal, never the PIN) and does not retry the PIN.
  ASSERT_EQ(kbs->Stop(), 0);
  kbs = StartKbs(options_for(dir + "/wrong-pin", data_dir));
  ASSERT_NE(kbs, nullptr);
  for (int i = 0; i < 2; ++i) {
    auto refused = client::RunSampleRcar(*Http(*kbs), kResource, options);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  }
  failed = last_failure(*kbs);
  EXPECT_THAT(failed, HasSubstr("rejected the PIN")) << failed;
  EXPECT_THAT(get(*kbs, "/readyz").body, HasSubstr("rejected the PIN"));
  EXPECT_THAT(failed, Not(HasSubstr("wrong-pin-86420")));
  EXPECT_THAT(kbs->Log(), Not(HasSubstr("wrong-pin-86420")));
  EXPECT_EQ(Http(*kbs)->PutResource(kbs->AdminToken(), "other/new/key", "v").status().code(),
            absl::StatusCode::kUnavailable);
  ASSERT_EQ(kbs->Stop(), 0);
  kbs = StartKbs(options_for(dir + "/pin", data_dir));
  ASSERT_NE(kbs, nullptr);
  auto fixed = client::RunSampleRcar(*Http(*kbs), kResource, options);
  ASSERT_TRUE(fixed.ok()) << fixed.status();
  EXPECT_EQ(*fixed, kValue);
  ::unsetenv("SOFTHSM2_CONF");
  std::filesystem::remove_all(dir);
}

// Intel TDX through the whole stack: quotes from a test PKI whose root is
// configured as a trust anchor, collateral from the offline directory.
TEST(E2eTdxTest, TdxAttestationReleasesAndTamperingDoesNot) {
  auto pki = testing::DcapTestPki::Create();
  ASSERT_TRUE(pki.ok()) << pki.status();
  ASSERT_TRUE((*pki)->IssuePck(testing::PckOptions{}).ok());
  const absl::Time now = absl::Now();
  const absl::Time issued = now - absl::Hours(24), next = now + absl::Hours(24 * 30);
  auto pck_crl = (*pki)->MakePckCrl(true, {}, issued, next);
  auto root_crl = (*pki)->MakeRootCrl({}, issued, next);
  ASSERT_TRUE(pck_crl.ok() && root_crl.ok());
  auto bundle = (*pki)->CollateralBundle(
      testing::DcapTestPki::DefaultTdxTcbInfo(issued, next),
      testing::DcapTestPki::DefaultQeIdentity(true, issued, next), true, *pck_crl, *root_crl);
  ASSERT_TRUE(bundle.ok()) << bundle.status();
  auto collateral = verifier::dcap::ParseCollateralBundle(common::DumpJson(*bundle));
  ASSERT_TRUE(collateral.ok()) << collateral.status();
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbs_tdx_e2e_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  verifier::dcap::CollateralRequest request;
  request.fmspc = *common::HexDecode("00806f050000");
  ASSERT_TRUE(verifier::dcap::DirectoryCollateral(dir).Store(request, *collateral).ok());
  auto kbs = StartKbs({.allow_sample = false,
                       .config_toml = absl::StrCat("[dcap]\ncollateral_dir = \"", dir,
                                                   "\"\npcs_url = \"\"\ntrusted_roots = [\"",
                                                   (*pki)->RootFingerprintHex(), "\"]\n")});
  ASSERT_NE(kbs, nullptr);
  Provision(*kbs);

  bool tamper = false;
  RcarOptions options;
  options.tee = "tdx";
  options.evidence_maker =
      [&](absl::string_view report_data,
          const std::optional<std::string>& init_digest) -> absl::StatusOr<Json> {
    testing::TdReportFields td;
    td.report_data = std::string(report_data);
    td.mr_config_id = init_digest.value_or("");
    auto quote = (*pki)->MakeQuote(testing::QuoteKind::kTdxV4, td, testing::EnclaveReportFields{},
                                   testing::QeFields());
    if (!quote.ok()) return quote.status();
    if (tamper) (*quote)[48 + 136] ^= 1;  // MRTD
    return testing::DcapTestPki::TdxEvidenceJson(*quote);
  };
  for (bool grpc : {false, true}) {
    auto client = grpc ? Grpc(*kbs) : Http(*kbs);
    tamper = false;
    auto value = client::RunSampleRcar(*client, kResource, options);
    ASSERT_TRUE(value.ok()) << value.status() << kbs->Log();
    EXPECT_EQ(*value, kValue);
    options.evidence.init_data_toml = "algorithm = \"sha384\"\n[data]\n\"k\" = \"v\"\n";
    EXPECT_TRUE(client::RunSampleRcar(*client, kResource, options).ok());
    options.evidence.init_data_toml.reset();
    tamper = true;
    auto tampered = client::RunSampleRcar(*client, kResource, options);
    EXPECT_EQ(tampered.status().code(), absl::StatusCode::kUnauthenticated) << tampered.status();
    EXPECT_THAT(tampered.status().message(), HasSubstr("quote signature does not verify"));
  }

  // kbsctl evidence verify, offline, on the same kind of quote.
  testing::TdReportFields td;
  auto quote = (*pki)->MakeQuote(testing::QuoteKind::kTdxV5Td15, td, testing::EnclaveReportFields{},
                                 testing::QeFields());
  ASSERT_TRUE(quote.ok());
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/quote.dat", *quote).ok());
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/bundle.json", common::DumpJson(*bundle)).ok());
  auto verify = testing::RunCommand(
      {testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx", "--quote", dir + "/quote.dat",
       "--collateral", dir + "/bundle.json", "--trusted-root", (*pki)->RootFingerprintHex()});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("\"tcb_status\": \"UpToDate\""));
  auto by_dir = testing::RunCommand({testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx",
                                     "--quote", dir + "/quote.dat", "--collateral-dir", dir,
                                     "--trusted-root", (*pki)->RootFingerprintHex()});
  EXPECT_EQ(by_dir.exit_code, 0) << by_dir.output;
  std::string bad = *quote;
  bad[60] ^= 1;
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/bad.dat", bad).ok());
  auto refused = testing::RunCommand(
      {testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx", "--quote", dir + "/bad.dat",
       "--collateral", dir + "/bundle.json", "--trusted-root", (*pki)->RootFingerprintHex()});
  EXPECT_EQ(refused.exit_code, 1) << refused.output;
  EXPECT_THAT(refused.output, HasSubstr("quote signature does not verify"));
  // Without the test root pinned, Intel's root is the only anchor.
  auto unpinned =
      testing::RunCommand({testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx", "--quote",
                           dir + "/quote.dat", "--collateral", dir + "/bundle.json"});
  EXPECT_EQ(unpinned.exit_code, 1) << unpinned.output;
  EXPECT_THAT(unpinned.output, HasSubstr("not a pinned Intel SGX root"));
  std::filesystem::remove_all(dir);
}

// kbsctl evidence verify on real Intel quotes, at their documented times.
TEST(E2eTdxTest, KbsctlVerifiesRealIntelQuotes) {
  const std::string data = testing::TestDataDir();
  if (!std::filesystem::exists(data + "/tdx")) {
    GTEST_SKIP() << "real Intel quotes not found: set KBS_TESTDATA to shared/testdata";
  }
  auto tdx = testing::RunCommand({testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx",
                                  "--quote", data + "/tdx/phala-tdx-v4-quote.bin", "--collateral",
                                  data + "/tdx/phala-tdx-v4-collateral.json", "--at",
                                  "2025-07-01T00:00:00Z"});
  EXPECT_EQ(tdx.exit_code, 0) << tdx.output;
  EXPECT_THAT(tdx.output, HasSubstr("\"tcb_status\": \"UpToDate\""));
  auto sgx = testing::RunCommand({testing::KbsctlBinary(), "evidence", "verify", "--tee", "sgx",
                                  "--quote", data + "/sgx/phala-sgx-v3-quote.bin", "--collateral",
                                  data + "/sgx/phala-sgx-v3-collateral.json", "--at",
                                  "2025-07-01T00:00:00Z"});
  EXPECT_EQ(sgx.exit_code, 0) << sgx.output;
  EXPECT_THAT(sgx.output, HasSubstr("ConfigurationAndSWHardeningNeeded"));
  EXPECT_THAT(sgx.output, HasSubstr("INTEL-SA-00615"));
  auto outdated = testing::RunCommand(
      {testing::KbsctlBinary(), "evidence", "verify", "--tee", "tdx", "--quote",
       data + "/tdx/phala-tdx-v5-outdated-quote.bin", "--collateral",
       data + "/tdx/phala-tdx-v5-outdated-collateral.json", "--at", "2026-03-01T00:00:00Z"});
  EXPECT_EQ(outdated.exit_code, 1) << outdated.output;
  EXPECT_THAT(outdated.output, HasSubstr("TCB level not supported"));
}

// The CLI forms operators and the acceptance checks use.
TEST(E2eCliTest, KbsctlCommands) {
  std::string dir =
      std::filesystem::temp_directory_path() / ("kbsctl_" + std::to_string(::getpid()));
  std::filesystem::remove_all(dir);
  auto keygen = testing::RunCommand({testing::KbsctlBinary(), "admin", "keygen", "--out-dir", dir});
  ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
  auto kbs =
      StartKbs({.admin_key = false, .extra_args = {"--admin-public-key", dir + "/admin.pub"}});
  ASSERT_NE(kbs, nullptr);
  const std::string url = kbs->http_url();
  const std::string key = dir + "/admin.key";
  ASSERT_TRUE(common::WriteFileAtomic(dir + "/value", kValue).ok());
  auto run = [&](std::vector<std::string> args) {
    args.insert(args.begin(), testing::KbsctlBinary());
    return testing::RunCommand(args);
  };
  // Global options after the subcommand...
  auto put = run(
      {"resource", "put", kResource, "--file", dir + "/value", "--url", url, "--admin-key", key});
  ASSERT_EQ(put.exit_code, 0) << put.output;
  // ...and before it.
  auto list = run({"--url", url, "--admin-key", key, "resource", "list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  EXPECT_THAT(list.output, HasSubstr(kResource));
  EXPECT_THAT(list.output, ::testing::Not(HasSubstr(kValue)));
  EXPECT_EQ(
      run({"policy", "set", "--preset", "allow-all", "--url", url, "--admin-key", key}).exit_code,
      0);
  for (const char* type : {"ec-p256", "ec-p521", "rsa"}) {
    std::string out = dir + "/out-" + type;
    auto attest = run({"attest", "--url", url, "--tee", "sample", "--key-type", type, "--get",
                       kResource, "--out", out});
    ASSERT_EQ(attest.exit_code, 0) << attest.output;
    EXPECT_EQ(*common::ReadFile(out), kValue);
  }
  auto grpc = run({"attest", "--url", kbs->grpc_address(), "--protocol", "grpc", "--get", kResource,
                   "--out", dir + "/out-grpc"});
  ASSERT_EQ(grpc.exit_code, 0) << grpc.output;
  auto missing =
      run({"attest", "--url", url, "--tee", "sample", "--get", "a/b/none", "--out", dir + "/none"});
  EXPECT_NE(missing.exit_code, 0);
  EXPECT_THAT(missing.output, HasSubstr("not found"));
  auto del = run({"resource", "delete", kResource, "--url", url, "--admin-key", key});
  EXPECT_EQ(del.exit_code, 0) << del.output;
  auto no_key = run({"resource", "list", "--url", url});
  EXPECT_NE(no_key.exit_code, 0);
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kbs
