#include "verifier/tdx/eventlog.h"

#include <algorithm>
#include <cstdlib>
#include <filesystem>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "tests/testing/testdata.h"

namespace kbs::verifier::tdx {
namespace {

using ::testing::HasSubstr;

// Real logs and quotes, read through KBS_TESTDATA
// (see ../shared/testdata/PROVENANCE.md, sets TDX-F and TDX-A).
#define REQUIRE_TESTDATA()                                                                \
  if (!std::filesystem::exists(kbs::testing::TestDataDir() +                              \
                               "/tdx/gotdx-gcp-cos-ccel-eventlog.bin")) {                 \
    GTEST_SKIP() << "real TDX event logs not found: set KBS_TESTDATA to shared/testdata"; \
  }

std::string Read(const std::string& relative) {
  auto data = common::ReadFile(kbs::testing::TestDataDir() + "/" + relative);
  EXPECT_TRUE(data.ok()) << data.status();
  return data.value_or("");
}

absl::StatusOr<CcEventLog> Parse(absl::string_view bytes) {
  return ParseCcEventLog(common::AsSpan(bytes));
}

std::string Sha384(absl::string_view data) {
  return common::Digest(common::HashAlgorithm::kSha384, data);
}

std::string Hex(absl::string_view raw) { return common::HexEncode(raw); }

// ---------------------------------------------------------------------------
// Generated logs.

void PutU16(std::string& out, uint16_t v) {
  out.push_back(static_cast<char>(v));
  out.push_back(static_cast<char>(v >> 8));
}
void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

using AlgSizes = std::vector<std::pair<uint16_t, uint16_t>>;
using Digests = std::vector<std::pair<uint16_t, std::string>>;

// A TCG_EfiSpecIDEventStruct declaring `algs`.
std::string SpecIdData(const AlgSizes& algs, absl::string_view vendor = "") {
  std::string out("Spec ID Event03\0", 16);
  PutU32(out, 0);    // platformClass
  out.push_back(0);  // specVersionMinor
  out.push_back(2);  // specVersionMajor
  out.push_back(0);  // specErrata
  out.push_back(2);  // uintnSize (UINT64)
  PutU32(out, static_cast<uint32_t>(algs.size()));
  for (auto [id, size] : algs) {
    PutU16(out, id);
    PutU16(out, size);
  }
  out.push_back(static_cast<char>(vendor.size()));
  out.append(vendor.data(), vendor.size());
  return out;
}

// The leading SHA-1-format TCG_PCR_EVENT carrying `spec_id`.
std::string Header(absl::string_view spec_id, uint32_t type = kEvNoAction) {
  std::string out;
  PutU32(out, 0);
  PutU32(out, type);
  out.append(20, '\0');
  PutU32(out, static_cast<uint32_t>(spec_id.size()));
  out.append(spec_id.data(), spec_id.size());
  return out;
}

std::string Sha384OnlyHeader() { return Header(SpecIdData({{kTpmAlgSha384, 48}})); }

// A TCG_PCR_EVENT2 record.
std::string Event2(uint32_t mr_index, uint32_t type, const Digests& digests,
                   absl::string_view data) {
  std::string out;
  PutU32(out, mr_index);
  PutU32(out, type);
  PutU32(out, static_cast<uint32_t>(digests.size()));
  for (const auto& [alg, digest] : digests) {
    PutU16(out, alg);
    out.append(digest);
  }
  PutU32(out, static_cast<uint32_t>(data.size()));
  out.append(data.data(), data.size());
  return out;
}

// A SHA-384-only record whose digest is SHA-384(data), as firmware logs it.
std::string Event(uint32_t mr_index, uint32_t type, absl::string_view data) {
  return Event2(mr_index, type, {{kTpmAlgSha384, Sha384(data)}}, data);
}

// ---------------------------------------------------------------------------
// Real logs.

TEST(RealEventLogTest, GcpLogReplaysToTheQuoteRtmrs) {
  REQUIRE_TESTDATA();
  std::string quote = Read("tdx/gotdx-gcp-cos-tdx-v4-quote.dat");
  // TDX quote v4: 48-byte header, then the TD report body with RTMR0..3 at
  // body offset 328 (evidence-formats.md §2.2).
  constexpr size_t kRtmrOffset = 48 + 328;
  ASSERT_GE(quote.size(), kRtmrOffset + 4 * kSha384Size);
  auto log = Parse(Read("tdx/gotdx-gcp-cos-ccel-eventlog.bin"));
  ASSERT_TRUE(log.ok()) << log.status();

  // 43 TCG_PCR_EVENT2 records (none of them EV_NO_ACTION) after the Spec ID
  // event, as PROVENANCE.md counts them.
  EXPECT_EQ(log->events.size(), 43u);
  for (const CcEvent& e : log->events) {
    EXPECT_NE(e.type, kEvNoAction);
    EXPECT_EQ(e.sha384.size(), kSha384Size);
  }
  ASSERT_EQ(log->spec_id.algorithms.size(), 1u);
  EXPECT_EQ(log->spec_id.algorithms[0].id, kTpmAlgSha384);
  EXPECT_EQ(log->spec_id.algorithms[0].digest_size, 48);

  std::array<std::string, 4> rtmrs = ReplayRtmrs(*log);
  for (size_t i = 0; i < 4; ++i) {
    EXPECT_EQ(Hex(rtmrs[i]), Hex(quote.substr(kRtmrOffset + i * kSha384Size, kSha384Size)))
        << "RTMR" << i;
  }
  // The same values, as PROVENANCE.md (set TDX-F) records them.
  EXPECT_EQ(
      Hex(rtmrs[0]),
      "3fa2f61f395b7f5feefb4ec2df61297f109ad8abcd6410c1b7df60f21f37b19297fc35e544039c7e1edece7"
      "52afd17f6");
  EXPECT_EQ(Hex(rtmrs[3]), std::string(96, '0'));

  common::Json claims = EventLogClaims(*log);
  ASSERT_EQ(claims.size(), 43u);
  EXPECT_EQ(claims[0]["type"], "EV_EFI_HANDOFF_TABLES2");
  EXPECT_EQ(claims[8]["data"], "ACPI DATA");
  const common::Json& cmdline = claims[40];
  EXPECT_EQ(cmdline["index"], 3);
  EXPECT_EQ(cmdline["type"], "EV_IPL");
  EXPECT_EQ(cmdline["type_value"], kEvIpl);
  EXPECT_EQ(cmdline["digest"], Hex(log->events[40].sha384));
  ASSERT_TRUE(cmdline.contains("data"));
  EXPECT_THAT(cmdline["data"].get<std::string>(),
              ::testing::StartsWith("kernel_cmdline: /syslinux/vmlinuz.A"));
  // UEFI variable events hold UCS-2 names and binary data: no "data".
  EXPECT_FALSE(claims[2].contains("data"));
}

TEST(RealEventLogTest, TrusteeLogParses) {
  REQUIRE_TESTDATA();
  // Documented not to match its quote: only the structure is checked.
  auto log = Parse(Read("tdx/trustee-CCEL_data.bin"));
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->events.size(), 5u);
  EXPECT_EQ(log->spec_id.vendor_info, "td-shim");
  std::array<std::string, 4> rtmrs = ReplayRtmrs(*log);
  EXPECT_EQ(Hex(rtmrs[0]).substr(0, 8), "2dc71230");
  EXPECT_EQ(Hex(rtmrs[1]).substr(0, 8), "0fa3be56");
  common::Json claims = EventLogClaims(*log);
  ASSERT_EQ(claims.size(), 5u);
  EXPECT_EQ(claims[0]["type"], "EV_PLATFORM_CONFIG_FLAGS");
  EXPECT_EQ(claims[1]["type"], "EV_SEPARATOR");
}

// ---------------------------------------------------------------------------
// Replay.

TEST(EventLogTest, ReplayMatchesAHandComputation) {
  std::string a = Sha384("a"), b = Sha384("b"), c = Sha384("c"), d = Sha384("d");
  std::string log_bytes = Sha384OnlyHeader();
  log_bytes += Event2(1, 0x80000008, {{kTpmAlgSha384, a}}, "blob");
  log_bytes += Event2(1, kEvNoAction, {{kTpmAlgSha384, Sha384("skipped")}}, "StartupLocality");
  log_bytes += Event2(2, 0x80000003, {{kTpmAlgSha384, b}}, "app");
  log_bytes += Event2(2, 4, {{kTpmAlgSha384, c}}, std::string(4, '\0'));
  log_bytes += Event2(4, 6, {{kTpmAlgSha384, d}}, "tag");
  log_bytes += Event2(0, 1, {{kTpmAlgSha384, Sha384("mrtd")}}, "mrtd");  // not replayed
  auto log = Parse(log_bytes);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->events.size(), 6u);
  EXPECT_EQ(log->events[1].type, kEvNoAction);

  std::string zero(48, '\0');
  std::array<std::string, 4> rtmrs = ReplayRtmrs(*log);
  EXPECT_EQ(Hex(rtmrs[0]), Hex(Sha384(zero + a)));
  EXPECT_EQ(Hex(rtmrs[1]), Hex(Sha384(Sha384(zero + b) + c)));
  EXPECT_EQ(Hex(rtmrs[2]), Hex(zero));
  EXPECT_EQ(Hex(rtmrs[3]), Hex(Sha384(zero + d)));
}

TEST(EventLogTest, EmptyLogReplaysToZeros) {
  auto log = Parse(Sha384OnlyHeader());
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_TRUE(log->events.empty());
  for (const std::string& rtmr : ReplayRtmrs(*log)) EXPECT_EQ(rtmr, std::string(48, '\0'));
}

TEST(EventLogTest, PicksTheSha384DigestAmongSeveral) {
  std::string sha256(32, '\x22'), sha384(48, '\x33'), sm3(32, '\x44');
  std::string log_bytes =
      Header(SpecIdData({{kTpmAlgSha256, 32}, {kTpmAlgSha384, 48}, {0x0012, 32}}, "vendor"));
  log_bytes += Event2(1, 1, {{0x0012, sm3}, {kTpmAlgSha384, sha384}, {kTpmAlgSha256, sha256}}, "x");
  log_bytes += Event2(1, 1, {{kTpmAlgSha384, sha384}}, "y");
  // EV_NO_ACTION records need no SHA-384 digest.
  log_bytes += Event2(1, kEvNoAction, {{kTpmAlgSha256, sha256}}, "z");
  auto log = Parse(log_bytes);
  ASSERT_TRUE(log.ok()) << log.status();
  ASSERT_EQ(log->events.size(), 3u);
  EXPECT_EQ(log->spec_id.vendor_info, "vendor");
  EXPECT_EQ(log->events[0].sha384, sha384);
  EXPECT_EQ(log->events[1].sha384, sha384);
  EXPECT_EQ(log->events[2].sha384, "");
  EXPECT_EQ(log->events[0].data, "x");
}

TEST(EventLogTest, EndsAtPaddingOrTerminator) {
  std::string body = Sha384OnlyHeader() + Event(1, 1, "one") + Event(2, 1, "two");
  for (std::string tail : {std::string(), std::string(1000, '\xff'), std::string(1000, '\0'),
                           std::string(3, '\xff'), std::string(7, '\0'), std::string(8, '\0')}) {
    auto log = Parse(body + tail);
    ASSERT_TRUE(log.ok()) << log.status() << " tail " << tail.size();
    EXPECT_EQ(log->events.size(), 2u);
  }
  // What follows a terminator is not read.
  std::string terminated = body;
  PutU32(terminated, 0xFFFFFFFF);
  terminated += "garbage";
  auto log = Parse(terminated);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->events.size(), 2u);
  // A short tail that is not padding is a truncated record.
  EXPECT_FALSE(Parse(body + std::string("\x01\x00", 2)).ok());
}

// ---------------------------------------------------------------------------
// Malformed logs.

TEST(EventLogTest, TruncationAtEveryLengthFailsCleanly) {
  std::vector<std::string> records = {Sha384OnlyHeader(), Event(1, 0x80000007, "action"),
                                      Event(3, kEvIpl, "kernel_cmdline: console=ttyS0"),
                                      Event(2, 4, std::string(4, '\0'))};
  std::string full;
  std::vector<std::pair<size_t, size_t>> boundaries;  // {length, events}
  for (size_t i = 0; i < records.size(); ++i) {
    full += records[i];
    boundaries.push_back({full.size(), i});
  }
  for (size_t len = 0; len <= full.size(); ++len) {
    auto log = Parse(absl::string_view(full).substr(0, len));
    auto boundary = std::find_if(boundaries.begin(), boundaries.end(),
                                 [len](const auto& b) { return b.first == len; });
    if (boundary != boundaries.end()) {
      ASSERT_TRUE(log.ok()) << "length " << len << ": " << log.status();
      EXPECT_EQ(log->events.size(), boundary->second);
    } else {
      ASSERT_FALSE(log.ok()) << "length " << len;
      EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
      EXPECT_THAT(log.status().message(), HasSubstr("CC event log record"));
    }
  }
}

TEST(EventLogTest, DigestCountZeroIsRejected) {
  std::string bad = Sha384OnlyHeader() + Event(1, 1, "ok");
  size_t offset = bad.size();
  bad += Event2(1, 1, {}, "none");
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr(absl::StrCat("record 2 at offset ", offset)));
  EXPECT_THAT(log.status().message(), HasSubstr("digest count 0"));
}

TEST(EventLogTest, DigestCountAboveAlgorithmsIsRejected) {
  std::string bad = Sha384OnlyHeader() +
                    Event2(1, 1, {{kTpmAlgSha384, Sha384("x")}, {kTpmAlgSha384, Sha384("y")}}, "");
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("digest count 2"));
}

TEST(EventLogTest, RepeatedAlgorithmIsRejected) {
  std::string bad = Header(SpecIdData({{kTpmAlgSha256, 32}, {kTpmAlgSha384, 48}})) +
                    Event2(1, 1, {{kTpmAlgSha384, Sha384("x")}, {kTpmAlgSha384, Sha384("y")}}, "");
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("repeated"));
}

TEST(EventLogTest, UndeclaredAlgorithmIsRejected) {
  std::string bad = Sha384OnlyHeader() + Event2(1, 1, {{kTpmAlgSha256, std::string(32, 'x')}}, "");
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_EQ(log.status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_THAT(log.status().message(), HasSubstr("0x000b is not declared"));
}

TEST(EventLogTest, HugeEventSizeIsRejected) {
  std::string bad = Sha384OnlyHeader();
  size_t offset = bad.size();
  PutU32(bad, 1);
  PutU32(bad, kEvIpl);
  PutU32(bad, 1);
  PutU16(bad, kTpmAlgSha384);
  bad += Sha384("x");
  PutU32(bad, 0xFFFFFFF0);
  bad += "short";
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr(absl::StrCat("record 1 at offset ", offset)));
  EXPECT_THAT(log.status().message(), HasSubstr("event: need 4294967280 bytes"));
}

TEST(EventLogTest, MissingSpecIdEventIsRejected) {
  // A log that starts directly with a TCG_PCR_EVENT2 record.
  auto log = Parse(Event(1, 1, "x") + Event(1, 1, "y"));
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("record 0 at offset 0"));
  EXPECT_THAT(log.status().message(), HasSubstr("no Spec ID event"));
  // Right shape, wrong signature.
  std::string spec = SpecIdData({{kTpmAlgSha384, 48}});
  spec[14] = '2';
  log = Parse(Header(spec));
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("no Spec ID event"));
  // Right signature, not EV_NO_ACTION.
  log = Parse(Header(SpecIdData({{kTpmAlgSha384, 48}}), /*type=*/1));
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("no Spec ID event"));
  EXPECT_FALSE(Parse("").ok());
}

TEST(EventLogTest, MalformedSpecIdEventIsRejected) {
  auto expect_error = [](const std::string& spec, absl::string_view what) {
    auto log = Parse(Header(spec));
    ASSERT_FALSE(log.ok()) << what;
    EXPECT_THAT(log.status().message(), HasSubstr(what));
  };
  expect_error(SpecIdData({{kTpmAlgSha256, 32}}), "does not declare SHA-384");
  expect_error(SpecIdData({}), "declares 0 algorithms");
  expect_error(SpecIdData({{kTpmAlgSha384, 32}}), "0x000c with digest size 32");
  expect_error(SpecIdData({{kTpmAlgSha384, 48}, {kTpmAlgSha384, 48}}), "twice");
  expect_error(SpecIdData({{kTpmAlgSha384, 48}, {0x0012, 0}}), "digest size 0");
  expect_error(SpecIdData({{kTpmAlgSha384, 48}}) + "x", "1 trailing bytes");
  std::string spec = SpecIdData({{kTpmAlgSha384, 48}});
  expect_error(spec.substr(0, spec.size() - 1), "vendorInfoSize");
  // numberOfAlgorithms far beyond what the event holds.
  std::string many = SpecIdData({{kTpmAlgSha384, 48}});
  many[24] = '\xff';
  expect_error(many, "algorithms");
}

TEST(EventLogTest, EventWithoutSha384IsRejectedWhenItExtendsAnRtmr) {
  std::string bad = Header(SpecIdData({{kTpmAlgSha256, 32}, {kTpmAlgSha384, 48}})) +
                    Event2(2, 1, {{kTpmAlgSha256, std::string(32, 'x')}}, "");
  auto log = Parse(bad);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("extends RTMR1 but has no SHA-384"));
}

TEST(EventLogTest, MrIndexOutOfRangeIsRejected) {
  auto log = Parse(Sha384OnlyHeader() + Event(5, 1, "x"));
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("MR index 5"));
}

TEST(EventLogTest, SizeAndCountLimits) {
  std::string too_big(kMaxEventLogSize + 1, '\0');
  auto log = Parse(too_big);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr("at most"));

  std::string record = Event(1, 1, "");
  std::string at_limit = Sha384OnlyHeader();
  at_limit.reserve(at_limit.size() + (kMaxEvents + 1) * record.size());
  for (size_t i = 0; i < kMaxEvents; ++i) at_limit += record;
  log = Parse(at_limit);
  ASSERT_TRUE(log.ok()) << log.status();
  EXPECT_EQ(log->events.size(), kMaxEvents);
  log = Parse(at_limit + record);
  ASSERT_FALSE(log.ok());
  EXPECT_THAT(log.status().message(), HasSubstr(absl::StrCat("more than ", kMaxEvents)));
}

// ---------------------------------------------------------------------------
// Names and claims.

TEST(EventLogTest, EventTypeNames) {
  EXPECT_EQ(EventTypeName(3), "EV_NO_ACTION");
  EXPECT_EQ(EventTypeName(0xD), "EV_IPL");
  EXPECT_EQ(EventTypeName(0x80000007), "EV_EFI_ACTION");
  EXPECT_EQ(EventTypeName(0x800000E0), "EV_EFI_VARIABLE_AUTHORITY");
  EXPECT_EQ(EventTypeName(0x800000E2), "EV_EFI_SPDM_FIRMWARE_CONFIG");
  EXPECT_EQ(EventTypeName(0x14), "");
  EXPECT_EQ(EventTypeName(0x12345678), "");
}

TEST(EventLogTest, ClaimsShowTextDataOnly) {
  std::string cmdline("kernel_cmdline: /vmlinuz console=ttyS0 root=/dev/vda1 ro\0\0", 59);
  std::string long_text(5000, 'a');
  long_text.replace(4095, 2, "\xc3\xa9");  // "é" straddling the 4096-byte cap
  std::string log_bytes = Sha384OnlyHeader();
  log_bytes += Event(3, kEvIpl, cmdline);
  log_bytes += Event(1, 4, std::string(4, '\0'));
  log_bytes += Event(1, 0x12345678, std::string("\x01\x02\x03", 3));
  log_bytes += Event(2, kEvIpl, long_text);
  log_bytes += Event(2, kEvIpl, "caf\xc3\xa9 \xe2\x82\xac\n");  // valid UTF-8
  log_bytes += Event(2, kEvIpl, "bad \xc3\x28");                // invalid UTF-8
  log_bytes += Event(2, kEvIpl, std::string("nul\0inside", 10));
  log_bytes += Event(2, kEvIpl, "c1 \xc2\x85");  // NEL, a C1 control
  auto log = Parse(log_bytes);
  ASSERT_TRUE(log.ok()) << log.status();
  common::Json claims = EventLogClaims(*log);
  ASSERT_EQ(claims.size(), 8u);

  EXPECT_EQ(claims[0]["index"], 3);
  EXPECT_EQ(claims[0]["type"], "EV_IPL");
  EXPECT_EQ(claims[0]["type_value"], 0xD);
  EXPECT_EQ(claims[0]["digest"], Hex(Sha384(cmdline)));
  EXPECT_EQ(claims[0]["data"], "kernel_cmdline: /vmlinuz console=ttyS0 root=/dev/vda1 ro");

  EXPECT_EQ(claims[1]["type"], "EV_SEPARATOR");
  EXPECT_FALSE(claims[1].contains("data"));  // all NULs
  EXPECT_EQ(claims[2]["type"], "0x12345678");
  EXPECT_EQ(claims[2]["type_value"], 0x12345678u);
  EXPECT_FALSE(claims[2].contains("data"));
  EXPECT_EQ(claims[3]["data"], std::string(4095, 'a'));  // cut before the "é"
  EXPECT_EQ(claims[4]["data"], "caf\xc3\xa9 \xe2\x82\xac\n");
  EXPECT_FALSE(claims[5].contains("data"));
  EXPECT_FALSE(claims[6].contains("data"));
  EXPECT_FALSE(claims[7].contains("data"));
  // The claims serialize (valid UTF-8 throughout).
  EXPECT_FALSE(common::DumpJson(claims).empty());
}

}  // namespace
}  // namespace kbs::verifier::tdx
