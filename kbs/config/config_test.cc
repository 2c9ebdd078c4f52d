#include "kbs/config/config.h"

#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::config {
namespace {

using ::testing::HasSubstr;

TEST(ConfigTest, DefaultsAreLoopbackAndValid) {
  KbsConfig c;
  EXPECT_EQ(c.http_address, "127.0.0.1:8080");
  EXPECT_FALSE(c.allow_sample_tee);
  EXPECT_GE(c.max_header_field_bytes, 64 * 1024);
  EXPECT_GE(c.max_request_head_bytes, 256 * 1024);
  EXPECT_EQ(c.max_body_bytes, 2 * 1024 * 1024);
  EXPECT_TRUE(ValidateConfig(c).ok());
}

TEST(ConfigTest, ParsesEveryKey) {
  auto c = ParseConfig(R"(
[server]
http = "0.0.0.0:9000"
grpc = ""
insecure_http = true
threads = 4
max_header_field_bytes = 100000
max_request_head_bytes = 300000
max_body_bytes = 4096
read_timeout = 5
idle_timeout = 7
max_requests_in_progress = 64
[storage]
data_dir = "/var/lib/kbs"
[attestation]
allow_sample_tee = true
session_timeout = 60
max_sessions = 10
[policy]
max_expression_bytes = 2048
max_expression_depth = 16
max_evaluation_steps = 500
[token]
lifetime = 120
issuer = "https://kbs.example"
audience = ["vault", "gcp"]
key_rotation_days = 7
clock_skew = 5
jwks_uri = "https://proxy.example/kbs/jwks.json"
[audit]
record_attestations = false
group_commit_delay_us = 0
[admin]
public_keys = ["/etc/kbs/admin.pub"]
[log]
level = "debug"
)");
  ASSERT_TRUE(c.ok()) << c.status();
  EXPECT_EQ(c->http_address, "0.0.0.0:9000");
  EXPECT_TRUE(c->grpc_address.empty());
  EXPECT_EQ(c->threads, 4);
  EXPECT_EQ(c->max_body_bytes, 4096);
  EXPECT_EQ(c->max_requests_in_progress, 64);
  EXPECT_EQ(c->session_timeout_secs, 60);
  EXPECT_EQ(c->token_issuer, "https://kbs.example");
  EXPECT_EQ(c->token_audience, (std::vector<std::string>{"vault", "gcp"}));
  EXPECT_EQ(c->token_key_rotation_days, 7);
  EXPECT_EQ(c->token_clock_skew_secs, 5);
  EXPECT_EQ(c->token_jwks_uri, "https://proxy.example/kbs/jwks.json");
  EXPECT_FALSE(c->record_attestations);
  EXPECT_EQ(c->group_commit_delay_us, 0);
  EXPECT_EQ(c->policy_max_expression_bytes, 2048);
  EXPECT_EQ(c->policy_max_expression_depth, 16);
  EXPECT_EQ(c->policy_max_evaluation_steps, 500);
  ASSERT_EQ(c->admin_public_keys.size(), 1u);
  EXPECT_TRUE(ValidateConfig(*c).ok());
}

TEST(ConfigTest, RejectsTyposWrongTypesAndRanges) {
  EXPECT_THAT(ParseConfig("[server]\nhtpp = \"x\"").status().message(),
              HasSubstr("server.htpp (line 2): unknown key"));
  EXPECT_THAT(ParseConfig("[sever]\nhttp = \"x\"").status().message(), HasSubstr("unknown"));
  EXPECT_THAT(ParseConfig("[server]\nthreads = \"2\"").status().message(),
              HasSubstr("must be an integer"));
  EXPECT_THAT(ParseConfig("[attestation]\nsession_timeout = 0").status().message(),
              HasSubstr("must be in"));
  EXPECT_THAT(ParseConfig("[server\n").status().message(), HasSubstr("line 1"));
  EXPECT_THAT(ParseConfig("[policy]\nmax_evaluation_steps = 0").status().message(),
              HasSubstr("policy.max_evaluation_steps (line 2): must be in"));
  EXPECT_THAT(ParseConfig("[audit]\ngroup_commit_delay_us = 100001").status().message(),
              HasSubstr("audit.group_commit_delay_us (line 2): must be in"));
}

TEST(ConfigTest, TokenAudienceAndIssuer) {
  auto one = ParseConfig("[token]\naudience = \"vault\"");
  ASSERT_TRUE(one.ok()) << one.status();
  EXPECT_EQ(one->token_audience, (std::vector<std::string>{"vault"}));
  EXPECT_THAT(ParseConfig("[token]\naudience = 3").status().message(),
              HasSubstr("token.audience (line 2): must be an array of strings"));
  KbsConfig c;
  c.token_audience = {""};
  EXPECT_THAT(ValidateConfig(c).message(), HasSubstr("token.audience"));
  c = KbsConfig();
  c.token_issuer = "";
  EXPECT_THAT(ValidateConfig(c).message(), HasSubstr("token.issuer"));
  c = KbsConfig();
  c.token_jwks_uri = "ftp://x";
  EXPECT_THAT(ValidateConfig(c).message(), HasSubstr("token.jwks_uri"));
}

TEST(ConfigTest, PlainHttpOnlyOnLoopback) {
  KbsConfig c;
  c.http_address = "0.0.0.0:8080";
  EXPECT_THAT(ValidateConfig(c).message(), HasSubstr("--insecure-http"));
  c.insecure_http = true;
  c.grpc_address = "10.0.0.1:50051";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.insecure_http = false;
  c.tls_cert = "cert.pem";
  c.tls_key = "key.pem";
  EXPECT_TRUE(ValidateConfig(c).ok());
  c.tls_key.clear();
  EXPECT_FALSE(ValidateConfig(c).ok());
  KbsConfig v6;
  v6.http_address = "[::1]:8080";
  v6.grpc_address = "localhost:0";
  EXPECT_TRUE(ValidateConfig(v6).ok());
}

TEST(ConfigTest, HostPort) {
  EXPECT_EQ(ParseHostPort("localhost:80")->host, "127.0.0.1");
  EXPECT_EQ(ParseHostPort("[::1]:80")->host, "::1");
  EXPECT_EQ(ParseHostPort("127.0.0.1:0")->port, 0);
  EXPECT_FALSE(ParseHostPort("example.com:80").ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1").ok());
  EXPECT_FALSE(ParseHostPort("127.0.0.1:99999").ok());
  EXPECT_TRUE(IsLoopback("127.8.9.10"));
  EXPECT_TRUE(IsLoopback("::1"));
  EXPECT_FALSE(IsLoopback("0.0.0.0"));
  EXPECT_FALSE(IsLoopback("::"));
}

}  // namespace
}  // namespace kbs::config
