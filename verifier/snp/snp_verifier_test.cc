#include "verifier/snp/snp_verifier.h"

#include <openssl/pem.h>

#include <cstdlib>
#include <filesystem>

#include "common/encoding.h"
#include "common/files.h"
#include "common/x509.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/snp_generator.h"
#include "tests/testing/testdata.h"

namespace kbs::verifier::snp {
namespace {

using common::Json;
using ::testing::HasSubstr;

// Real evidence from real machines, read through KBS_TESTDATA
// (see ../shared/testdata/PROVENANCE.md for each file's expected outcome).
#define REQUIRE_TESTDATA()                                                              \
  if (!std::filesystem::exists(kbs::testing::TestDataDir() + "/snp")) {                 \
    GTEST_SKIP() << "real SNP evidence not found: set KBS_TESTDATA to shared/testdata"; \
  }

std::string Read(const std::string& relative) {
  auto data = common::ReadFile(kbs::testing::TestDataDir() + "/" + relative);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.value_or("");
}

std::string TempDir(const std::string& name) {
  std::string dir = (std::filesystem::path(::testing::TempDir()) / name).string();
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

// A collateral directory holding AMD's chains (copied at run time from the
// shared test data; the project itself carries only fingerprints).
std::string AmdCollateralDir() {
  std::string dir = TempDir("snp_amd_collateral");
  for (auto [product, file] : {std::pair{"Milan", "snp/milan_ask_ark_asvk.pem"},
                               {"Genoa", "snp/genoa_ask_ark_asvk.pem"},
                               {"Turin", "snp/turin_ask_ark_asvk.pem"}}) {
    std::filesystem::create_directories(dir + "/" + product);
    EXPECT_TRUE(common::WriteFileAtomic(dir + "/" + product + "/cert_chain.pem", Read(file)).ok());
  }
  return dir;
}

absl::Time At(const char* rfc3339) {
  absl::Time t;
  std::string err;
  EXPECT_TRUE(absl::ParseTime(absl::RFC3339_full, rfc3339, &t, &err)) << err;
  return t;
}

class RealSnpTest : public ::testing::Test {
 protected:
  void SetUp() override {
    REQUIRE_TESTDATA();
    collateral_ = std::make_unique<DirectoryCollateral>(AmdCollateralDir());
    SnpVerifierOptions options;
    options.collateral = collateral_.get();
    verifier_ = SnpVerifier::Create(std::move(options), &clock_);
  }

  absl::StatusOr<VerifiedClaims> VerifyFiles(const std::string& report, const std::string& vek,
                                             absl::Time at, const char* type = "VCEK") {
    SnpEvidence evidence;
    evidence.report = Read(report);
    evidence.cert_chain.push_back({type, Read(vek)});
    return verifier_->VerifyEvidence(evidence, SnpExpectations{std::nullopt, std::nullopt, at});
  }

  common::FakeClock clock_{At("2026-06-01T00:00:00Z")};
  std::unique_ptr<DirectoryCollateral> collateral_;
  std::unique_ptr<SnpVerifier> verifier_;
};

// Set SNP-1: Genoa, report v3, the agent's evidence JSON with the VCEK.
TEST_F(RealSnpTest, GenoaV3AgentEvidence) {
  auto json = common::ParseJson(Read("snp/genoa-v3-trustee-evidence.json"));
  ASSERT_TRUE(json.ok());
  // The JSON rebuilds into exactly the report bytes.
  auto parsed = ParseSnpEvidence(*json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->report, Read("snp/genoa-v3-trustee-report.derived.bin"));
  EXPECT_EQ(parsed->cert_chain.at(0).der, Read("snp/genoa-v3-trustee-vcek.derived.der"));

  EvidenceBinding binding;
  binding.report_data = *common::HexDecode(
      "7e7320889600c7ac133aea7b896c51f41026002982292a7369559796999c1bf929eef3ff23c46e858f0b1982f"
      "9a92b17c51b578d958cde6b0c92978f150cf9b0");
  auto claims = verifier_->Verify(*json, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  const Json& c = claims->claims();
  EXPECT_EQ(
      c["measurement"],
      "6a6519d757e68c2e939c9dbbbc1828498e8de35d2766dd05f1a2cca5059d0cf4ae62a36d75c837974dd50b3"
      "15506e73e");
  EXPECT_EQ(c["product"], "Genoa");
  EXPECT_EQ(c["signer"], "vcek");
  EXPECT_EQ(c["reported_tcb"],
            (Json{{"bootloader", 10}, {"tee", 0}, {"snp", 23}, {"microcode", 25}}));
  EXPECT_EQ(c["policy"]["debug"], false);
  EXPECT_EQ(c["policy"]["smt"], true);
  EXPECT_EQ(c["vmpl"], 0);
  EXPECT_EQ(c["platform_info"]["raw"], 0x25);
  EXPECT_EQ(c["report_id"], "b34cb907a31ad237beb02efd236ab9899a7ddd66ff5beed2636765183a84e44f");
  EXPECT_EQ(claims->trust_vector().Status(), "affirming");

  // A different runtime-data digest or init-data digest fails the binding.
  binding.report_data[0] ^= 1;
  EXPECT_THAT(verifier_->Verify(*json, binding).status().message(), HasSubstr("REPORT_DATA"));
  binding.report_data[0] ^= 1;
  binding.init_data_digest = common::Sha256("init-data");
  EXPECT_THAT(verifier_->Verify(*json, binding).status().message(), HasSubstr("HOST_DATA"));
}

// Sets SNP-2/3: Milan report v2 (product from the VCEK).
TEST_F(RealSnpTest, MilanV2Reports) {
  auto trustee =
      VerifyFiles("snp/milan-v2-trustee-report.bin", "snp/milan-v2-trustee-vcek.der", clock_.Now());
  ASSERT_TRUE(trustee.ok()) << trustee.status();
  EXPECT_EQ(trustee->claims()["product"], "Milan");
  EXPECT_EQ(trustee->claims()["version"], 2);
  EXPECT_EQ(trustee->claims()["guest_svn"], 4);
  EXPECT_EQ(trustee->claims()["reported_tcb"]["microcode"], 115);
  EXPECT_EQ(trustee->claims()["current_tcb"]["microcode"], 206);
  EXPECT_EQ(
      trustee->claims()["measurement"],
      "a1f3930413247bb38cfc171579ea3c12d5fe4901f0c792f63fd75d98f1ef827c23500644e0e692e6be917f9"
      "050d3d38c");
  EXPECT_EQ(trustee->claims()["family_id"], "01000000000000000000000000000000");
  auto virtee = VerifyFiles("snp/milan-v2-virtee-report.derived.bin",
                            "snp/milan-v2-virtee-vcek.der", clock_.Now());
  ASSERT_TRUE(virtee.ok()) << virtee.status();
  EXPECT_EQ(
      virtee->claims()["measurement"],
      "7a1e5c266c0108dbc9bb94fa926951320940915d0aafb42464bd88b579ea158d3e1a0dc39b2c60bd95b9c48"
      "0cd81841f");
}

// Set SNP-4: a guest whose policy allows debugging verifies, and says so.
TEST_F(RealSnpTest, DebugPolicyIsAClaim) {
  auto claims = VerifyFiles("snp/milan-v2-gosevguest-report.bin",
                            "snp/milan-v2-gosevguest-vcek.der", clock_.Now());
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["debug"], true);
  EXPECT_EQ(claims->claims()["policy"]["raw"], 0xb0000);
  EXPECT_EQ(claims->trust_vector().Status(), "warning");
}

// Set SNP-5: AWS VLEK, expired now, valid at 2025-06-01 with VMPL 1.
TEST_F(RealSnpTest, AwsVlekExpiryAndVmpl) {
  auto now = VerifyFiles("snp/milan-v3-aws-vlek-report.bin", "snp/milan-aws-vlek.der",
                         At("2026-11-27T00:00:00Z"), "VLEK");
  EXPECT_EQ(now.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(now.status().message(), HasSubstr("VLEK certificate expired"));
  auto then = VerifyFiles("snp/milan-v3-aws-vlek-report.bin", "snp/milan-aws-vlek.der",
                          At("2025-06-01T00:00:00Z"), "VLEK");
  ASSERT_TRUE(then.ok()) << then.status();
  EXPECT_EQ(then->claims()["vmpl"], 1);
  EXPECT_EQ(then->claims()["signer"], "vlek");
  EXPECT_EQ(then->claims()["csp_id"], "CN=cc-us-east-2.amazonaws.com");
  EXPECT_EQ(then->trust_vector().Status(), "warning");
}

// Turin VCEK (certificate only): 8-byte hwID, fmcSPL, chain to the Turin ARK.
TEST_F(RealSnpTest, TurinVcekChain) {
  auto vek = ParseVekCertificate(Read("snp/turin-virtee-vcek.der"));
  ASSERT_TRUE(vek.ok()) << vek.status();
  EXPECT_EQ(common::HexEncode(vek->hwid), "1e550a8ee5cf9f4d");
  EXPECT_EQ(vek->tcb.fmc, 0);
  EXPECT_EQ(vek->tcb.microcode, 9);
  EXPECT_EQ(vek->product, Product::kTurin);
  AmdCertificates certs;
  auto turin = common::ParsePemCertificates(Read("snp/turin_ask_ark_asvk.pem"));
  ASSERT_TRUE(turin.ok());
  for (auto& c : *turin) certs.candidates.push_back(std::move(c));
  EXPECT_TRUE(
      VerifyVekChain(*vek, Product::kTurin, certs, TrustAnchors::AmdDefaults(), clock_.Now()).ok());
  // The Genoa ARK is not Turin's.
  EXPECT_FALSE(
      VerifyVekChain(*vek, Product::kGenoa, certs, TrustAnchors::AmdDefaults(), clock_.Now()).ok());
}

// The synthetic VCEKs parse (raw and OCTET STRING hwID) but fail the chain.
TEST_F(RealSnpTest, SyntheticBadSignatureVceks) {
  AmdCertificates certs;
  auto milan = common::ParsePemCertificates(Read("snp/milan_ask_ark_asvk.pem"));
  ASSERT_TRUE(milan.ok());
  for (auto& c : *milan) certs.candidates.push_back(std::move(c));
  for (const char* file : {"snp/synthetic-vcek-hwid-raw-badsig.der",
                           "snp/synthetic-vcek-hwid-octetstring-badsig.der"}) {
    auto vek = ParseVekCertificate(Read(file));
    ASSERT_TRUE(vek.ok()) << file << ": " << vek.status();
    EXPECT_EQ(vek->hwid.size(), 64u) << file;
    EXPECT_EQ(static_cast<uint8_t>(vek->hwid[1]), 1) << file;
    auto chain =
        VerifyVekChain(*vek, Product::kMilan, certs, TrustAnchors::AmdDefaults(), clock_.Now());
    EXPECT_EQ(chain.status().code(), absl::StatusCode::kUnauthenticated) << file;
    EXPECT_THAT(chain.status().message(), HasSubstr("signature does not verify")) << file;
  }
}

// Every signed byte of a real report is covered by the signature.
TEST_F(RealSnpTest, EverySignedByteFlippedFails) {
  std::string report = Read("snp/genoa-v3-trustee-report.derived.bin");
  std::string vek = Read("snp/genoa-v3-trustee-vcek.derived.der");
  SnpExpectations expect{std::nullopt, std::nullopt, clock_.Now()};
  ASSERT_TRUE(verifier_->VerifyEvidence({report, {{"VCEK", vek}}}, expect).ok());
  for (size_t i = 0; i < kSignedSize; ++i) {
    std::string bad = report;
    bad[i] ^= 0x01;
    auto result = verifier_->VerifyEvidence({bad, {{"VCEK", vek}}}, expect);
    ASSERT_FALSE(result.ok()) << "byte 0x" << std::hex << i;
  }
}

TEST(SnpReportTest, RejectsSizesVersionsAndReservedBytes) {
  std::string report(kReportSize, '\0');
  report[0] = 3;
  report[0x0A] = 0x02;  // POLICY bit 17: reserved, must be 1
  report[0x34] = 1;
  EXPECT_TRUE(ParseSnpReport(common::AsSpan(report)).ok());
  EXPECT_THAT(ParseSnpReport(common::AsSpan(report.substr(0, kReportSize - 1))).status().message(),
              HasSubstr("must be 1184 bytes"));
  EXPECT_FALSE(ParseSnpReport(common::AsSpan(report + "x")).ok());
  std::string v4 = report;
  v4[0] = 4;
  EXPECT_THAT(ParseSnpReport(common::AsSpan(v4)).status().message(), HasSubstr("version 4"));
  std::string algo = report;
  algo[0x34] = 2;
  EXPECT_THAT(ParseSnpReport(common::AsSpan(algo)).status().message(), HasSubstr("algorithm"));
  for (size_t offset : {0x04Cu, 0x18Bu, 0x1EBu, 0x1F8u, 0x208u, 0x29Fu, 0x330u, 0x49Fu}) {
    std::string mbz = report;
    mbz[offset] = 1;
    auto parsed = ParseSnpReport(common::AsSpan(mbz));
    EXPECT_FALSE(parsed.ok()) << std::hex << offset;
    EXPECT_THAT(parsed.status().message(), HasSubstr("reserved")) << std::hex << offset;
  }
  std::string v5 = report;
  v5[0] = 5;
  v5[0x1F8] = 1;  // LAUNCH_MIT_VECTOR exists in v5
  EXPECT_TRUE(ParseSnpReport(common::AsSpan(v5)).ok());
}

TEST(SnpEvidenceTest, MalformedJson) {
  EXPECT_FALSE(ParseSnpEvidence(Json::array()).ok());
  EXPECT_THAT(ParseSnpEvidence(Json::object()).status().message(),
              HasSubstr("`attestation_report` is missing"));
  EXPECT_FALSE(ParseSnpEvidence(Json{{"attestation_report", {{"version", "3"}}}}).ok());
  EXPECT_FALSE(ParseSnpEvidence(Json{{"attestation_report", {{"version", -1}}}}).ok());
}

// Generated evidence: every failure with a clear, distinct error.
class GeneratedSnpTest : public ::testing::Test {
 protected:
  static void SetUpTestSuite() {
    chain_ = testing::SnpTestChain::Create(Product::kGenoa)->release();
    other_chain_ = testing::SnpTestChain::Create(Product::kGenoa)->release();
  }
  void SetUp() override {
    dir_ = TempDir("snp_generated_collateral");
    collateral_ = std::make_unique<DirectoryCollateral>(dir_);
    ASSERT_TRUE(
        collateral_->StoreChain(Product::kGenoa, SignerType::kVcek, chain_->ChainPem()).ok());
    tcb_.bootloader = 10;
    tcb_.snp = 23;
    tcb_.microcode = 25;
    chip_id_ = std::string(64, '\x42');
    auto verifier = MakeVerifier(TrustAnchors());
    verifier_ = std::move(verifier);
    vcek_ = *chain_->IssueVcek({tcb_, chip_id_});
  }
  std::unique_ptr<SnpVerifier> MakeVerifier(TrustAnchors anchors) {
    EXPECT_TRUE(anchors.Add(Product::kGenoa, chain_->ArkFingerprintHex()).ok());
    SnpVerifierOptions options;
    options.anchors = std::move(anchors);
    options.collateral = collateral_.get();
    return SnpVerifier::Create(std::move(options), &clock_);
  }
  testing::SnpReportFields Fields() {
    testing::SnpReportFields f;
    f.reported_tcb = tcb_;
    f.chip_id = chip_id_;
    f.report_data = binding_.report_data;
    return f;
  }
  absl::StatusOr<VerifiedClaims> Verify(const std::string& report, const std::string& vek) {
    auto json = testing::SnpTestChain::EvidenceJson(report, vek);
    if (!json.ok()) return json.status();
    return verifier_->Verify(*json, binding_);
  }

  static testing::SnpTestChain* chain_;
  static testing::SnpTestChain* other_chain_;
  common::FakeClock clock_{At("2026-06-01T00:00:00Z")};
  std::string dir_;
  std::unique_ptr<DirectoryCollateral> collateral_;
  std::unique_ptr<SnpVerifier> verifier_;
  TcbVersion tcb_;
  std::string chip_id_;
  std::string vcek_;
  EvidenceBinding binding_{common::Digest(common::HashAlgorithm::kSha384, "runtime"),
                           common::HashAlgorithm::kSha384, std::nullopt};
};
testing::SnpTestChain* GeneratedSnpTest::chain_ = nullptr;
testing::SnpTestChain* GeneratedSnpTest::other_chain_ = nullptr;

TEST_F(GeneratedSnpTest, VerifiesAndBinds) {
  auto claims = Verify(*chain_->SignReport(Fields()), vcek_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["product"], "Genoa");
  EXPECT_EQ(claims->claims()["report_data"],
            common::HexEncode(binding_.report_data + std::string(16, '\0')));
  // With init-data: HOST_DATA must equal its digest (padded to 32 bytes).
  binding_.init_data_digest = common::Sha256("toml");
  testing::SnpReportFields f = Fields();
  f.host_data = *binding_.init_data_digest;
  EXPECT_TRUE(Verify(*chain_->SignReport(f), vcek_).ok());
  f.host_data = common::Sha256("other toml");
  EXPECT_THAT(Verify(*chain_->SignReport(f), vcek_).status().message(), HasSubstr("HOST_DATA"));
}

TEST_F(GeneratedSnpTest, EachFailureHasItsOwnError) {
  struct Case {
    const char* name;
    std::function<absl::StatusOr<VerifiedClaims>()> run;
    const char* error;
  } cases[] = {
      {"report data",
       [&] {
         testing::SnpReportFields f = Fields();
         f.report_data = common::Digest(common::HashAlgorithm::kSha384, "other");
         return Verify(*chain_->SignReport(f), vcek_);
       },
       "REPORT_DATA"},
      {"tcb mismatch",
       [&] {
         testing::SnpReportFields f = Fields();
         f.reported_tcb.microcode = 26;
         return Verify(*chain_->SignReport(f), vcek_);
       },
       "TCB mismatch"},
      {"hwid mismatch",
       [&] {
         testing::SnpReportFields f = Fields();
         f.chip_id = std::string(64, '\x43');
         return Verify(*chain_->SignReport(f), vcek_);
       },
       "hwID mismatch"},
      {"wrong product",
       [&] {
         testing::SnpReportFields f = Fields();
         f.cpuid_model = 0x01;  // Milan
         return Verify(*chain_->SignReport(f), vcek_);
       },
       "wrong product"},
      {"wrong chain",
       [&] {
         auto foreign = *other_chain_->IssueVcek({tcb_, chip_id_});
         return Verify(*other_chain_->SignReport(Fields()), foreign);
       },
       "signature does not verify with any ASK"},
      {"expired vcek",
       [&] {
         testing::SnpCertOptions o{tcb_, chip_id_};
         o.not_after = At("2026-01-01T00:00:00Z");
         auto expired = *chain_->IssueVcek(o);
         return Verify(*chain_->SignReport(Fields()), expired);
       },
       "VCEK certificate expired"},
      {"not yet valid",
       [&] {
         testing::SnpCertOptions o{tcb_, chip_id_};
         o.not_before = At("2027-01-01T00:00:00Z");
         auto future = *chain_->IssueVcek(o);
         return Verify(*chain_->SignReport(Fields()), future);
       },
       "not valid before"},
      {"signed by another key",
       [&] {
         std::string report = *chain_->SignReport(Fields());
         auto other = *chain_->IssueVcek({tcb_, chip_id_});  // new key
         return Verify(report, other);
       },
       "report signature does not verify"},
      {"untrusted ark",
       [&] {
         verifier_ = MakeVerifier(TrustAnchors());
         SnpVerifierOptions options;  // only AMD's real ARKs
         options.collateral = collateral_.get();
         verifier_ = SnpVerifier::Create(std::move(options), &clock_);
         return Verify(*chain_->SignReport(Fields()), vcek_);
       },
       "no trusted ARK"},
  };
  for (const Case& c : cases) {
    verifier_ = MakeVerifier(TrustAnchors());
    vcek_ = *chain_->IssueVcek({tcb_, chip_id_});
    auto result = c.run();
    EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated) << c.name;
    EXPECT_THAT(result.status().message(), HasSubstr(c.error)) << c.name;
  }
}

TEST_F(GeneratedSnpTest, ArkCrlRevokesVceks) {
  std::string report = *chain_->SignReport(Fields());
  // A CRL that revokes something else changes nothing.
  ASSERT_TRUE(collateral_->StoreCrl(Product::kGenoa, *chain_->MakeCrl({77})).ok());
  verifier_ = MakeVerifier(TrustAnchors());
  ASSERT_TRUE(Verify(report, vcek_).ok());
  // The ARK's CRL lists what the ARK issued: revoking the ASK (serial 2 in
  // the generator) fails every VCEK under it; a CRL not signed by the ARK
  // is ignored.
  ASSERT_TRUE(collateral_->StoreCrl(Product::kGenoa, *chain_->MakeCrl({2})).ok());
  verifier_ = MakeVerifier(TrustAnchors());
  auto revoked = Verify(report, vcek_);
  EXPECT_EQ(revoked.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(revoked.status().message(), HasSubstr("revoked by the ARK CRL"));
  ASSERT_TRUE(collateral_->StoreCrl(Product::kGenoa, *other_chain_->MakeCrl({2})).ok());
  verifier_ = MakeVerifier(TrustAnchors());
  EXPECT_TRUE(Verify(report, vcek_).ok());
}

TEST_F(GeneratedSnpTest, VcekFromCollateralWhenNotInEvidence) {
  std::string report = *chain_->SignReport(Fields());
  auto json = testing::SnpTestChain::EvidenceJson(report, vcek_);
  (*json)["cert_chain"] = nullptr;
  EXPECT_THAT(verifier_->Verify(*json, binding_).status().message(), HasSubstr("no VCEK"));
  ASSERT_TRUE(collateral_->StoreVcek({Product::kGenoa, chip_id_, tcb_}, vcek_).ok());
  auto claims = verifier_->Verify(*json, binding_);
  ASSERT_TRUE(claims.ok()) << claims.status();
}

TEST_F(GeneratedSnpTest, VlekChain) {
  auto vlek = *chain_->IssueVlek({tcb_, chip_id_}, "cloud.example");
  testing::SnpReportFields f = Fields();
  f.signing_key = 1;
  auto json = testing::SnpTestChain::EvidenceJson(*chain_->SignReport(f), vlek, "VLEK");
  auto claims = verifier_->Verify(*json, binding_);
  ASSERT_TRUE(claims.ok()) << claims.status();
  EXPECT_EQ(claims->claims()["signer"], "vlek");
  // A VLEK offered as a VCEK is refused.
  auto as_vcek = testing::SnpTestChain::EvidenceJson(*chain_->SignReport(Fields()), vlek, "VCEK");
  EXPECT_FALSE(verifier_->Verify(*as_vcek, binding_).ok());
}

TEST_F(GeneratedSnpTest, TruncatedAndOversizedEvidence) {
  std::string report = *chain_->SignReport(Fields());
  auto json = *testing::SnpTestChain::EvidenceJson(report, vcek_);
  Json truncated = json;
  truncated["attestation_report"]["measurement"].erase(0);
  EXPECT_EQ(verifier_->Verify(truncated, binding_).status().code(),
            absl::StatusCode::kInvalidArgument);
  Json oversized = json;
  oversized["attestation_report"]["report_data"].push_back(0);
  EXPECT_EQ(verifier_->Verify(oversized, binding_).status().code(),
            absl::StatusCode::kInvalidArgument);
  Json bad_byte = json;
  bad_byte["attestation_report"]["chip_id"][0] = 256;
  EXPECT_EQ(verifier_->Verify(bad_byte, binding_).status().code(),
            absl::StatusCode::kInvalidArgument);
  Json bad_cert = json;
  bad_cert["cert_chain"][0]["data"] = Json::array({1, 2, 3});
  EXPECT_EQ(verifier_->Verify(bad_cert, binding_).status().code(),
            absl::StatusCode::kInvalidArgument);
}

// A v3+ report names its product by CPUID: one outside the product table
// fails, whatever the certificate says.
TEST_F(GeneratedSnpTest, UnknownCpuidFails) {
  testing::SnpReportFields f = Fields();
  f.cpuid_family = 0x17;  // Zen 2 (Rome): no SEV-SNP product
  f.cpuid_model = 0x31;
  auto result = Verify(*chain_->SignReport(f), vcek_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(result.status().message(),
              HasSubstr("unknown AMD product: the report's CPUID family 0x17 model 0x31"));
  // Nor can such a report find a VCEK in the collateral.
  auto json = testing::SnpTestChain::EvidenceJson(*chain_->SignReport(f), vcek_);
  (*json)["cert_chain"] = nullptr;
  EXPECT_THAT(verifier_->Verify(*json, binding_).status().message(),
              HasSubstr("unknown AMD product"));
}

// Chains are looked up by signer type: a file serves only with an
// intermediate of the signer's role, and only that role's certificates come
// back. AMD's combined ASK/ARK/ASVK bundle serves both.
TEST_F(GeneratedSnpTest, DirectoryChainLookupIsSignerAware) {
  auto roles = [](const ChainCollateral& chain) {
    std::vector<AmdCaRole> out;
    for (const std::string& der : chain.certs_der) {
      out.push_back(CaRoleOf(common::ParseDerCertificate(common::AsSpan(der))->get()));
    }
    return out;
  };
  const absl::Time deadline = absl::Now() + absl::Seconds(1);
  // The combined bundle (stored as cert_chain.pem by SetUp).
  auto vcek_chain = collateral_->GetChain(Product::kGenoa, SignerType::kVcek, deadline);
  ASSERT_TRUE(vcek_chain.ok()) << vcek_chain.status();
  EXPECT_THAT(roles(*vcek_chain), ::testing::ElementsAre(AmdCaRole::kAsk, AmdCaRole::kArk));
  auto vlek_chain = collateral_->GetChain(Product::kGenoa, SignerType::kVlek, deadline);
  ASSERT_TRUE(vlek_chain.ok()) << vlek_chain.status();
  EXPECT_THAT(roles(*vlek_chain), ::testing::ElementsAre(AmdCaRole::kArk, AmdCaRole::kAsvk));

  // KDS's VCEK chain (ASK, ARK) does not answer for a VLEK, nor its VLEK
  // chain (ASVK, ARK) for a VCEK, whichever file holds it.
  std::vector<std::string> ask_ark = vcek_chain->certs_der;
  std::vector<std::string> asvk_ark = vlek_chain->certs_der;
  for (bool swapped : {false, true}) {
    std::string dir = TempDir("snp_signer_aware");
    DirectoryCollateral only_vcek(dir);
    ASSERT_TRUE(only_vcek
                    .StoreChain(Product::kGenoa, swapped ? SignerType::kVlek : SignerType::kVcek,
                                kbs::testing::PemOfDers(ask_ark))
                    .ok());
    EXPECT_TRUE(only_vcek.GetChain(Product::kGenoa, SignerType::kVcek, deadline).ok());
    EXPECT_EQ(only_vcek.GetChain(Product::kGenoa, SignerType::kVlek, deadline).status().code(),
              absl::StatusCode::kNotFound);

    dir = TempDir("snp_signer_aware");
    DirectoryCollateral only_vlek(dir);
    ASSERT_TRUE(only_vlek
                    .StoreChain(Product::kGenoa, swapped ? SignerType::kVcek : SignerType::kVlek,
                                kbs::testing::PemOfDers(asvk_ark))
                    .ok());
    EXPECT_TRUE(only_vlek.GetChain(Product::kGenoa, SignerType::kVlek, deadline).ok());
    EXPECT_EQ(only_vlek.GetChain(Product::kGenoa, SignerType::kVcek, deadline).status().code(),
              absl::StatusCode::kNotFound);
  }

  // End to end: with only a VCEK chain at hand, a VLEK-signed report finds
  // no chain at all (and with KDS configured, KDS is asked for the VLEK
  // chain: kds_test.cc).
  std::string dir = TempDir("snp_signer_aware");
  DirectoryCollateral only_vcek(dir);
  ASSERT_TRUE(
      only_vcek.StoreChain(Product::kGenoa, SignerType::kVcek, kbs::testing::PemOfDers(ask_ark))
          .ok());
  SnpVerifierOptions options;
  ASSERT_TRUE(options.anchors.Add(Product::kGenoa, chain_->ArkFingerprintHex()).ok());
  options.collateral = &only_vcek;
  auto verifier = SnpVerifier::Create(std::move(options), &clock_);
  auto vlek = *chain_->IssueVlek({tcb_, chip_id_}, "cloud.example");
  testing::SnpReportFields f = Fields();
  f.signing_key = 1;
  auto json = testing::SnpTestChain::EvidenceJson(*chain_->SignReport(f), vlek, "VLEK");
  auto result = verifier->Verify(*json, binding_);
  EXPECT_EQ(result.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(result.status().message(), HasSubstr("no trusted ARK for Genoa"));
}

// Turin VCEKs carry fmcSPL, and it must equal REPORTED_TCB's FMC: a VCEK
// without it does not pass for a report whose FMC is 0.
TEST(GeneratedTurinTest, TurinVcekMustCarryTheReportedFmc) {
  auto chain = testing::SnpTestChain::Create(Product::kTurin);
  ASSERT_TRUE(chain.ok()) << chain.status();
  std::string dir = TempDir("snp_turin_collateral");
  DirectoryCollateral collateral(dir);
  ASSERT_TRUE(collateral.StoreChain(Product::kTurin, SignerType::kVcek, (*chain)->ChainPem()).ok());
  common::FakeClock clock(At("2026-06-01T00:00:00Z"));
  SnpVerifierOptions options;
  ASSERT_TRUE(options.anchors.Add(Product::kTurin, (*chain)->ArkFingerprintHex()).ok());
  options.collateral = &collateral;
  auto verifier = SnpVerifier::Create(std::move(options), &clock);

  TcbVersion tcb;
  tcb.fmc = 0;
  tcb.bootloader = 1;
  tcb.snp = 3;
  tcb.microcode = 9;
  const std::string chip(8, '\x42');  // Turin: 8-byte hwID
  testing::SnpReportFields f;
  f.cpuid_family = 0x1A;  // Turin
  f.cpuid_model = 0x02;
  f.reported_tcb = tcb;
  f.chip_id = chip;
  auto verify = [&](std::optional<uint8_t> fmc) {
    testing::SnpCertOptions o{tcb, chip};
    o.product_name = "Turin";
    o.tcb.fmc = fmc;
    auto vcek = (*chain)->IssueVcek(o);
    if (!vcek.ok()) return absl::StatusOr<VerifiedClaims>(vcek.status());
    SnpEvidence evidence{*(*chain)->SignReport(f), {{"VCEK", *vcek}}};
    return verifier->VerifyEvidence(evidence, {std::nullopt, std::nullopt, clock.Now()});
  };
  auto good = verify(0);
  ASSERT_TRUE(good.ok()) << good.status();
  EXPECT_EQ(good->claims()["product"], "Turin");
  EXPECT_EQ(good->claims()["reported_tcb"]["fmc"], 0);

  auto missing = verify(std::nullopt);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(missing.status().message(), HasSubstr("TCB mismatch"));
  EXPECT_THAT(missing.status().message(), HasSubstr("no fmcSPL"));
  auto other = verify(1);
  EXPECT_EQ(other.status().code(), absl::StatusCode::kUnauthenticated);
  EXPECT_THAT(other.status().message(), HasSubstr("TCB mismatch: the VCEK is issued for fmc=1"));
}

}  // namespace
}  // namespace kbs::verifier::snp
