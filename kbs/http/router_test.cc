#include "kbs/http/router.h"

#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/client/sample_attester.h"
#include "kbs/http/request_parser.h"
#include "tests/testing/in_process_kbs.h"

namespace kbs::http {
namespace {

using common::Json;
using ::testing::HasSubstr;
using ::testing::StartsWith;

class RouterTest : public ::testing::Test {
 protected:
  RouterTest()
      : kbs_(testing::InProcessKbs::Create()),
        router_(kbs_->broker(), kbs_->sessions(), &metrics_) {}

  HttpResponse Call(std::string method, std::string target, std::string body = "",
                    std::vector<std::pair<std::string, std::string>> headers = {}) {
    HttpRequest req;
    req.method = std::move(method);
    req.target = std::move(target);
    req.body = std::move(body);
    req.headers = std::move(headers);
    return router_.Handle(req);
  }

  static std::string ErrorType(const HttpResponse& r) {
    return Json::parse(r.body)["type"].get<std::string>();
  }

  std::unique_ptr<testing::InProcessKbs> kbs_;
  Metrics metrics_;
  Router router_;
};

TEST_F(RouterTest, RcarOverRoutes) {
  std::string admin = "Bearer " + kbs_->AdminToken();
  ASSERT_EQ(
      Call("POST", "/kbs/v0/resource/repo/key/tag", "secret", {{"authorization", admin}}).status,
      200);
  std::string policy = common::Base64UrlEncode(std::string(R"({"preset":"allow-all"})"));
  ASSERT_EQ(Call("POST", "/kbs/v0/resource-policy", R"({"policy":")" + policy + R"("})",
                 {{"authorization", admin}})
                .status,
            200);

  HttpResponse auth = Call("POST", "/kbs/v0/auth", client::AuthRequestJson("sample"));
  ASSERT_EQ(auth.status, 200) << auth.body;
  Json challenge = Json::parse(auth.body);
  EXPECT_EQ(challenge["extra-params"], "");
  ASSERT_EQ(auth.headers.size(), 1u);
  EXPECT_EQ(auth.headers[0].first, "Set-Cookie");
  const std::string& cookie = auth.headers[0].second;
  EXPECT_THAT(cookie, StartsWith("kbs-session-id="));
  EXPECT_THAT(cookie, HasSubstr("; Expires="));
  EXPECT_THAT(cookie, HasSubstr(" GMT"));
  EXPECT_THAT(cookie, ::testing::Not(HasSubstr("Path")));
  EXPECT_THAT(cookie, ::testing::Not(HasSubstr("Secure")));
  std::string session = cookie.substr(0, cookie.find(';'));

  auto key = *client::TeeKeyPair::Generate(client::TeeKeyType::kEcP256);
  auto attestation =
      *client::BuildSampleAttestation(challenge["nonce"].get<std::string>(), key, {});
  HttpResponse attest = Call("POST", "/kbs/v0/attest", client::AttestRequestJson(attestation),
                             {{"cookie", "other=1; " + session}});
  ASSERT_EQ(attest.status, 200) << attest.body;
  std::string token = Json::parse(attest.body)["token"].get<std::string>();
  EXPECT_EQ(attest.headers[0].second, cookie);  // same cookie, same expiry

  HttpResponse by_cookie = Call("GET", "/kbs/v0/resource/repo/key/tag", "", {{"cookie", session}});
  ASSERT_EQ(by_cookie.status, 200) << by_cookie.body;
  EXPECT_EQ(*client::DecryptResource(by_cookie.body, key), "secret");
  HttpResponse by_bearer =
      Call("GET", "/kbs/v0/resource/repo/key/tag?x=1", "", {{"authorization", "bearer " + token}});
  ASSERT_EQ(by_bearer.status, 200) << by_bearer.body;
  EXPECT_EQ(*client::DecryptResource(by_bearer.body, key), "secret");
}

TEST_F(RouterTest, ErrorsAreJsonWithReferenceVariants) {
  const std::string prefix = "https://github.com/confidential-containers/kbs/errors/";
  HttpResponse bad_json = Call("POST", "/kbs/v0/auth", "{\"version\":");
  EXPECT_EQ(bad_json.status, 400);
  EXPECT_EQ(ErrorType(bad_json), prefix + "SerdeError");
  EXPECT_EQ(bad_json.content_type, "application/json");

  HttpResponse version =
      Call("POST", "/kbs/v0/auth", R"({"version":"0.1.0","tee":"sample","extra-params":""})");
  EXPECT_EQ(version.status, 401);
  EXPECT_EQ(ErrorType(version), prefix + "AttestationError");
  EXPECT_THAT(Json::parse(version.body)["detail"].get<std::string>(),
              HasSubstr("KBS Client Protocol Version Mismatch"));

  EXPECT_EQ(ErrorType(Call("GET", "/kbs/v0/auth")), prefix + "PluginNotFound");
  EXPECT_EQ(Call("GET", "/kbs/v0/nebula-ca/credential").status, 404);
  EXPECT_EQ(Call("GET", "/nothing").status, 404);
  HttpResponse no_token = Call("GET", "/kbs/v0/resource/a/b/c");
  EXPECT_EQ(no_token.status, 401);
  EXPECT_EQ(ErrorType(no_token), prefix + "TokenNotFound");
  HttpResponse admin = Call("POST", "/kbs/v0/resource/a/b/c", "v");
  EXPECT_EQ(admin.status, 401);
  EXPECT_EQ(ErrorType(admin), prefix + "AdminAuthAccess");
  HttpResponse no_cookie = Call("POST", "/kbs/v0/attest", "{}");
  EXPECT_EQ(no_cookie.status, 400);  // malformed body first

  std::string admin_header = "Bearer " + kbs_->AdminToken();
  HttpResponse padded = Call("POST", "/kbs/v0/resource-policy", R"({"policy":"YWxsb3ctYWxs="})",
                             {{"authorization", admin_header}});
  EXPECT_EQ(padded.status, 400);
  EXPECT_EQ(ErrorType(padded), prefix + "ParsePolicyError");
  std::string rego = common::Base64UrlEncode(std::string("package policy\ndefault allow := true"));
  HttpResponse rego_policy =
      Call("POST", "/kbs/v0/resource-policy", R"({"policy":")" + rego + R"("})",
           {{"authorization", admin_header}});
  EXPECT_EQ(rego_policy.status, 400);
  EXPECT_THAT(rego_policy.body, HasSubstr("Rego"));
}

TEST_F(RouterTest, WellKnownHealthAndMetrics) {
  HttpResponse jwks = Call("GET", "/.well-known/jwks.json");
  ASSERT_EQ(jwks.status, 200);
  EXPECT_EQ(Json::parse(jwks.body)["keys"][0]["alg"], "ES256");
  EXPECT_EQ(Call("GET", "/healthz").status, 200);
  Call("POST", "/kbs/v0/auth", client::AuthRequestJson("sample"));
  HttpResponse metrics = Call("GET", "/metrics");
  EXPECT_EQ(metrics.status, 200);
  EXPECT_THAT(metrics.body, HasSubstr("kbs_http_requests_total{route=\"auth\",code=\"200\"} 1"));
  EXPECT_THAT(metrics.body, HasSubstr("kbs_sessions_live 1"));
  EXPECT_EQ(Call("POST", "/metrics").status, 404);
}

TEST(MetricsTest, GrpcCallsByMethodAndCode) {
  Metrics metrics;
  metrics.RecordGrpc(GrpcMethod::kAttest, 0, absl::Milliseconds(3));
  metrics.RecordGrpc(GrpcMethod::kAttest, 16, absl::Milliseconds(30));
  metrics.RecordGrpc(GrpcMethod::kAdmin, 99, absl::ZeroDuration());  // out of range: UNKNOWN
  const std::string out = metrics.Render(0);
  EXPECT_THAT(out, HasSubstr("kbs_grpc_requests_total{method=\"Attest\",code=\"OK\"} 1\n"));
  EXPECT_THAT(out,
              HasSubstr("kbs_grpc_requests_total{method=\"Attest\",code=\"UNAUTHENTICATED\"} 1\n"));
  EXPECT_THAT(out, HasSubstr("kbs_grpc_requests_total{method=\"Admin\",code=\"UNKNOWN\"} 1\n"));
  EXPECT_THAT(
      out,
      HasSubstr("kbs_grpc_request_duration_seconds_bucket{method=\"Attest\",le=\"0.005\"} 1\n"));
  EXPECT_THAT(
      out,
      HasSubstr("kbs_grpc_request_duration_seconds_bucket{method=\"Attest\",le=\"0.05\"} 2\n"));
  EXPECT_THAT(out,
              HasSubstr("kbs_grpc_request_duration_seconds_sum{method=\"Attest\"} 0.033000\n"));
  EXPECT_THAT(out, HasSubstr("kbs_grpc_request_duration_seconds_count{method=\"Attest\"} 2\n"));
  EXPECT_THAT(out, ::testing::Not(HasSubstr("method=\"Auth\"")));
}

// A declared length is not memory: the body grows with the bytes that
// arrive, so a client that announces 2 MB and sends nothing costs little.
TEST(RequestParserTest, DeclaredLengthReservesLittleAndTheBodyStillArrivesWhole) {
  RequestParser parser(16384, 65536, 4 << 20);
  parser.eager(true);
  const std::string head =
      "POST /kbs/v0/attest HTTP/1.1\r\nHost: k\r\nContent-Length: 2000000\r\n\r\n";
  boost::beast::error_code ec;
  EXPECT_EQ(parser.put(boost::asio::buffer(head), ec), head.size());
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_FALSE(parser.is_done());
  EXPECT_LE(parser.request().body.capacity(), size_t{64} << 10);
  std::string body(2000000, '\0');
  for (size_t i = 0; i < body.size(); ++i) body[i] = static_cast<char>('a' + i % 26);
  size_t at = 0;
  while (at < body.size() && !ec) {
    const size_t n = std::min<size_t>(body.size() - at, 70000);
    at += parser.put(boost::asio::buffer(body.data() + at, n), ec);
  }
  ASSERT_FALSE(ec) << ec.message();
  EXPECT_TRUE(parser.is_done());
  EXPECT_EQ(parser.request().body, body);
}

TEST(CookieTest, ParsingHelpers) {
  EXPECT_EQ(SessionIdFromCookie("a=b; kbs-session-id=abc ;c=d"), "abc");
  EXPECT_EQ(SessionIdFromCookie("kbs-session-idx=abc"), "");
  EXPECT_EQ(BearerToken("Bearer  tok "), "tok");
  EXPECT_EQ(BearerToken("Basic tok"), "");
  EXPECT_EQ(SessionCookie("abc", absl::FromUnixSeconds(1445412480)),
            "kbs-session-id=abc; Expires=Wed, 21 Oct 2015 07:28:00 GMT");
}

}  // namespace
}  // namespace kbs::http
