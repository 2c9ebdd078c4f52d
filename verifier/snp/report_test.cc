// ParseSnpReport's checks of the reserved bits inside POLICY and KEY_INFO
// (AMD SEV-SNP ABI 56860; evidence-formats.md §1.2): POLICY bit 17 must be
// one, POLICY bits 63:26 and KEY_INFO bits 31:5 must be zero, for every
// report version accepted. Every real report still parses.
#include "verifier/snp/report.h"

#include <filesystem>

#include "common/bytes.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/snp_generator.h"
#include "tests/testing/testdata.h"

namespace kbs::verifier::snp {
namespace {

using ::testing::HasSubstr;

constexpr uint32_t kVersions[] = {2, 3, 5};

void PutLe(std::string& report, size_t offset, uint64_t value, size_t size) {
  for (size_t i = 0; i < size; ++i) report[offset + i] = static_cast<char>(value >> (8 * i));
}

// An unsigned report of `version` that parses: ECDSA P-384, policy 0x30000
// (SMT allowed, bit 17 set), KEY_INFO 0.
std::string Report(uint32_t version, uint64_t policy = 0x30000, uint32_t key_info = 0) {
  std::string report(kReportSize, '\0');
  PutLe(report, 0x000, version, 4);
  PutLe(report, 0x008, policy, 8);
  PutLe(report, 0x034, 1, 4);
  PutLe(report, 0x048, key_info, 4);
  return report;
}

absl::StatusOr<SnpReport> Parse(const std::string& report) {
  return ParseSnpReport(common::AsSpan(report));
}

TEST(SnpReportReservedBitsTest, PolicyBit17MustBeOne) {
  for (uint32_t version : kVersions) {
    ASSERT_TRUE(Parse(Report(version)).ok()) << version;
    // Nothing, SMT only, DEBUG | SMT (set SNP-4's policy without bit 17).
    for (uint64_t policy : {uint64_t{0}, uint64_t{0x10000}, uint64_t{0x90000}}) {
      auto parsed = Parse(Report(version, policy));
      ASSERT_FALSE(parsed.ok()) << "v" << version << " policy 0x" << std::hex << policy;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(parsed.status().message(),
                  HasSubstr("POLICY (offset 0x8) reserved bit 17 must be 1"));
    }
  }
}

TEST(SnpReportReservedBitsTest, PolicyBits63To26MustBeZero) {
  for (uint32_t version : kVersions) {
    for (int bit = 26; bit < 64; ++bit) {
      auto parsed = Parse(Report(version, 0x30000 | (uint64_t{1} << bit)));
      ASSERT_FALSE(parsed.ok()) << "v" << version << " bit " << bit;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(parsed.status().message(),
                  HasSubstr("POLICY (offset 0x8) reserved bits 63:26 must be zero"))
          << bit;
    }
  }
}

// ABI minor/major, SMT, MIGRATE_MA, DEBUG, SINGLE_SOCKET and the bits newer
// firmware defines (CXL_ALLOW, MEM_AES_256_XTS, RAPL_DIS, CIPHERTEXT_HIDING,
// PAGE_SWAP_DISABLE) are not reserved, whatever the report version.
TEST(SnpReportReservedBitsTest, DefinedPolicyBitsAreAccepted) {
  for (uint32_t version : kVersions) {
    for (int bit = 0; bit < 26; ++bit) {
      const uint64_t policy = (uint64_t{1} << 17) | (uint64_t{1} << bit);
      auto parsed = Parse(Report(version, policy));
      ASSERT_TRUE(parsed.ok()) << "v" << version << " bit " << bit << ": " << parsed.status();
      EXPECT_EQ(parsed->policy, policy);
    }
    auto all = Parse(Report(version, (uint64_t{1} << 26) - 1));
    ASSERT_TRUE(all.ok()) << all.status();
  }
}

TEST(SnpReportReservedBitsTest, KeyInfoBits31To5MustBeZero) {
  for (uint32_t version : kVersions) {
    for (int bit = 5; bit < 32; ++bit) {
      auto parsed = Parse(Report(version, 0x30000, uint32_t{1} << bit));
      ASSERT_FALSE(parsed.ok()) << "v" << version << " bit " << bit;
      EXPECT_EQ(parsed.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(parsed.status().message(),
                  HasSubstr("KEY_INFO (offset 0x48) reserved bits 31:5 must be zero"))
          << bit;
    }
    // AUTHOR_KEY_EN, MASK_CHIP_KEY and SIGNING_KEY parse; the verifier
    // judges the signing key.
    for (uint32_t key_info : {0x0u, 0x1u, 0x2u, 0x4u, 0x1Fu}) {
      auto parsed = Parse(Report(version, 0x30000, key_info));
      ASSERT_TRUE(parsed.ok()) << key_info << ": " << parsed.status();
      EXPECT_EQ(parsed->key_info, key_info);
    }
  }
}

// A correctly signed report is refused at parse time all the same.
TEST(SnpReportReservedBitsTest, SignedReportsWithReservedBitsAreRejected) {
  auto chain = testing::SnpTestChain::Create(Product::kGenoa);
  ASSERT_TRUE(chain.ok()) << chain.status();
  testing::SnpCertOptions cert{testing::PlausibleTcb(), std::string(64, '\x42')};
  ASSERT_TRUE((*chain)->IssueVcek(cert).ok());
  testing::SnpReportFields fields;
  fields.reported_tcb = cert.tcb;
  fields.chip_id = cert.chip_id;
  auto good = (*chain)->SignReport(fields);
  ASSERT_TRUE(good.ok()) << good.status();
  ASSERT_TRUE(Parse(*good).ok());
  for (uint64_t policy : {uint64_t{0x10000}, uint64_t{0x30000} | (uint64_t{1} << 40)}) {
    fields.policy = policy;
    auto bad = (*chain)->SignReport(fields);
    ASSERT_TRUE(bad.ok()) << bad.status();
    EXPECT_THAT(Parse(*bad).status().message(), HasSubstr("POLICY (offset 0x8) reserved"));
  }
}

// The real reports (PROVENANCE.md sets SNP-1..5) carry policies 0x30000,
// 0x3001f and 0xb0000 and KEY_INFO 0 (VCEK) or 0x4 (VLEK): all parse.
TEST(SnpReportReservedBitsTest, RealReportsParse) {
  const std::string dir = kbs::testing::TestDataDir() + "/snp";
  if (!std::filesystem::exists(dir)) {
    GTEST_SKIP() << "real SNP evidence not found: set KBS_TESTDATA to shared/testdata";
  }
  struct Expected {
    const char* file;
    uint32_t version;
    uint64_t policy;
    uint32_t key_info;
  };
  for (const Expected& e : {Expected{"genoa-v3-trustee-report.derived.bin", 3, 0x30000, 0},
                            Expected{"milan-v2-trustee-report.bin", 2, 0x3001f, 0},
                            Expected{"milan-v2-virtee-report.derived.bin", 2, 0x30000, 0},
                            Expected{"milan-v2-gosevguest-report.bin", 2, 0xb0000, 0},
                            Expected{"milan-v3-aws-vlek-report.bin", 3, 0x30000, 0x4}}) {
    auto bytes = common::ReadFile(dir + "/" + e.file);
    ASSERT_TRUE(bytes.ok()) << bytes.status();
    auto parsed = Parse(*bytes);
    ASSERT_TRUE(parsed.ok()) << e.file << ": " << parsed.status();
    EXPECT_EQ(parsed->version, e.version) << e.file;
    EXPECT_EQ(parsed->policy, e.policy) << e.file;
    EXPECT_EQ(parsed->key_info, e.key_info) << e.file;
  }
}

}  // namespace
}  // namespace kbs::verifier::snp
