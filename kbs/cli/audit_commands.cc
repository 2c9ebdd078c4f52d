#include "kbs/cli/audit_commands.h"

#include <filesystem>
#include <fstream>
#include <functional>
#include <iostream>
#include <optional>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_split.h"
#include "common/files.h"
#include "common/http_client.h"
#include "common/jcs.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "kbs/client/kbs_client.h"
#include "kbs/receipts/merkle.h"
#include "kbs/receipts/note.h"
#include "kbs/receipts/receipt.h"

namespace kbs::cli {
namespace {

using common::Json;
using receipts::Hash;

constexpr uint64_t kPage = 1000;
constexpr uint64_t kLeafPage = 10000;  // the KBS's most per `leaves` request

int Failed(const absl::Status& s, int code = 1) {
  std::cerr << "kbsctl: " << s.message() << "\n";
  return code;
}

// Percent-encodes a query value.
std::string Escape(absl::string_view v) {
  std::string out;
  for (unsigned char c : v) {
    if (absl::ascii_isalnum(c) || c == '-' || c == '_' || c == '.' || c == '~' || c == ':') {
      out.push_back(static_cast<char>(c));
    } else {
      absl::StrAppend(&out, "%", absl::StrFormat("%02X", c));
    }
  }
  return out;
}

class AuditClient {
 public:
  static absl::StatusOr<AuditClient> Connect(const AuditArgs& a) {
    common::HttpClientOptions options;
    options.ca_file = a.cacert;
    KBS_ASSIGN_OR_RETURN(auto http, common::HttpClient::Create(a.url, options));
    return AuditClient(std::move(http), a.token);
  }
  absl::StatusOr<std::string> Get(absl::string_view target) {
    std::vector<std::pair<std::string, std::string>> headers;
    if (!token_.empty()) headers.emplace_back("Authorization", absl::StrCat("Bearer ", token_));
    KBS_ASSIGN_OR_RETURN(common::HttpResult r,
                         http_->Send("GET", absl::StrCat("/kbs/v0/audit/", target), "", headers));
    if (r.status != 200) return client::HttpErrorToStatus(r.status, r.body);
    return r.body;
  }
  absl::StatusOr<Json> GetJson(absl::string_view target) {
    KBS_ASSIGN_OR_RETURN(std::string body, Get(target));
    return common::ParseJson(body, {.max_depth = 8});
  }
  // Leaf bytes of receipts from `start` (up to `end`, at most kLeafPage;
  // the KBS may send fewer, bounded by bytes), as views into `body`.
  absl::Status BareLeaves(uint64_t start, uint64_t end, std::string& body,
                          std::vector<absl::string_view>& leaves) {
    KBS_ASSIGN_OR_RETURN(body, Get(absl::StrCat("leaves?start=", start, "&end=", end)));
    leaves = absl::StrSplit(body, '\n', absl::SkipEmpty());
    return absl::OkStatus();
  }
  static absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> Leaves(const Json& page) {
    const Json* list = common::FindMember(page, "receipts");
    if (list == nullptr || !list->is_array()) {
      return absl::DataLossError("the KBS answered without a receipts list");
    }
    std::vector<std::pair<uint64_t, std::string>> out;
    for (const Json& r : *list) {
      const Json* index = common::FindMember(r, "index");
      const Json* leaf = common::FindMember(r, "leaf");
      if (index == nullptr || !index->is_number_unsigned() || leaf == nullptr ||
          !leaf->is_string()) {
        return absl::DataLossError("a receipt entry is malformed");
      }
      out.emplace_back(index->get<uint64_t>(), leaf->get<std::string>());
    }
    return out;
  }

 private:
  AuditClient(std::unique_ptr<common::HttpClient> http, std::string token)
      : http_(std::move(http)), token_(std::move(token)) {}
  std::unique_ptr<common::HttpClient> http_;
  std::string token_;
};

absl::StatusOr<receipts::NoteVerifier> LoadLogKey(const std::string& path) {
  if (path.empty()) return absl::InvalidArgumentError("--log-key FILE is required");
  KBS_ASSIGN_OR_RETURN(std::string text, common::ReadFile(path, 4096));
  while (!text.empty() && (text.back() == '\n' || text.back() == '\r')) text.pop_back();
  return receipts::NoteVerifier::FromVerifierKey(text);
}

// Verifies a signed checkpoint note with `verifier` (origin = key name).
absl::StatusOr<receipts::Checkpoint> OpenCheckpoint(const receipts::NoteVerifier& verifier,
                                                    absl::string_view note) {
  KBS_ASSIGN_OR_RETURN(std::string body, verifier.Open(note));
  KBS_ASSIGN_OR_RETURN(receipts::Checkpoint cp, receipts::ParseCheckpointBody(body));
  if (cp.origin != verifier.name()) {
    return absl::UnauthenticatedError(absl::StrCat("the checkpoint's origin \"", cp.origin,
                                                   "\" is not the log key's \"", verifier.name(),
                                                   "\""));
  }
  return cp;
}

std::string CsvField(absl::string_view v) {
  if (v.find_first_of(",\"\n") == absl::string_view::npos) return std::string(v);
  std::string out = "\"";
  for (char c : v) {
    if (c == '"') out.push_back('"');
    out.push_back(c);
  }
  out.push_back('"');
  return out;
}

}  // namespace

int AuditLogKey(const AuditArgs& a) {
  auto client = AuditClient::Connect(a);
  if (!client.ok()) return Failed(client.status());
  auto key = client->Get("log-key");
  if (!key.ok()) return Failed(key.status());
  if (a.out.empty() || a.out == "-") {
    std::cout << *key;
    return 0;
  }
  if (auto s = common::WriteFileAtomic(a.out, *key, 0644); !s.ok()) return Failed(s);
  std::cerr << "kbsctl: wrote the log key to " << a.out << "\n";
  return 0;
}

int AuditCheckpoint(const AuditArgs& a) {
  auto client = AuditClient::Connect(a);
  if (!client.ok()) return Failed(client.status());
  auto note = client->Get(a.fresh ? "checkpoint?fresh=1" : "checkpoint");
  if (!note.ok()) return Failed(note.status());
  std::cout << *note;  // exactly as signed
  return 0;
}

int AuditList(const AuditArgs& a) {
  auto client = AuditClient::Connect(a);
  if (!client.ok()) return Failed(client.status());
  std::string filters;
  for (auto [name, value] : std::initializer_list<std::pair<const char*, const std::string*>>{
           {"from", &a.from},
           {"to", &a.to},
           {"decision", &a.decision},
           {"resource", &a.resource},
           {"key_version", &a.key_version},
           {"image", &a.image},
           {"measurement", &a.measurement},
           {"tee", &a.tee},
           {"policy", &a.policy},
           {"rule", &a.rule},
           {"chip_id", &a.chip_id}}) {
    if (!value->empty()) absl::StrAppend(&filters, "&", name, "=", Escape(*value));
  }
  if (a.format == "csv") {
    std::cout << "index,time,decision,resource,key_version,tee,policy_version,rule,chip_id,"
                 "evidence_sha256,images,measurements,reason\n";
  }
  uint64_t after = 0;
  while (true) {
    auto page = client->GetJson(absl::StrCat("query?limit=", kPage, "&after=", after, filters));
    if (!page.ok()) return Failed(page.status());
    auto leaves = AuditClient::Leaves(*page);
    if (!leaves.ok()) return Failed(leaves.status());
    for (const auto& [index, leaf] : *leaves) {
      if (a.format != "csv") {
        std::cout << leaf << "\n";  // the leaf bytes, exactly
        continue;
      }
      auto r = receipts::ParseReceiptLeaf(leaf);
      if (!r.ok()) return Failed(r.status());
      std::string images, measurements;
      for (const std::string& i : r->images) absl::StrAppend(&images, images.empty() ? "" : " ", i);
      for (const auto& [k, v] : r->measurements) {
        absl::StrAppend(&measurements, measurements.empty() ? "" : " ", k, "=", v);
      }
      std::cout << r->index << "," << receipts::ReceiptToJson(*r)["time"].get<std::string>() << ","
                << CsvField(r->decision) << "," << CsvField(r->resource) << ","
                << CsvField(r->key_version) << "," << CsvField(r->tee) << ","
                << CsvField(r->policy_version) << "," << CsvField(r->rule) << ","
                << CsvField(r->chip_id) << "," << CsvField(r->evidence_sha256) << ","
                << CsvField(images) << "," << CsvField(measurements) << "," << CsvField(r->reason)
                << "\n";
    }
    const Json* next = common::FindMember(*page, "next");
    if (next == nullptr || !next->is_number_unsigned()) return 0;
    after = next->get<uint64_t>();
  }
}

int AuditProve(const AuditArgs& a) {
  auto client = AuditClient::Connect(a);
  if (!client.ok()) return Failed(client.status());
  auto proof = client->Get(absl::StrCat("tlog-proof/", a.index));
  if (!proof.ok()) return Failed(proof.status());
  if (a.out.empty() || a.out == "-") {
    std::cout << *proof;
    return 0;
  }
  if (auto s = common::WriteFileAtomic(a.out, *proof, 0644); !s.ok()) return Failed(s);
  std::cerr << "kbsctl: wrote the proof of receipt " << a.index << " to " << a.out << "\n";
  return 0;
}

int AuditVerifyProof(const AuditArgs& a) {
  auto verifier = LoadLogKey(a.log_key);
  if (!verifier.ok()) return Failed(verifier.status(), 2);
  auto text = common::ReadFile(a.proof, 1 << 20);
  if (!text.ok()) return Failed(text.status(), 2);
  auto proof = receipts::ParseTlogProof(*text);
  if (!proof.ok()) return Failed(proof.status(), 2);
  auto entry = common::ReadFile(a.entry, receipts::kMaxLeafBytes + 2);
  if (!entry.ok()) return Failed(entry.status(), 2);
  std::string leaf = *std::move(entry);
  // A leaf saved from `audit list` ends with the newline that separated it.
  if (!leaf.empty() && leaf.back() == '\n') leaf.pop_back();
  auto cp = receipts::VerifyTlogProof(*proof, leaf, *verifier, verifier->name());
  if (!cp.ok()) {
    std::cerr << "kbsctl: proof verification failed: " << cp.status().message() << "\n";
    return 1;
  }
  std::cout << "OK: receipt " << proof->index << " is in the log " << cp->origin << " at tree size "
            << cp->size << " (checkpoint signed by " << verifier->name() << ")\n";
  return 0;
}

namespace {

// Calls `fn` with every leaf of the first `size` receipts, downloaded in
// bulk. Each leaf must state its own index (LeafIndex): a leaf missing,
// repeated or out of place is named even before the tree is compared.
absl::Status ForEachLeaf(AuditClient& client, uint64_t size,
                         const std::function<absl::Status(uint64_t, absl::string_view)>& fn) {
  std::string body;
  std::vector<absl::string_view> leaves;
  for (uint64_t next = 0; next < size;) {
    KBS_RETURN_IF_ERROR(client.BareLeaves(next, std::min(size, next + kLeafPage), body, leaves));
    if (leaves.empty()) {
      return absl::DataLossError(absl::StrCat("receipt ", next, " is missing from the log"));
    }
    for (absl::string_view leaf : leaves) {
      absl::StatusOr<uint64_t> stated = receipts::LeafIndex(leaf);
      if (!stated.ok()) {
        return absl::DataLossError(
            absl::StrCat("receipt ", next, " is not a receipt: ", stated.status().message()));
      }
      if (*stated != next) {
        return absl::DataLossError(absl::StrCat("receipt ", next,
                                                " is missing or out of place: the receipt at that "
                                                "position states index ",
                                                *stated));
      }
      KBS_RETURN_IF_ERROR(fn(next, leaf));
      if (++next == size) break;
    }
  }
  return absl::OkStatus();
}

struct VerifiedLog {
  std::string note;  // the latest signed checkpoint, verbatim
  receipts::Checkpoint checkpoint;
  receipts::MemoryTree tree;  // of every receipt it covers
};

// Downloads every receipt the latest checkpoint covers, rebuilds the tree
// and checks it against that checkpoint (signed with the auditor's copy of
// the log key) and against `earlier`, a checkpoint the auditor kept.
// `fresh`: have the KBS sign a checkpoint covering every receipt first.
// DataLoss names the first receipt that breaks the signed log.
absl::Status VerifyLog(AuditClient& client, const receipts::NoteVerifier& verifier,
                       const std::optional<receipts::Checkpoint>& earlier, bool fresh,
                       VerifiedLog& out) {
  KBS_ASSIGN_OR_RETURN(out.note, client.Get(fresh ? "checkpoint?fresh=1" : "checkpoint"));
  KBS_ASSIGN_OR_RETURN(out.checkpoint, OpenCheckpoint(verifier, out.note));
  const receipts::Checkpoint& cp = out.checkpoint;
  receipts::MemoryTree& tree = out.tree;
  KBS_RETURN_IF_ERROR(ForEachLeaf(client, cp.size, [&](uint64_t, absl::string_view leaf) {
    tree.Append(leaf);
    return absl::OkStatus();
  }));
  if (tree.Root() != cp.root) {
    // Find the first receipt that breaks the signed tree: the smallest m
    // whose prefix root is not consistent with the checkpoint.
    uint64_t lo = 1, hi = cp.size;  // the answer is in [lo, hi]
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      auto root = receipts::RootAt(tree, mid);
      auto proof =
          client.GetJson(absl::StrCat("proof/consistency?size1=", mid, "&size2=", cp.size));
      bool consistent = false;
      if (root.ok() && proof.ok()) {
        std::vector<Hash> hashes;
        const Json* list = common::FindMember(*proof, "hashes");
        for (const Json& h : list != nullptr && list->is_array() ? *list : Json::array()) {
          std::string raw;
          if (!h.is_string() || !absl::Base64Unescape(h.get<std::string>(), &raw) ||
              raw.size() != 32) {
            break;
          }
          Hash x;
          std::copy(raw.begin(), raw.end(), x.begin());
          hashes.push_back(x);
        }
        consistent = receipts::VerifyConsistency(mid, cp.size, hashes, *root, cp.root).ok();
      }
      if (consistent) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    return absl::DataLossError(
        absl::StrCat("receipt ", lo - 1, " does not match the signed log: the log was altered"));
  }
  if (earlier.has_value()) {
    auto root = earlier->size <= cp.size ? receipts::RootAt(tree, earlier->size)
                                         : absl::StatusOr<Hash>(absl::OutOfRangeError(""));
    if (earlier->size > cp.size || !root.ok() || *root != earlier->root) {
      return absl::DataLossError(
          absl::StrCat("the log is not consistent with your checkpoint at size ", earlier->size,
                       ": it was rewritten"));
    }
  }
  return absl::OkStatus();
}

absl::StatusOr<std::optional<receipts::Checkpoint>> LoadEarlier(
    const AuditArgs& a, const receipts::NoteVerifier& verifier) {
  if (a.from_checkpoint.empty()) return std::optional<receipts::Checkpoint>();
  KBS_ASSIGN_OR_RETURN(std::string note, common::ReadFile(a.from_checkpoint, 1 << 16));
  KBS_ASSIGN_OR_RETURN(receipts::Checkpoint cp, OpenCheckpoint(verifier, note));
  return std::optional<receipts::Checkpoint>(cp);
}

// AuditVerify and AuditExport: the auditor's log key and kept checkpoint,
// then VerifyLog over `client` (connected here). 0, or the exit code after
// saying why.
int LoadAndVerify(const AuditArgs& a, bool fresh, VerifiedLog& log, std::string& log_name,
                  std::optional<receipts::Checkpoint>& earlier,
                  std::optional<AuditClient>& client) {
  auto verifier = LoadLogKey(a.log_key);
  if (!verifier.ok()) return Failed(verifier.status(), 2);
  log_name = verifier->name();
  auto kept = LoadEarlier(a, *verifier);
  if (!kept.ok()) return Failed(kept.status(), 2);
  earlier = *kept;
  auto connected = AuditClient::Connect(a);
  if (!connected.ok()) return Failed(connected.status());
  client.emplace(*std::move(connected));
  if (absl::Status s = VerifyLog(*client, *verifier, earlier, fresh, log); !s.ok()) {
    return Failed(s);
  }
  return 0;
}

}  // namespace

int AuditVerify(const AuditArgs& a) {
  VerifiedLog log;
  std::string name;
  std::optional<receipts::Checkpoint> earlier;
  std::optional<AuditClient> client;
  if (int code = LoadAndVerify(a, a.fresh, log, name, earlier, client); code != 0) return code;
  std::cout << "OK: " << log.checkpoint.size
            << " receipts re-hashed; root matches the checkpoint signed by " << name;
  if (earlier.has_value()) std::cout << "; consistent with your checkpoint at " << earlier->size;
  std::cout << "\n";
  return 0;
}

int AuditExport(const AuditArgs& a) {
  if (a.out.empty() || a.out == "-") {
    return Failed(absl::InvalidArgumentError("--out FILE is required"), 2);
  }
  VerifiedLog log;
  std::string name;
  std::optional<receipts::Checkpoint> earlier;
  std::optional<AuditClient> client;
  // Everything appended so far, under a checkpoint signed now.
  if (int code = LoadAndVerify(a, /*fresh=*/true, log, name, earlier, client); code != 0) {
    return code;
  }
  // Second pass: each line is one receipt with its tlog-proof against the
  // verified checkpoint. The leaves must be the ones just verified.
  const std::string tmp = absl::StrCat(a.out, ".partial");
  std::ofstream file(tmp, std::ios::binary | std::ios::trunc);
  if (!file) return Failed(absl::UnavailableError(absl::StrCat("cannot write ", tmp)));
  std::string line;
  absl::Status s =
      ForEachLeaf(*client, log.checkpoint.size, [&](uint64_t i, absl::string_view leaf) {
        KBS_ASSIGN_OR_RETURN(std::vector<Hash> stored, log.tree.ReadNodes({{0, i}}));
        // An export line carries a receipt, so each leaf must decode as one.
        if (absl::Status valid = receipts::ParseReceiptLeaf(leaf).status(); !valid.ok()) {
          return absl::DataLossError(
              absl::StrCat("receipt ", i, " does not decode: ", valid.message()));
        }
        if (receipts::LeafHash(leaf) != stored[0]) {
          return absl::DataLossError(
              absl::StrCat("receipt ", i, " changed while it was being exported"));
        }
        KBS_ASSIGN_OR_RETURN(std::vector<Hash> path,
                             receipts::InclusionProof(log.tree, i, log.checkpoint.size));
        line.clear();
        absl::StrAppend(&line, "{\"index\":", i, ",\"proof\":");
        common::AppendJcsString(receipts::EncodeTlogProof({i, std::move(path), log.note, ""}),
                                line);
        absl::StrAppend(&line, ",\"receipt\":", leaf, "}\n");
        file << line;
        return file ? absl::OkStatus() : absl::UnavailableError(absl::StrCat("cannot write ", tmp));
      });
  file.close();
  if (s.ok() && !file) s = absl::UnavailableError(absl::StrCat("cannot write ", tmp));
  std::error_code ec;
  if (s.ok()) {
    std::filesystem::rename(tmp, a.out, ec);
    if (ec)
      s = absl::UnavailableError(absl::StrCat("cannot rename to ", a.out, ": ", ec.message()));
  }
  if (!s.ok()) {
    std::filesystem::remove(tmp, ec);
    return Failed(s);
  }
  std::cerr << "kbsctl: exported " << log.checkpoint.size << " receipts with proofs against the "
            << "checkpoint at size " << log.checkpoint.size << " to " << a.out << "\n";
  return 0;
}

int AuditVerifyExport(const AuditArgs& a) {
  auto verifier = LoadLogKey(a.log_key);
  if (!verifier.ok()) return Failed(verifier.status(), 2);
  std::ifstream file(a.export_file, std::ios::binary);
  if (!file) return Failed(absl::NotFoundError(absl::StrCat("cannot read ", a.export_file)), 2);
  std::string line;
  uint64_t n = 0;
  // An export's lines share one checkpoint: its signature is checked once.
  std::string verified_note;
  receipts::Checkpoint verified;
  while (std::getline(file, line)) {
    ++n;
    auto fail = [&](absl::string_view why) {
      std::cerr << "kbsctl: " << a.export_file << " line " << n << ": " << why << "\n";
      return 1;
    };
    if (line.size() > receipts::kMaxLeafBytes + receipts::kMaxTlogProofBytes + 4096) {
      return fail("line too long");
    }
    auto json = common::ParseJson(line, {.max_depth = 8});
    if (!json.ok() || !json->is_object()) return fail("not a JSON object");
    const Json* index = common::FindMember(*json, "index");
    const Json* proof_text = common::FindMember(*json, "proof");
    const Json* receipt = common::FindMember(*json, "receipt");
    if (index == nullptr || !index->is_number_unsigned() || proof_text == nullptr ||
        !proof_text->is_string() || receipt == nullptr || !receipt->is_object()) {
      return fail("expected {\"index\", \"proof\", \"receipt\"}");
    }
    // The receipt is its leaf bytes: JCS reproduces them exactly.
    auto leaf = common::CanonicalizeJson(*receipt);
    if (!leaf.ok()) return fail(leaf.status().message());
    auto proof = receipts::ParseTlogProof(proof_text->get<std::string>());
    if (!proof.ok()) return fail(proof.status().message());
    if (proof->index != index->get<uint64_t>()) return fail("the proof is for another index");
    if (proof->index != n - 1) {
      return fail(absl::StrCat("expected receipt ", n - 1, ", found ", proof->index,
                               " (an export lists every receipt in order)"));
    }
    const Json* stated = common::FindMember(*receipt, "index");
    if (stated == nullptr || !stated->is_number_unsigned() ||
        stated->get<uint64_t>() != proof->index) {
      return fail("the receipt states another index");
    }
    if (proof->checkpoint_note != verified_note || verified_note.empty()) {
      auto cp = receipts::VerifyTlogProof(*proof, *leaf, *verifier, verifier->name());
      if (!cp.ok()) {
        return fail(absl::StrCat("receipt ", proof->index, ": ", cp.status().message()));
      }
      verified_note = proof->checkpoint_note;
      verified = *cp;
    } else if (absl::Status s =
                   receipts::VerifyInclusion(receipts::LeafHash(*leaf), proof->index, verified.size,
                                             proof->path, verified.root);
               !s.ok()) {
      return fail(absl::StrCat("receipt ", proof->index, ": ", s.message()));
    }
  }
  if (n == 0) {
    return Failed(absl::InvalidArgumentError(absl::StrCat(a.export_file, " is empty")), 2);
  }
  if (n != verified.size) {
    std::cerr << "kbsctl: " << a.export_file << " holds " << n << " receipts of a log of "
              << verified.size << ": it is incomplete\n";
    return 1;
  }
  std::cout << "OK: " << n << " receipts in " << a.export_file << " are in the log at tree size "
            << verified.size << " (checkpoint signed by " << verifier->name() << ")\n";
  return 0;
}

}  // namespace kbs::cli
