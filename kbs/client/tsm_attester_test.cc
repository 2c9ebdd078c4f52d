#include "kbs/client/tsm_attester.h"

#include <filesystem>

#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/clock.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/snp_generator.h"
#include "verifier/snp/certs.h"
#include "verifier/snp/snp_verifier.h"
#include "verifier/tdx/tdx_verifier.h"

namespace kbs::client {
namespace {

using ::testing::HasSubstr;
using verifier::snp::CertTableEntry;

// An EFI GUID in its binary form (first three fields little-endian).
std::string GuidBytes(const char* text) {
  unsigned int f[11];
  EXPECT_EQ(std::sscanf(text, "%8x-%4x-%4x-%2x%2x-%2x%2x%2x%2x%2x%2x", &f[0], &f[1], &f[2], &f[3],
                        &f[4], &f[5], &f[6], &f[7], &f[8], &f[9], &f[10]),
            11);
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(f[0] >> (8 * i)));
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(f[1] >> (8 * i)));
  for (int i = 0; i < 2; ++i) out.push_back(static_cast<char>(f[2] >> (8 * i)));
  for (int i = 3; i < 11; ++i) out.push_back(static_cast<char>(f[i]));
  return out;
}

std::string U32(uint32_t v) {
  std::string out;
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
  return out;
}

// A GHCB certificate table: the entries, a zero terminator, then the data.
std::string CertTable(const std::vector<std::pair<const char*, std::string>>& certs) {
  std::string head, data;
  const size_t start = (certs.size() + 1) * 24;
  for (const auto& [guid, der] : certs) {
    head += GuidBytes(guid) + U32(static_cast<uint32_t>(start + data.size())) +
            U32(static_cast<uint32_t>(der.size()));
    data += der;
  }
  head += std::string(24, '\0');
  return head + data;
}

constexpr char kVcek[] = "63da758d-e664-4564-adc5-f4b93be8accd";
constexpr char kAsk[] = "4ab7b379-bbac-4fe4-a02f-05aef327c782";
constexpr char kArk[] = "c0b406a4-a803-4952-9743-3fb6014cd0ae";
constexpr char kVlek[] = "a8074bc2-a25a-483e-aae6-39c045a0b8a1";

TEST(SnpCertTableTest, NamesKnownGuidsAndKeepsOthers) {
  const std::string table = CertTable({{kVcek, "vcek-der"},
                                       {kAsk, "ask"},
                                       {kArk, "ark-der!"},
                                       {kVlek, "v"},
                                       {"00112233-4455-6677-8899-aabbccddeeff", "x"}});
  auto certs = ParseSnpCertTable(table);
  ASSERT_TRUE(certs.ok()) << certs.status();
  ASSERT_EQ(certs->size(), 5u);
  EXPECT_EQ((*certs)[0].type, "VCEK");
  EXPECT_EQ((*certs)[0].der, "vcek-der");
  EXPECT_EQ((*certs)[1].type, "ASK");
  EXPECT_EQ((*certs)[1].der, "ask");
  EXPECT_EQ((*certs)[2].type, "ARK");
  EXPECT_EQ((*certs)[2].der, "ark-der!");
  EXPECT_EQ((*certs)[3].type, "VLEK");
  EXPECT_EQ((*certs)[4].type, "OTHER:00112233-4455-6677-8899-aabbccddeeff");
  // Only the terminator: no certificates.
  auto empty = ParseSnpCertTable(std::string(24, '\0'));
  ASSERT_TRUE(empty.ok());
  EXPECT_TRUE(empty->empty());
}

TEST(SnpCertTableTest, RejectsEntriesOutsideTheTable) {
  std::string table = CertTable({{kVcek, "vcek-der"}});
  // Offset past the end, length past the end, offset inside the entries.
  std::string past = table;
  past.replace(16, 4, U32(static_cast<uint32_t>(table.size() + 1)));
  EXPECT_THAT(ParseSnpCertTable(past).status().message(), HasSubstr("outside the"));
  std::string long_cert = table;
  long_cert.replace(20, 4, U32(0xFFFFFFF0u));
  EXPECT_THAT(ParseSnpCertTable(long_cert).status().message(), HasSubstr("outside the"));
  // Data must lie after the terminator, not inside the entries.
  std::string overlapping = table;
  overlapping.replace(16, 4, U32(30));
  EXPECT_THAT(ParseSnpCertTable(overlapping).status().message(), HasSubstr("outside the data"));
  // No terminator: the reader runs out of bytes.
  EXPECT_FALSE(ParseSnpCertTable(table.substr(0, 24)).ok());
  EXPECT_FALSE(ParseSnpCertTable("").ok());
  // 64 entries are accepted, 65 are not.
  std::vector<std::pair<const char*, std::string>> certs(64, {kAsk, "a"});
  EXPECT_TRUE(ParseSnpCertTable(CertTable(certs)).ok());
  certs.push_back({kAsk, "a"});
  EXPECT_THAT(ParseSnpCertTable(CertTable(certs)).status().message(),
              HasSubstr("more than 64 entries"));
}

// The evidence built from a configfs-tsm SNP report and its certificate
// table is what the SNP verifier accepts.
TEST(TsmEvidenceTest, SnpReportAndCertTableVerify) {
  auto chain = testing::SnpTestChain::Create();
  ASSERT_TRUE(chain.ok()) << chain.status();
  const verifier::snp::TcbVersion tcb = testing::PlausibleTcb();
  const std::string chip_id(64, '\x42');
  auto vcek = (*chain)->IssueVcek({tcb, chip_id});
  ASSERT_TRUE(vcek.ok()) << vcek.status();
  testing::SnpReportFields fields;
  fields.reported_tcb = tcb;
  fields.chip_id = chip_id;
  fields.report_data = std::string(64, '\x11');
  auto report = (*chain)->SignReport(fields);
  ASSERT_TRUE(report.ok()) << report.status();

  auto certs = ParseSnpCertTable(
      CertTable({{kVcek, *vcek}, {kAsk, (*chain)->AskDer()}, {kArk, (*chain)->ArkDer()}}));
  ASSERT_TRUE(certs.ok()) << certs.status();
  verifier::snp::SnpEvidence evidence{*report, *certs};
  auto json = verifier::snp::SnpEvidenceToJson(evidence);
  ASSERT_TRUE(json.ok()) << json.status();
  auto parsed = verifier::snp::ParseSnpEvidence(*json);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->report, *report);
  ASSERT_EQ(parsed->cert_chain.size(), 3u);
  EXPECT_EQ(parsed->cert_chain[0].type, "VCEK");

  verifier::snp::TrustAnchors anchors;
  ASSERT_TRUE(anchors.Add(verifier::snp::Product::kGenoa, (*chain)->ArkFingerprintHex()).ok());
  verifier::snp::SnpVerifierOptions options;
  options.anchors = std::move(anchors);
  common::FakeClock clock(absl::FromUnixSeconds(1800000000));
  auto snp = verifier::snp::SnpVerifier::Create(std::move(options), &clock);
  verifier::EvidenceBinding binding;
  binding.report_data = std::string(64, '\x11');
  auto claims = snp->Verify(*json, binding);
  ASSERT_TRUE(claims.ok()) << claims.status();
  binding.report_data = std::string(64, '\x12');
  EXPECT_FALSE(snp->Verify(*json, binding).ok());

  // Unknown types in the sev crate's serde form, and what the verifier
  // would refuse is refused before sending.
  auto other = verifier::snp::SnpEvidenceToJson(
      {*report, {{"OTHER:00112233-4455-6677-8899-aabbccddeeff", "x"}}});
  ASSERT_TRUE(other.ok()) << other.status();
  EXPECT_EQ((*other)["cert_chain"][0]["cert_type"]["OTHER"],
            "00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_EQ(verifier::snp::ParseSnpEvidence(*other)->cert_chain[0].type,
            "OTHER:00112233-4455-6677-8899-aabbccddeeff");
  EXPECT_FALSE(
      verifier::snp::SnpEvidenceToJson({*report, std::vector<CertTableEntry>(9, {"ASK", "a"})})
          .ok());
  EXPECT_FALSE(
      verifier::snp::SnpEvidenceToJson({*report, {{"VCEK", std::string(16385, 'x')}}}).ok());

  // Without certificates the chain is null, as the agent sends it.
  auto bare = verifier::snp::SnpEvidenceToJson({*report, {}});
  ASSERT_TRUE(bare.ok());
  EXPECT_TRUE((*bare)["cert_chain"].is_null());
}

TEST(TsmEvidenceTest, TdxQuoteAndEventLogRoundTrip) {
  verifier::tdx::TdxEvidence evidence{std::string("quote\x00\x01", 7), std::string("ccel")};
  auto parsed = verifier::tdx::ParseTdxEvidence(verifier::tdx::TdxEvidenceToJson(evidence));
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->quote, evidence.quote);
  EXPECT_EQ(parsed->cc_eventlog, evidence.cc_eventlog);
  evidence.cc_eventlog.reset();
  common::Json no_log = verifier::tdx::TdxEvidenceToJson(evidence);
  EXPECT_TRUE(no_log["cc_eventlog"].is_null());
  EXPECT_FALSE(verifier::tdx::ParseTdxEvidence(no_log)->cc_eventlog.has_value());
}

TEST(TsmReportTest, MissingInterfaceAndBadInput) {
  TsmOptions options;
  options.report_dir = "/nonexistent/tsm/report";
  auto missing = RequestTsmReport("rd", options);
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_THAT(missing.status().message(), HasSubstr("configfs-tsm is not available"));
  EXPECT_EQ(RequestTsmReport(std::string(65, 'x'), options).status().code(),
            absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(TsmEvidenceMaker("sample").status().code(), absl::StatusCode::kInvalidArgument);
  auto maker = TsmEvidenceMaker("snp", options);
  ASSERT_TRUE(maker.ok());
  EXPECT_EQ((*maker)("rd", std::nullopt).status().code(), absl::StatusCode::kFailedPrecondition);
}

// A directory that is not configfs: the entry it creates has none of the
// kernel's files. The request fails and leaves no entry behind.
TEST(TsmReportTest, NotConfigfsFailsAndCleansUp) {
  const std::filesystem::path dir =
      std::filesystem::path(::testing::TempDir()) / "tsm_not_configfs";
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  TsmOptions options;
  options.report_dir = dir.string();
  auto report = RequestTsmReport("rd", options);
  EXPECT_FALSE(report.ok());
  EXPECT_TRUE(std::filesystem::is_empty(dir));
  std::filesystem::remove_all(dir);
}

}  // namespace
}  // namespace kbs::client
