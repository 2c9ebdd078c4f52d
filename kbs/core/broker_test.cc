#include "kbs/core/broker.h"

#include <filesystem>

#include "absl/strings/str_split.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/client/sample_attester.h"
#include "kbs/core/errors.h"
#include "kbs/keystore/sqlite_key_store.h"
#include "tests/testing/in_process_kbs.h"

namespace kbs {
namespace {

using common::Json;
using ::testing::HasSubstr;

class BrokerTest : public ::testing::Test {
 protected:
  void SetUp() override { Build(/*sample=*/true); }

  void Build(bool sample, size_t max_sessions = 1000) {
    kbs_ = testing::InProcessKbs::Create({sample, max_sessions});
    broker_ = kbs_->broker();
  }
  common::FakeClock& clock() { return kbs_->clock(); }
  std::string AdminToken(absl::Duration lifetime = absl::Minutes(5)) {
    return kbs_->AdminToken(lifetime);
  }

  void AllowAllWithResource(const std::string& path = "repo/key/tag",
                            const std::string& value = "the model key") {
    ASSERT_TRUE(broker_->SetPolicy(AdminToken(), R"({"preset":"allow-all"})").ok());
    ASSERT_TRUE(broker_->PutResource(AdminToken(), path, value).ok());
  }

  struct Attested {
    std::string session_id;
    std::string token;
    client::TeeKeyPair key;
  };

  absl::StatusOr<Attested> Attest(client::TeeKeyType type = client::TeeKeyType::kEcP256,
                                  const client::SampleEvidenceOptions& options = {}) {
    auto auth = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
    if (!auth.ok()) return auth.status();
    auto key = client::TeeKeyPair::Generate(type);
    auto request = client::BuildSampleAttestation(auth->nonce, *key, options);
    if (!request.ok()) return request.status();
    auto attest = broker_->Attest(auth->session_id, *request);
    if (!attest.ok()) return attest.status();
    return Attested{auth->session_id, attest->token, *std::move(key)};
  }

  absl::StatusOr<std::string> Fetch(const Credentials& creds, const client::TeeKeyPair& key,
                                    const std::string& path = "repo/key/tag") {
    auto released = broker_->GetResource(creds, path);
    if (!released.ok()) return released.status();
    return client::DecryptResource(released->jwe.ToJsonString(), key);
  }

  std::unique_ptr<testing::InProcessKbs> kbs_;
  Broker* broker_ = nullptr;
};

TEST_F(BrokerTest, FullFlowByCookieAndByBearerForEachKeyType) {
  AllowAllWithResource();
  for (auto type :
       {client::TeeKeyType::kEcP256, client::TeeKeyType::kEcP521, client::TeeKeyType::kRsa}) {
    auto attested = Attest(type);
    ASSERT_TRUE(attested.ok()) << attested.status();
    auto by_cookie = Fetch({attested->session_id, ""}, attested->key);
    ASSERT_TRUE(by_cookie.ok()) << by_cookie.status();
    EXPECT_EQ(*by_cookie, "the model key");
    auto by_bearer = Fetch({"", attested->token}, attested->key);
    ASSERT_TRUE(by_bearer.ok()) << by_bearer.status();
    EXPECT_EQ(*by_bearer, "the model key");
  }
}

TEST_F(BrokerTest, TokenHasEarLayout) {
  client::SampleEvidenceOptions options;
  options.claims = Json{{"measurement", "aa"}};
  options.devices = {"sampledevice"};
  auto attested = Attest(client::TeeKeyType::kRsa, options);
  ASSERT_TRUE(attested.ok()) << attested.status();
  EXPECT_LT(attested->token.size(), 16384u);
  std::vector<std::string> parts = absl::StrSplit(attested->token, '.');
  ASSERT_EQ(parts.size(), 3u);
  Json header = Json::parse(*common::Base64UrlDecode(parts[0]));
  EXPECT_EQ(header["alg"], "ES256");
  Json claims = Json::parse(*common::Base64UrlDecode(parts[1]));
  EXPECT_EQ(claims["eat_profile"], std::string(token::kEatProfile));
  EXPECT_EQ(claims["exp"].get<int64_t>() - claims["iat"].get<int64_t>(), 300);
  EXPECT_EQ(claims["iss"], "kbs");
  ASSERT_TRUE(claims["ear.verifier-id"].contains("build"));
  const Json& cpu0 = claims["submods"]["cpu0"];
  EXPECT_EQ(cpu0["ear.status"], "contraindicated");
  EXPECT_EQ(cpu0["ear.trustworthiness-vector"]["hardware"], 97);
  const Json& annotated = cpu0["ear.veraison.annotated-evidence"];
  EXPECT_EQ(annotated["sample"]["measurement"], "aa");
  EXPECT_EQ(annotated["runtime_data_claims"]["tee-pubkey"], attested->key.public_key().ToJson());
  EXPECT_FALSE(annotated["runtime_data_claims"].contains("additional-evidence"));
  EXPECT_TRUE(
      claims["submods"]["gpu0"]["ear.veraison.annotated-evidence"].contains("sampledevice"));
  EXPECT_EQ(broker_->Jwks()["keys"][0]["kid"], header["kid"]);
  // The flat OIDC claims.
  EXPECT_EQ(claims["sub"], "sample:aa");
  EXPECT_EQ(claims["tee"], "sample");
  EXPECT_EQ(claims["measurement"], "aa");
  EXPECT_EQ(claims["image_digests"], Json::array());
}

TEST_F(BrokerTest, VersionMismatchAndUnknownTee) {
  auto wrong = broker_->Auth(AuthRequest{"0.3.0", "sample", Json("")});
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(wrong.status().message(), HasSubstr("KBS Client Protocol Version Mismatch"));
  EXPECT_EQ(GetErrorKind(wrong.status()), ErrorKind::kAttestationError);
  auto unknown = broker_->Auth(AuthRequest{"0.4.0", "quantum", Json("")});
  EXPECT_EQ(unknown.status().code(), absl::StatusCode::kInvalidArgument);
  auto unsupported = broker_->Auth(AuthRequest{"0.4.0", "snp", Json("")});
  EXPECT_EQ(unsupported.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(unsupported.status().message(), HasSubstr("not supported"));
  auto device = broker_->Auth(AuthRequest{"0.4.0", "sampledevice", Json("")});
  EXPECT_EQ(device.status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, SampleRefusedUnlessEnabled) {
  Build(/*sample=*/false);
  auto auth = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  EXPECT_EQ(auth.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(auth.status().message(), HasSubstr("--allow-sample-tee"));
}

TEST_F(BrokerTest, NonceRules) {
  auto auth = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  ASSERT_TRUE(auth.ok());
  EXPECT_EQ(common::Base64Decode(auth->nonce)->size(), 32u);
  EXPECT_EQ(auth->session_id.size(), 32u);
  auto key = *client::TeeKeyPair::Generate(client::TeeKeyType::kEcP256);

  // Wrong nonce: rejected, and the session's challenge is spent.
  auto other_nonce =
      client::BuildSampleAttestation(common::Base64Encode(std::string(32, 'x')), key, {});
  auto wrong = broker_->Attest(auth->session_id, *other_nonce);
  EXPECT_EQ(wrong.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(wrong.status().message(), HasSubstr("nonce does not match"));
  auto right = client::BuildSampleAttestation(auth->nonce, key, {});
  auto reused = broker_->Attest(auth->session_id, *right);
  EXPECT_EQ(reused.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(reused.status().message(), HasSubstr("already used"));

  // A nonce attests at most once.
  auto auth2 = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  auto req2 = client::BuildSampleAttestation(auth2->nonce, key, {});
  ASSERT_TRUE(broker_->Attest(auth2->session_id, *req2).ok());
  EXPECT_EQ(broker_->Attest(auth2->session_id, *req2).status().code(),
            absl::StatusCode::kUnauthenticated);

  // No cookie, unknown session.
  EXPECT_EQ(broker_->Attest("", *req2).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(broker_->Attest("00000000000000000000000000000000", *req2).status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(BrokerTest, ExpiredSession) {
  auto auth = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  auto key = *client::TeeKeyPair::Generate(client::TeeKeyType::kEcP256);
  auto req = client::BuildSampleAttestation(auth->nonce, key, {});
  clock().Advance(absl::Minutes(5) + absl::Seconds(1));
  auto expired = broker_->Attest(auth->session_id, *req);
  EXPECT_EQ(expired.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(expired.status().message(), HasSubstr("expired"));
}

TEST_F(BrokerTest, AttestedSessionAndTokenExpire) {
  AllowAllWithResource();
  auto attested = Attest();
  ASSERT_TRUE(attested.ok());
  clock().Advance(absl::Minutes(4));
  EXPECT_TRUE(Fetch({attested->session_id, ""}, attested->key).ok());
  clock().Advance(absl::Minutes(1) + absl::Seconds(1));
  auto cookie = broker_->GetResource({attested->session_id, ""}, "repo/key/tag");
  EXPECT_EQ(cookie.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetErrorKind(cookie.status()), ErrorKind::kTokenNotFound);
  auto bearer = broker_->GetResource({"", attested->token}, "repo/key/tag");
  EXPECT_EQ(bearer.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetErrorKind(bearer.status()), ErrorKind::kTokenVerifierError);
  EXPECT_THAT(bearer.status().message(), HasSubstr("expired"));
}

TEST_F(BrokerTest, TamperedReportDataAndMalformedInput) {
  client::SampleEvidenceOptions tampered;
  tampered.tamper_report_data = true;
  auto result = Attest(client::TeeKeyType::kEcP256, tampered);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(result.status().message(), HasSubstr("RCAR handshake Attest failed"));
  EXPECT_THAT(result.status().message(), HasSubstr("report_data does not match"));

  // The TEE key re-serialization is what is hashed: an extra JWK member the
  // client hashed would not match.
  auto auth = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  auto key = *client::TeeKeyPair::Generate(client::TeeKeyType::kEcP256);
  auto req = *client::BuildSampleAttestation(auth->nonce, key, {});
  req.tee_pubkey["x"] = "AAAA";
  auto bad_key = broker_->Attest(auth->session_id, req);
  EXPECT_EQ(bad_key.status().code(), absl::StatusCode::kInvalidArgument);

  auto auth2 = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  auto req2 = *client::BuildSampleAttestation(auth2->nonce, key, {});
  req2.primary_evidence = Json{{"svn", 1}};
  EXPECT_EQ(broker_->Attest(auth2->session_id, req2).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, InitDataBinding) {
  AllowAllWithResource();
  client::SampleEvidenceOptions options;
  options.init_data_toml =
      "version = \"0.1.0\"\nalgorithm = \"sha384\"\n[data]\n\"aa.toml\" = \"x = 1\"\n";
  auto attested = Attest(client::TeeKeyType::kEcP256, options);
  ASSERT_TRUE(attested.ok()) << attested.status();
  std::vector<std::string> parts = absl::StrSplit(attested->token, '.');
  Json claims = Json::parse(*common::Base64UrlDecode(parts[1]));
  const Json& annotated = claims["submods"]["cpu0"]["ear.veraison.annotated-evidence"];
  EXPECT_EQ(annotated["init_data_claims"]["aa.toml"], "x = 1");
  EXPECT_EQ(annotated["init_data"].get<std::string>().size(), 96u);

  options.bind_init_data = false;
  EXPECT_EQ(Attest(client::TeeKeyType::kEcP256, options).status().code(),
            absl::StatusCode::kUnauthenticated);
  options.bind_init_data = true;
  // An init-data document the KBS cannot parse is a malformed request.
  options.bind_init_data = false;
  options.init_data_toml = "algorithm = \"md5\"\n";
  EXPECT_EQ(Attest(client::TeeKeyType::kEcP256, options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(BrokerTest, ResourceErrors) {
  auto attested = Attest();
  ASSERT_TRUE(attested.ok());
  Credentials creds{attested->session_id, ""};
  // Default policy: deny-all.
  auto denied = broker_->GetResource(creds, "repo/key/tag");
  EXPECT_EQ(denied.status().code(), absl::StatusCode::kPermissionDenied);
  EXPECT_EQ(GetErrorKind(denied.status()), ErrorKind::kPolicyDeny);
  ASSERT_TRUE(broker_->SetPolicy(AdminToken(), "allow-all").ok());
  auto missing = broker_->GetResource(creds, "repo/key/missing");
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->GetResource(creds, "repo/key").status().code(), absl::StatusCode::kNotFound);
  EXPECT_EQ(broker_->GetResource(creds, "repo/.key/tag").status().code(),
            absl::StatusCode::kNotFound);
  auto none = broker_->GetResource({}, "repo/key/tag");
  EXPECT_EQ(GetErrorKind(none.status()), ErrorKind::kTokenNotFound);
  EXPECT_EQ(broker_->GetResource({"", "a.b.c"}, "repo/key/tag").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(BrokerTest, TokenFromAnotherKbsIsRejected) {
  AllowAllWithResource();
  auto attested = Attest();
  ASSERT_TRUE(attested.ok());
  std::string token = attested->token;
  Build(/*sample=*/true);  // another KBS, another signing key
  AllowAllWithResource();
  auto result = broker_->GetResource({"", token}, "repo/key/tag");
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetErrorKind(result.status()), ErrorKind::kTokenVerifierError);
}

TEST_F(BrokerTest, AdminAuthentication) {
  auto none = broker_->PutResource("", "repo/key/tag", "v");
  EXPECT_EQ(none.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(GetErrorKind(none.status()), ErrorKind::kAdminAuthAccess);
  std::string expired = AdminToken(absl::Seconds(10));
  clock().Advance(absl::Minutes(5));
  EXPECT_EQ(broker_->PutResource(expired, "repo/key/tag", "v").status().code(),
            absl::StatusCode::kUnauthenticated);
  auto other = *jose::JwtSigner::Create(*common::GenerateEd25519Key());
  std::string forged = *other->Sign(Json{{"exp", absl::ToUnixSeconds(clock().Now()) + 60}});
  EXPECT_EQ(broker_->DeleteResource(forged, "repo/key/tag").code(),
            absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(broker_->ListResources(forged).status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_EQ(broker_->SetPolicy(forged, "allow-all").status().code(),
            absl::StatusCode::kUnauthenticated);
}

TEST_F(BrokerTest, AdminResourceLifecycleAndPolicyPersistence) {
  std::string admin = AdminToken();
  auto md = broker_->PutResource(admin, "repo/key/tag", "value-1");
  ASSERT_TRUE(md.ok());
  EXPECT_EQ(md->size, 7);
  EXPECT_EQ(broker_->PutResource(admin, "bad/path", "x").status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(
      broker_->PutResource(admin, "repo/key/big", std::string((1 << 20) + 1, 'x')).status().code(),
      absl::StatusCode::kResourceExhausted);
  auto list = broker_->ListResources(admin);
  ASSERT_TRUE(list.ok());
  ASSERT_EQ(list->size(), 1u);
  EXPECT_EQ((*list)[0].path, "repo/key/tag");
  EXPECT_TRUE(broker_->DeleteResource(admin, "repo/key/tag").ok());
  EXPECT_EQ(broker_->DeleteResource(admin, "repo/key/tag").code(), absl::StatusCode::kNotFound);

  auto bad = broker_->SetPolicy(admin, "package policy\n");
  EXPECT_EQ(bad.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(GetErrorKind(bad.status()), ErrorKind::kParsePolicyError);
  ASSERT_TRUE(broker_->SetPolicy(admin, R"({"preset":"allow-all"})").ok());
  // A new broker over the same database keeps the policy.
  auto reopened = kbs_->Reopen();
  ASSERT_TRUE(reopened.ok());
  EXPECT_EQ((*(*reopened)->GetPolicy(admin))["policy"]["preset"], "allow-all");
}

TEST_F(BrokerTest, SessionTableCap) {
  Build(/*sample=*/true, /*max_sessions=*/3);
  for (int i = 0; i < 3; ++i) {
    ASSERT_TRUE(broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")}).ok());
  }
  auto full = broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")});
  EXPECT_EQ(full.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_EQ(HttpStatusFor(full.status()), 503);
  clock().Advance(absl::Minutes(6));  // expired sessions are purged to make room
  EXPECT_TRUE(broker_->Auth(AuthRequest{"0.4.0", "sample", Json("")}).ok());
}

}  // namespace
}  // namespace kbs
