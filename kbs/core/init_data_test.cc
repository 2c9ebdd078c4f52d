#include "kbs/core/init_data.h"

#include "common/encoding.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs {
namespace {

using ::testing::HasSubstr;

// A CoCo init-data document in the shape the guest-components use.
constexpr char kInitData[] = R"(version = "0.1.0"
algorithm = "sha256"
[data]
"aa.toml" = '''
[token_configs]
[token_configs.kbs]
url = "http://kbs:8080"
'''
"policy.rego" = '''
package agent_policy
default AllowRequestsFailingPolicy := true
'''
)";

TEST(InitDataTest, DigestIsOverRawBytesWithDeclaredAlgorithm) {
  auto parsed = ParseInitData("toml", kInitData);
  ASSERT_TRUE(parsed.ok()) << parsed.status();
  EXPECT_EQ(parsed->algorithm, common::HashAlgorithm::kSha256);
  EXPECT_EQ(parsed->version, "0.1.0");
  EXPECT_EQ(parsed->digest, common::Sha256(kInitData));
  EXPECT_THAT(parsed->claims["aa.toml"].get<std::string>(), HasSubstr("http://kbs:8080"));
  EXPECT_TRUE(parsed->claims.contains("policy.rego"));
}

TEST(InitDataTest, LargeEntriesAreSummarized) {
  std::string big(5000, 'a');
  std::string doc = "algorithm = \"sha512\"\n[data]\nbig = \"" + big + "\"\n";
  auto parsed = ParseInitData("toml", doc);
  ASSERT_TRUE(parsed.ok());
  EXPECT_EQ(parsed->digest.size(), 64u);
  EXPECT_EQ(parsed->claims["big"]["bytes"], 5000);
  EXPECT_EQ(parsed->claims["big"]["sha256"], common::HexEncode(common::Sha256(big)));
}

TEST(InitDataTest, RejectsBadDocuments) {
  EXPECT_THAT(ParseInitData("json", "{}").status().message(), HasSubstr("only toml"));
  EXPECT_THAT(ParseInitData("toml", "algorithm = ").status().message(), HasSubstr("line 1"));
  EXPECT_THAT(ParseInitData("toml", "version = \"0.1.0\"").status().message(),
              HasSubstr("algorithm"));
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sm3\"").ok());
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sha256\"\ndata = 1").ok());
  EXPECT_FALSE(ParseInitData("toml", "algorithm = \"sha256\"\n[data]\nx = 1").ok());
}

}  // namespace
}  // namespace kbs
