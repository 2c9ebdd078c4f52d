// End-to-end tests of the receipt log: the real `kbs` and `kbsctl` on
// loopback. Grants, denials and failed attestations produce receipts; an
// auditor lists them, proves one offline, verifies the whole log against the
// signed checkpoint and an earlier one; editing a row in the database makes
// `kbsctl audit verify` name it and the restarted KBS refuse to release.
#include <grpcpp/grpcpp.h>
#include <sys/resource.h>

#include <atomic>
#include <filesystem>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/jcs.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"
#include "kbs/client/kbs_client.h"
#include "kbs/receipts/note.h"
#include "kbs/storage/sqlite.h"
#include "proto/kbs/v1/kbs.grpc.pb.h"
#include "tests/testing/kbs_process.h"
#include "tests/testing/raw_http.h"

namespace kbs {
namespace {

using common::Json;
using ::testing::HasSubstr;
using testing::KbsProcess;

constexpr char kResource[] = "models/llama/key";
const std::string kMeasurement(96, 'a');

std::string Policy() {
  return absl::StrCat(R"(version: 1
rules:
  - name: llama
    resources: ["models/llama/*"]
    tee: [sample]
    measurements: {sample.measurement: [")",
                      kMeasurement, R"("]}
    labels: {route: chat}
)");
}

class AuditE2eTest : public ::testing::Test {
 protected:
  void SetUp() override {
    dir_ = std::filesystem::temp_directory_path() / absl::StrCat("audit_e2e_", ::getpid());
    std::filesystem::remove_all(dir_);
    auto keygen = Run({"admin", "keygen", "--out-dir", dir_ + "/auditor"});
    ASSERT_EQ(keygen.exit_code, 0) << keygen.output;
    Start("");
  }
  void TearDown() override {
    if (kbs_ != nullptr) kbs_->Stop();
    std::filesystem::remove_all(dir_);
  }
  void Start(const std::string& data_dir) {
    auto kbs =
        KbsProcess::Start({.extra_args = {"--auditor-public-key", dir_ + "/auditor/admin.pub"},
                           .data_dir = data_dir});
    ASSERT_TRUE(kbs.ok()) << kbs.status();
    kbs_ = *std::move(kbs);
  }
  testing::ProcessResult Run(std::vector<std::string> args) {
    args.insert(args.begin(), testing::KbsctlBinary());
    return testing::RunCommand(args);
  }
  testing::ProcessResult Audit(std::vector<std::string> args) {
    std::vector<std::string> all = {"--url", kbs_->http_url(), "audit", "--auditor-key",
                                    dir_ + "/auditor/admin.key"};
    all.insert(all.end(), args.begin(), args.end());
    return Run(all);
  }
  absl::StatusOr<std::string> Fetch(const std::string& measurement) {
    auto client = *client::NewHttpKbsClient(kbs_->http_url());
    client::RcarOptions options;
    options.evidence.claims = Json{{"measurement", measurement}};
    return client::RunSampleRcar(*client, kResource, options);
  }
  void Provision() {
    auto admin = *client::NewHttpKbsClient(kbs_->http_url());
    ASSERT_TRUE(admin->PutResource(kbs_->AdminToken(), kResource, "weights-key").ok());
    ASSERT_TRUE(admin->SetPolicyVersion(kbs_->AdminToken(), Policy(), false).ok());
  }

  std::string dir_;
  std::unique_ptr<KbsProcess> kbs_;
};

TEST_F(AuditE2eTest, DecisionsAreProvableAndTamperingIsFound) {
  Provision();
  ASSERT_TRUE(Fetch(kMeasurement).ok());
  EXPECT_EQ(Fetch(std::string(96, 'b')).status().code(), absl::StatusCode::kPermissionDenied);
  ASSERT_TRUE(Fetch(kMeasurement).ok());

  auto key = Audit({"log-key", "--out", dir_ + "/log.pub"});
  ASSERT_EQ(key.exit_code, 0) << key.output;
  auto cp = Audit({"checkpoint", "--fresh"});
  ASSERT_EQ(cp.exit_code, 0) << cp.output;
  // Each fetch: an "attested" receipt (its index is in the token), then the
  // release decision.
  EXPECT_THAT(cp.output, HasSubstr("kbs/receipts\n6\n"));
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/cp1.txt", cp.output).ok());

  auto list = Audit({"list"});
  ASSERT_EQ(list.exit_code, 0) << list.output;
  std::vector<std::string> lines = absl::StrSplit(list.output, '\n', absl::SkipEmpty());
  ASSERT_EQ(lines.size(), 6u) << list.output;
  EXPECT_THAT(lines[0], HasSubstr("\"decision\":\"attested\""));
  EXPECT_THAT(lines[0], HasSubstr(absl::StrCat("\"sample.measurement\":\"", kMeasurement)));
  auto attested = common::ParseJson(lines[0]);
  auto granted = common::ParseJson(lines[1]);
  ASSERT_TRUE(attested.ok() && granted.ok());
  // The release names the token of that attestation.
  EXPECT_EQ((*attested)["token_id"], (*granted)["token_id"]);
  EXPECT_EQ((*attested)["evidence_sha256"], (*granted)["evidence_sha256"]);
  EXPECT_THAT(lines[1], HasSubstr("\"decision\":\"granted\""));
  EXPECT_THAT(lines[1], HasSubstr("\"labels\":{\"route\":\"chat\"}"));
  EXPECT_THAT(lines[1], HasSubstr(absl::StrCat("\"sample.measurement\":\"", kMeasurement)));
  EXPECT_THAT(lines[3], HasSubstr("\"decision\":\"denied\""));
  EXPECT_THAT(lines[3], HasSubstr("not in the rule's 1 allowed values"));
  auto denied = Audit({"list", "--decision", "denied", "--format", "csv"});
  ASSERT_EQ(denied.exit_code, 0) << denied.output;
  EXPECT_THAT(denied.output, HasSubstr("3,"));
  EXPECT_EQ(std::count(denied.output.begin(), denied.output.end(), '\n'), 2);

  // One receipt proved offline with the log key alone.
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/entry", lines[3]).ok());
  auto prove = Audit({"prove", "3", "--out", dir_ + "/1.proof"});
  ASSERT_EQ(prove.exit_code, 0) << prove.output;
  auto offline = Run({"audit", "verify-proof", "--proof", dir_ + "/1.proof", "--entry",
                      dir_ + "/entry", "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(offline.exit_code, 0) << offline.output;
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/entry", lines[1]).ok());
  auto wrong = Run({"audit", "verify-proof", "--proof", dir_ + "/1.proof", "--entry",
                    dir_ + "/entry", "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(wrong.exit_code, 1) << wrong.output;

  // More decisions, then the whole log against the earlier checkpoint.
  ASSERT_TRUE(Fetch(kMeasurement).ok());
  auto verify =
      Audit({"verify", "--log-key", dir_ + "/log.pub", "--from-checkpoint", dir_ + "/cp1.txt"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("consistent with your checkpoint at 6"));

  // An export for a SIEM: every receipt with its proof, checked offline.
  auto exported = Audit({"export", "--out", dir_ + "/log.jsonl", "--log-key", dir_ + "/log.pub"});
  ASSERT_EQ(exported.exit_code, 0) << exported.output;
  auto export_text = common::ReadFile(dir_ + "/log.jsonl");
  ASSERT_TRUE(export_text.ok());
  std::vector<std::string> export_lines = absl::StrSplit(*export_text, '\n', absl::SkipEmpty());
  ASSERT_EQ(export_lines.size(), 8u);
  auto line1 = common::ParseJson(export_lines[3]);
  ASSERT_TRUE(line1.ok());
  EXPECT_EQ((*line1)["receipt"]["decision"], "denied");
  EXPECT_EQ(*common::CanonicalizeJson((*line1)["receipt"]), lines[3]);
  auto checked = Run(
      {"audit", "verify-proof", "--export", dir_ + "/log.jsonl", "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(checked.exit_code, 0) << checked.output;
  EXPECT_THAT(checked.output, HasSubstr("OK: 8 receipts"));
  std::string edited = *export_text;
  size_t at = edited.find("\"decision\":\"denied\"");
  ASSERT_NE(at, std::string::npos);
  edited.replace(at, 19, "\"decision\":\"granted\"");
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/edited.jsonl", edited).ok());
  auto caught = Run({"audit", "verify-proof", "--export", dir_ + "/edited.jsonl", "--log-key",
                     dir_ + "/log.pub"});
  EXPECT_EQ(caught.exit_code, 1) << caught.output;
  EXPECT_THAT(caught.output, HasSubstr("line 4: receipt 3"));
  std::string truncated =
      export_text->substr(0, export_text->rfind('\n', export_text->size() - 2) + 1);
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/truncated.jsonl", truncated).ok());
  auto short_export = Run({"audit", "verify-proof", "--export", dir_ + "/truncated.jsonl",
                           "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(short_export.exit_code, 1) << short_export.output;
  EXPECT_THAT(short_export.output, HasSubstr("holds 7 receipts of a log of 8"));

  // The same over gRPC: a tlog-proof that verifies with the log key.
  {
    auto key_pem = common::ReadFile(dir_ + "/auditor/admin.key");
    ASSERT_TRUE(key_pem.ok());
    auto signer = jose::JwtSigner::Create(*common::PrivateKeyFromPem(*key_pem));
    ASSERT_TRUE(signer.ok());
    int64_t now = absl::ToUnixSeconds(absl::Now());
    std::string token = *(*signer)->Sign(Json{{"sub", "auditor"}, {"iat", now}, {"exp", now + 60}});
    auto channel =
        ::grpc::CreateChannel(kbs_->grpc_address(), ::grpc::InsecureChannelCredentials());
    auto audit = v1::Audit::NewStub(channel);
    ::grpc::ClientContext ctx;
    ctx.AddMetadata("authorization", absl::StrCat("Bearer ", token));
    v1::ProveReceiptRequest req;
    req.set_index(2);
    v1::ProveReceiptResponse resp;
    ASSERT_TRUE(audit->ProveReceipt(&ctx, req, &resp).ok());
    auto proof = receipts::ParseTlogProof(resp.proof());
    ASSERT_TRUE(proof.ok()) << proof.status();
    auto vkey = common::ReadFile(dir_ + "/log.pub");
    auto verifier =
        receipts::NoteVerifier::FromVerifierKey(absl::StripTrailingAsciiWhitespace(*vkey));
    ASSERT_TRUE(verifier.ok()) << verifier.status();
    EXPECT_TRUE(receipts::VerifyTlogProof(*proof, lines[2], *verifier, "kbs/receipts").ok());
    // The evidence behind each decision: the attestation's document, under
    // the receipt's token and digest: for the "attested" receipts and the
    // grant and the denial that followed them.
    for (int index : {0, 1, 2, 3}) {
      auto receipt = common::ParseJson(lines[index]);
      ASSERT_TRUE(receipt.ok());
      auto evidence = testing::RawHttp(
          kbs_->http_port(),
          testing::BuildRequest("GET", absl::StrCat("/kbs/v0/audit/evidence/", index), "",
                                absl::StrCat("Authorization: Bearer ", token)));
      ASSERT_TRUE(evidence.ok()) << evidence.status();
      ASSERT_EQ(evidence->status, 200) << evidence->body;
      EXPECT_EQ(common::HexEncode(common::Sha256(evidence->body)),
                (*receipt)["evidence_sha256"].get<std::string>());
      EXPECT_THAT(evidence->body, HasSubstr("\"tee\":\"sample\""));
    }
    // A page size of zero is refused (it would answer one receipt and no
    // `next`, ending a paging client's walk early).
    auto zero = testing::RawHttp(
        kbs_->http_port(), testing::BuildRequest("GET", "/kbs/v0/audit/query?limit=0", "",
                                                 absl::StrCat("Authorization: Bearer ", token)));
    ASSERT_TRUE(zero.ok()) << zero.status();
    EXPECT_EQ(zero->status, 400);
    EXPECT_THAT(zero->body, HasSubstr("`limit` must be at least 1"));
    ::grpc::ClientContext anon;
    v1::GetCheckpointRequest cp_req;
    v1::GetCheckpointResponse cp_resp;
    EXPECT_EQ(audit->GetCheckpoint(&anon, cp_req, &cp_resp).error_code(),
              ::grpc::StatusCode::UNAUTHENTICATED);
  }

  // Only auditors read the log.
  auto as_admin = testing::RawHttp(
      kbs_->http_port(),
      testing::BuildRequest("GET", "/kbs/v0/audit/checkpoint", "",
                            absl::StrCat("Authorization: Bearer ", kbs_->AdminToken())));
  ASSERT_TRUE(as_admin.ok());
  EXPECT_EQ(as_admin->status, 401);

  // Edit receipt 3 (the denial) in the database while the KBS is down.
  std::string data_dir = kbs_->data_dir();
  ASSERT_EQ(kbs_->Stop(), 0);
  {
    auto db = storage::SqliteDatabase::Open(data_dir + "/kbs.db", 1, "");
    ASSERT_TRUE(db.ok());
    ASSERT_TRUE((*db)
                    ->Run([](storage::SqliteConnection& c) {
                      return c.Exec(
                          "UPDATE receipts SET leaf = CAST(replace(CAST(leaf AS TEXT), "
                          "'\"denied\"', '\"granted\"') AS BLOB) WHERE idx = 3");
                    })
                    .ok());
  }
  Start(data_dir);
  EXPECT_THAT(kbs_->Log(), HasSubstr("HALTED: receipt 3 does not match its leaf hash"));
  // Readiness and the metrics say so; liveness does not (a restart mends
  // nothing here).
  auto ready = testing::RawHttp(kbs_->http_port(), testing::BuildRequest("GET", "/readyz", "", ""));
  ASSERT_TRUE(ready.ok());
  EXPECT_EQ(ready->status, 503);
  EXPECT_THAT(ready->body, HasSubstr("receipt log halted: receipt 3 does not match"));
  auto metrics =
      testing::RawHttp(kbs_->http_port(), testing::BuildRequest("GET", "/metrics", "", ""));
  ASSERT_TRUE(metrics.ok());
  EXPECT_THAT(metrics->body, HasSubstr("\nkbs_receipt_log_halted 1\n"));
  EXPECT_THAT(metrics->body, HasSubstr("kbs_token_signing_keys{state=\"current\"} 1\n"));
  auto refused = Fetch(kMeasurement);
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
  auto tampered = Audit({"verify", "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(tampered.exit_code, 1) << tampered.output;
  EXPECT_THAT(tampered.output, HasSubstr("receipt 3 does not match the signed log"));
}

// Deleting or swapping rows (editing is above): `kbsctl audit verify` names
// the receipt and the restarted KBS refuses to release.
TEST_F(AuditE2eTest, DeletedOrSwappedRowsAreNamed) {
  Provision();
  for (int i = 0; i < 6; ++i) {
    auto got = Fetch(i % 2 == 0 ? kMeasurement : std::string(96, 'b'));
    ASSERT_EQ(got.ok(), i % 2 == 0) << got.status();
  }
  ASSERT_EQ(Audit({"log-key", "--out", dir_ + "/log.pub"}).exit_code, 0);
  ASSERT_EQ(Audit({"checkpoint", "--fresh"}).exit_code, 0);
  ASSERT_EQ(kbs_->Stop(), 0);
  const std::string data_dir = dir_ + "/original";
  std::filesystem::copy(kbs_->data_dir(), data_dir, std::filesystem::copy_options::recursive);
  kbs_.reset();
  struct Case {
    std::string name, sql, halted, verify;
  };
  const std::vector<Case> cases = {
      {"delete", "DELETE FROM receipts WHERE idx = 4", "receipt 4 is missing",
       "receipt 4 is missing"},
      // Two leaves and their leaf hashes swapped (the query columns stay).
      {"swap",
       "CREATE TEMP TABLE sw AS SELECT idx, leaf FROM receipts WHERE idx IN (2, 3); "
       "UPDATE receipts SET leaf = (SELECT leaf FROM sw WHERE sw.idx = 5 - receipts.idx) "
       "WHERE idx IN (2, 3); "
       "CREATE TEMP TABLE swn AS SELECT last, hash FROM tree_nodes WHERE level = 0 AND last IN "
       "(2, 3); "
       "UPDATE tree_nodes SET hash = (SELECT hash FROM swn WHERE swn.last = 5 - tree_nodes.last) "
       "WHERE level = 0 AND last IN (2, 3)",
       "receipt 2's time column does not match its leaf", "receipt 2 is missing or out of place"},
  };
  for (const Case& c : cases) {
    SCOPED_TRACE(c.name);
    const std::string copy = dir_ + "/" + c.name;
    std::filesystem::copy(data_dir, copy, std::filesystem::copy_options::recursive);
    {
      auto db = storage::SqliteDatabase::Open(copy + "/kbs.db", 1, "");
      ASSERT_TRUE(db.ok());
      ASSERT_TRUE(
          (*db)->Run([&](storage::SqliteConnection& conn) { return conn.Exec(c.sql); }).ok());
    }
    Start(copy);
    EXPECT_THAT(kbs_->Log(), HasSubstr(c.halted));
    EXPECT_EQ(Fetch(kMeasurement).status().code(), absl::StatusCode::kUnavailable);
    auto verify = Audit({"verify", "--log-key", dir_ + "/log.pub"});
    EXPECT_EQ(verify.exit_code, 1) << verify.output;
    EXPECT_THAT(verify.output, HasSubstr(c.verify));
    ASSERT_EQ(kbs_->Stop(), 0);
    kbs_.reset();
  }
}

// The disk fills up (here: a file-size limit on the running KBS, so every
// write past the start of a file fails as on a full disk): releases fail
// closed with a clear 503, and resume once there is room again.
TEST_F(AuditE2eTest, AFullDiskFailsClosedAndRecovers) {
  Provision();
  ASSERT_TRUE(Fetch(kMeasurement).ok());
  struct rlimit unlimited;
  ASSERT_EQ(::prlimit(kbs_->pid(), RLIMIT_FSIZE, nullptr, &unlimited), 0);
  struct rlimit full = unlimited;
  full.rlim_cur = 1;
  ASSERT_EQ(::prlimit(kbs_->pid(), RLIMIT_FSIZE, &full, nullptr), 0);
  for (int i = 0; i < 3; ++i) {
    auto refused = Fetch(kMeasurement);
    EXPECT_EQ(refused.status().code(), absl::StatusCode::kUnavailable) << refused.status();
    EXPECT_THAT(refused.status().message(), HasSubstr("receipt log cannot be written"));
  }
  ASSERT_EQ(::prlimit(kbs_->pid(), RLIMIT_FSIZE, &unlimited, nullptr), 0);
  auto again = Fetch(kMeasurement);
  ASSERT_TRUE(again.ok()) << again.status();
  EXPECT_TRUE(kbs_->Running());
  // Only the two delivered keys and their attestations (and no
  // half-written receipt) are in the log, and it verifies.
  ASSERT_EQ(Audit({"log-key", "--out", dir_ + "/log.pub"}).exit_code, 0);
  auto verify = Audit({"verify", "--fresh", "--log-key", dir_ + "/log.pub"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  EXPECT_THAT(verify.output, HasSubstr("OK: 4 receipts"));
}

TEST_F(AuditE2eTest, EveryDeliveredKeyIsInTheLogAfterACrash) {
  Provision();
  ASSERT_TRUE(Fetch(kMeasurement).ok());
  auto key = Audit({"log-key", "--out", dir_ + "/log.pub"});
  ASSERT_EQ(key.exit_code, 0) << key.output;
  auto before = Audit({"checkpoint", "--fresh"});
  ASSERT_EQ(before.exit_code, 0) << before.output;
  ASSERT_TRUE(common::WriteFileAtomic(dir_ + "/before.txt", before.output).ok());
  // Releases under way from several clients when the KBS is killed.
  std::atomic<int> delivered{0};
  std::atomic<bool> stop{false};
  std::vector<std::thread> clients;
  for (int t = 0; t < 4; ++t) {
    clients.emplace_back([&] {
      while (!stop) {
        if (Fetch(kMeasurement).ok()) ++delivered;
      }
    });
  }
  while (delivered < 20) std::this_thread::sleep_for(std::chrono::milliseconds(5));
  std::string data_dir = kbs_->data_dir();
  kbs_->Kill();
  stop = true;
  for (auto& c : clients) c.join();
  Start(data_dir);
  EXPECT_THAT(kbs_->Log(), ::testing::Not(HasSubstr("HALTED")));
  // Every delivered key has its granted receipt (plus the first one).
  auto granted = Audit({"list", "--decision", "granted"});
  ASSERT_EQ(granted.exit_code, 0) << granted.output;
  EXPECT_GE(std::count(granted.output.begin(), granted.output.end(), '\n'), delivered + 1);
  // The tree verifies and extends the checkpoint signed before the crash.
  auto verify =
      Audit({"verify", "--log-key", dir_ + "/log.pub", "--from-checkpoint", dir_ + "/before.txt"});
  EXPECT_EQ(verify.exit_code, 0) << verify.output;
  // And the log goes on.
  EXPECT_TRUE(Fetch(kMeasurement).ok());
}

}  // namespace
}  // namespace kbs
