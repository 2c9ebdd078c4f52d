#include "kbs/cli/audit_commands.h"

#include <iostream>

#include "absl/strings/ascii.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/files.h"
#include "common/http_client.h"
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
  // Receipts [start, end) as stored, in order.
  absl::StatusOr<std::vector<std::pair<uint64_t, std::string>>> Receipts(uint64_t start,
                                                                         uint64_t end) {
    KBS_ASSIGN_OR_RETURN(Json page, GetJson(absl::StrCat("receipts?start=", start, "&end=", end)));
    return Leaves(page);
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

int AuditVerify(const AuditArgs& a) {
  auto verifier = LoadLogKey(a.log_key);
  if (!verifier.ok()) return Failed(verifier.status(), 2);
  std::optional<receipts::Checkpoint> earlier;
  if (!a.from_checkpoint.empty()) {
    auto note = common::ReadFile(a.from_checkpoint, 1 << 16);
    if (!note.ok()) return Failed(note.status(), 2);
    auto cp = OpenCheckpoint(*verifier, *note);
    if (!cp.ok()) return Failed(cp.status(), 2);
    earlier = *cp;
  }
  auto client = AuditClient::Connect(a);
  if (!client.ok()) return Failed(client.status());
  auto note = client->Get("checkpoint");
  if (!note.ok()) return Failed(note.status());
  auto cp = OpenCheckpoint(*verifier, *note);
  if (!cp.ok()) return Failed(cp.status());
  receipts::MemoryTree tree;
  for (uint64_t start = 0; start < cp->size; start += kPage) {
    uint64_t end = std::min(cp->size, start + kPage);
    auto leaves = client->Receipts(start, end);
    if (!leaves.ok()) return Failed(leaves.status());
    uint64_t expected = start;
    for (const auto& [index, leaf] : *leaves) {
      if (index != expected) {
        std::cerr << "kbsctl: receipt " << expected << " is missing from the log\n";
        return 1;
      }
      auto r = receipts::ParseReceiptLeaf(leaf);
      if (!r.ok() || r->index != index) {
        std::cerr << "kbsctl: receipt " << index << " is not the receipt signed at that index ("
                  << (r.ok() ? absl::StrCat("it states index ", r->index)
                             : std::string(r.status().message()))
                  << ")\n";
        return 1;
      }
      tree.Append(leaf);
      ++expected;
    }
    if (expected != end) {
      std::cerr << "kbsctl: receipt " << expected << " is missing from the log\n";
      return 1;
    }
  }
  if (tree.Root() != cp->root) {
    // Find the first receipt that breaks the signed tree: the smallest m
    // whose prefix root is not consistent with the checkpoint.
    uint64_t lo = 1, hi = cp->size;  // the answer is in [lo, hi]
    while (lo < hi) {
      uint64_t mid = lo + (hi - lo) / 2;
      auto root = receipts::RootAt(tree, mid);
      auto proof =
          client->GetJson(absl::StrCat("proof/consistency?size1=", mid, "&size2=", cp->size));
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
        consistent = receipts::VerifyConsistency(mid, cp->size, hashes, *root, cp->root).ok();
      }
      if (consistent) {
        lo = mid + 1;
      } else {
        hi = mid;
      }
    }
    std::cerr << "kbsctl: receipt " << lo - 1
              << " does not match the signed log: the log was altered\n";
    return 1;
  }
  if (earlier.has_value()) {
    auto root = earlier->size <= cp->size ? receipts::RootAt(tree, earlier->size)
                                          : absl::StatusOr<Hash>(absl::OutOfRangeError(""));
    if (earlier->size > cp->size || !root.ok() || *root != earlier->root) {
      std::cerr << "kbsctl: the log is not consistent with your checkpoint at size "
                << earlier->size << ": it was rewritten\n";
      return 1;
    }
  }
  std::cout << "OK: " << cp->size << " receipts re-hashed; root matches the checkpoint signed by "
            << verifier->name();
  if (earlier.has_value()) std::cout << "; consistent with your checkpoint at " << earlier->size;
  std::cout << "\n";
  return 0;
}

}  // namespace kbs::cli
