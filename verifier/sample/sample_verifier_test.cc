#include "verifier/sample/sample_verifier.h"

#include "common/crypto.h"
#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::verifier {
namespace {

using common::Json;
using ::testing::HasSubstr;

class SampleVerifierTest : public ::testing::Test {
 protected:
  SampleVerifierTest() : verifier_(SampleVerifier::CreateCpu()) {
    binding_.report_data = common::Digest(common::HashAlgorithm::kSha384, "runtime data");
  }
  Json Evidence() const {
    return Json{{"svn", "1"}, {"report_data", common::Base64Encode(binding_.report_data)}};
  }
  std::unique_ptr<SampleVerifier> verifier_;
  EvidenceBinding binding_;
};

TEST_F(SampleVerifierTest, VerifiesMatchingReportData) {
  auto claims = verifier_->Verify(Evidence(), binding_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->tee(), "sample");
  EXPECT_EQ(claims->claims()["svn"], "1");
  EXPECT_EQ(claims->claims()["report_data"], common::HexEncode(binding_.report_data));
  EXPECT_EQ(claims->trust_vector().Status(), "contraindicated");
}

TEST_F(SampleVerifierTest, RejectsTamperedReportData) {
  Json evidence = Evidence();
  std::string tampered = binding_.report_data;
  tampered[0] ^= 1;
  evidence["report_data"] = common::Base64Encode(tampered);
  auto claims = verifier_->Verify(evidence, binding_);
  EXPECT_EQ(claims.status().code(), absl::StatusCode::kUnauthenticated);
  // Padded to 64 bytes is not accepted: sample compares exactly.
  evidence["report_data"] = common::Base64Encode(binding_.report_data + std::string(16, '\0'));
  EXPECT_FALSE(verifier_->Verify(evidence, binding_).ok());
}

TEST_F(SampleVerifierTest, InitDataBinding) {
  binding_.init_data_digest = common::Sha256("[data]\n");
  Json evidence = Evidence();
  auto missing = verifier_->Verify(evidence, binding_);
  EXPECT_THAT(missing.status().message(), HasSubstr("binds none"));
  evidence["init_data"] = common::HexEncode(common::Sha256("other"));
  EXPECT_EQ(verifier_->Verify(evidence, binding_).status().code(),
            absl::StatusCode::kUnauthenticated);
  evidence["init_data"] = common::HexEncode(*binding_.init_data_digest);
  auto ok = verifier_->Verify(evidence, binding_);
  ASSERT_TRUE(ok.ok()) << ok.status();
  EXPECT_EQ(ok->claims()["init_data"], common::HexEncode(*binding_.init_data_digest));
}

TEST_F(SampleVerifierTest, ExtraClaims) {
  Json evidence = Evidence();
  evidence["claims"] = Json{{"measurement", "abcd"}, {"debug", true}};
  auto claims = verifier_->Verify(evidence, binding_);
  ASSERT_TRUE(claims.ok());
  EXPECT_EQ(claims->claims()["measurement"], "abcd");
  EXPECT_EQ(claims->claims()["debug"], true);
  EXPECT_EQ(claims->trust_vector().configuration, kWarningUnsafeConfig);
  evidence["claims"] = Json{{"report_data", "00"}};
  EXPECT_THAT(verifier_->Verify(evidence, binding_).status().message(), HasSubstr("override"));
  evidence["claims"] = Json{{"big", std::string(5000, 'a')}};
  EXPECT_FALSE(verifier_->Verify(evidence, binding_).ok());
}

TEST_F(SampleVerifierTest, MalformedEvidence) {
  for (const char* text : {R"([])", R"({"svn":1,"report_data":"AA=="})", R"({"svn":"1"})",
                           R"({"svn":"1","report_data":"not base64!"})",
                           R"({"svn":"1","report_data":"AA==","init_data":"xyz"})",
                           R"({"svn":"1","report_data":"AA==","claims":[1]})"}) {
    auto evidence = common::ParseJson(text);
    ASSERT_TRUE(evidence.ok());
    auto result = verifier_->Verify(*evidence, binding_);
    EXPECT_EQ(result.status().code(), absl::StatusCode::kInvalidArgument) << text;
  }
}

TEST(TrustVectorTest, StatusIsWorstTier) {
  TrustVector tv;
  EXPECT_EQ(tv.Status(), "none");
  tv.hardware = kAffirming;
  EXPECT_EQ(tv.Status(), "affirming");
  tv.configuration = kWarningUnsafeConfig;
  EXPECT_EQ(tv.Status(), "warning");
  tv.executables = 96;
  EXPECT_EQ(tv.Status(), "contraindicated");
  EXPECT_EQ(tv.ToJson().size(), 8u);
}

}  // namespace
}  // namespace kbs::verifier
