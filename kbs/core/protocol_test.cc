#include "kbs/core/protocol.h"

#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs {
namespace {

using ::testing::HasSubstr;

TEST(ProtocolTest, ParsesAgentAuthRequest) {
  auto req = ParseAuthRequest(
      R"({"version":"0.4.0","tee":"snp","extra-params":{"supported-hash-algorithms":["sha256","sha384"]}})");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->tee, "snp");
  EXPECT_TRUE(req->extra_params.is_object());
  // Older agents sent "" as extra-params.
  EXPECT_TRUE(ParseAuthRequest(R"({"version":"0.4.0","tee":"snp","extra-params":""})").ok());
}

TEST(ProtocolTest, AuthRequestErrors) {
  EXPECT_THAT(
      ParseAuthRequest(R"({"version":"0.4.0","tee":1,"extra-params":""})").status().message(),
      HasSubstr("field `tee` in auth request must be a string"));
  EXPECT_FALSE(ParseAuthRequest(R"({"version":"0.4.0","tee":"snp"})").ok());
  EXPECT_FALSE(ParseAuthRequest(R"(["version"])").ok());
  EXPECT_FALSE(ParseAuthRequest(R"({"version":"0.4.0","tee":"snp")").ok());
}

TEST(ProtocolTest, ParsesAttestation) {
  auto req = ParseAttestRequest(R"({
    "init-data": {"format":"toml","body":"algorithm = \"sha256\""},
    "runtime-data": {"nonce":"abc","tee-pubkey":{"kty":"EC"}},
    "tee-evidence": {"primary_evidence":{"svn":"1"},"additional_evidence":""}})");
  ASSERT_TRUE(req.ok()) << req.status();
  EXPECT_EQ(req->nonce, "abc");
  ASSERT_TRUE(req->init_data.has_value());
  EXPECT_EQ(req->init_data->format, "toml");
  auto no_init = ParseAttestRequest(R"({"init-data":null,
    "runtime-data": {"nonce":"abc","tee-pubkey":{}},
    "tee-evidence": {"primary_evidence":{},"additional_evidence":""}})");
  ASSERT_TRUE(no_init.ok());
  EXPECT_FALSE(no_init->init_data.has_value());
}

TEST(ProtocolTest, AttestationErrors) {
  EXPECT_THAT(ParseAttestRequest(R"({"runtime-data":{"nonce":1,"tee-pubkey":{}},
      "tee-evidence":{"primary_evidence":{},"additional_evidence":""}})")
                  .status()
                  .message(),
              HasSubstr("nonce"));
  EXPECT_FALSE(ParseAttestRequest(R"({"runtime-data":{"nonce":"a","tee-pubkey":{}},
      "tee-evidence":{"additional_evidence":""}})")
                   .ok());
  EXPECT_FALSE(ParseAttestRequest(R"({"runtime-data":{"nonce":"a","tee-pubkey":{}},
      "tee-evidence":{"primary_evidence":{},"additional_evidence":{}}})")
                   .ok());
  EXPECT_FALSE(ParseAttestRequest(R"({"tee-evidence":{}})").ok());
}

TEST(ProtocolTest, ResourcePaths) {
  EXPECT_TRUE(IsValidResourcePath("default/key/1"));
  EXPECT_TRUE(IsValidResourcePath("my-repo/model.weights/v1.2_x"));
  EXPECT_FALSE(IsValidResourcePath("a/b"));
  EXPECT_FALSE(IsValidResourcePath("a/b/c/d"));
  EXPECT_FALSE(IsValidResourcePath("a/../c"));
  EXPECT_FALSE(IsValidResourcePath("a/.b/c"));
  EXPECT_FALSE(IsValidResourcePath("a//c"));
  EXPECT_FALSE(IsValidResourcePath("a/b%2F/c"));
  EXPECT_FALSE(IsValidResourcePath(""));
}

}  // namespace
}  // namespace kbs
