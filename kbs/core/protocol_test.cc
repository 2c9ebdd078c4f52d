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

// The kept document is byte for byte what serializing it as one JSON
// object gives (how it was built before, and what auditors re-hash).
TEST(ProtocolTest, AttestEvidenceDocumentIsTheCompactSortedObject) {
  const char* bodies[] = {
      R"({"init-data": {"format":"toml","body":"algorithm = \"sha256\"\n\u00e9\u2028"},
          "runtime-data": {"nonce":"n\"o/nce","tee-pubkey":{"kty":"EC","y":"2","x":"1"}},
          "tee-evidence": {"primary_evidence":{"b":[1,2.5,-3,1e300,true,null],"a":{"z":"\u0001"}},
                           "additional_evidence":"{\"gpu\":1}"}})",
      R"({"runtime-data": {"nonce":"abc","tee-pubkey":{}},
          "tee-evidence": {"primary_evidence":"a string","additional_evidence":""}})",
  };
  for (const char* body : bodies) {
    auto req = ParseAttestRequest(body);
    ASSERT_TRUE(req.ok()) << req.status();
    for (std::string tee : {"", "snp"}) {
      common::Json doc = {
          {"runtime_data", {{"nonce", req->nonce}, {"tee-pubkey", req->tee_pubkey}}},
          {"tee_evidence",
           {{"primary_evidence", req->primary_evidence},
            {"additional_evidence", req->additional_evidence}}}};
      if (req->init_data.has_value()) {
        doc["init_data"] = {{"format", req->init_data->format}, {"body", req->init_data->body}};
      }
      if (!tee.empty()) doc["tee"] = tee;
      EXPECT_EQ(AttestEvidenceDocument(*req, tee), common::DumpJson(doc));
    }
  }
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
