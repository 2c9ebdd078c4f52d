#include "kbs/receipts/receipt.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/jcs.h"
#include "common/json.h"
#include "common/status_macros.h"

namespace kbs::receipts {
namespace {

using common::Json;

constexpr size_t kMaxListItems = 256;

std::string FormatReceiptTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%E6SZ", t, absl::UTCTimeZone());
}

Json Pairs(const std::vector<std::pair<std::string, std::string>>& pairs) {
  Json out = Json::object();
  for (const auto& [k, v] : pairs) out[k] = v;
  return out;
}

absl::Status Invalid(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("receipt: ", what));
}

absl::StatusOr<std::string> Str(const Json& j, absl::string_view key) {
  const Json* v = common::FindMember(j, key);
  if (v == nullptr || !v->is_string()) return Invalid(absl::StrCat("`", key, "` must be a string"));
  return v->get<std::string>();
}

absl::StatusOr<std::vector<std::pair<std::string, std::string>>> StrMap(const Json& j,
                                                                        absl::string_view key) {
  const Json* v = common::FindMember(j, key);
  if (v == nullptr || !v->is_object() || v->size() > kMaxListItems) {
    return Invalid(absl::StrCat("`", key, "` must be an object of strings"));
  }
  std::vector<std::pair<std::string, std::string>> out;
  for (auto it = v->begin(); it != v->end(); ++it) {
    if (!it.value().is_string()) return Invalid(absl::StrCat("`", key, "` values must be strings"));
    out.emplace_back(it.key(), it.value().get<std::string>());
  }
  return out;
}

}  // namespace

Json ReceiptToJson(const Receipt& r) {
  Json shadow = Json::array();
  for (const ShadowVerdict& v : r.shadow) shadow.push_back({{"rule", v.rule}, {"allow", v.allow}});
  return Json{
      {"index", r.index},
      {"time", FormatReceiptTime(r.time)},
      {"decision", r.decision},
      {"reason", r.reason},
      {"resource", r.resource},
      {"key_version", r.key_version},
      {"tee", r.tee},
      {"evidence_sha256", r.evidence_sha256},
      {"measurements", Pairs(r.measurements)},
      {"images", r.images},
      {"tcb_status", r.tcb_status},
      {"chip_id", r.chip_id},
      {"policy_version", r.policy_version},
      {"rule", r.rule},
      {"labels", Pairs(r.labels)},
      {"shadow", std::move(shadow)},
      {"client_address", r.client_address},
      {"session_digest", r.session_digest},
      {"token_id", r.token_id},
  };
}

namespace {

absl::StatusOr<std::string> GeneralLeaf(const Receipt& r) {
  // Strings in a receipt can carry client-supplied text (error details);
  // invalid UTF-8 is replaced (U+FFFD) so the leaf is valid JSON that every
  // auditor's tool reads, and hashes, the same way.
  KBS_ASSIGN_OR_RETURN(Json clean, common::ParseTrustedJson(common::DumpJson(ReceiptToJson(r))));
  KBS_ASSIGN_OR_RETURN(std::string leaf, common::CanonicalizeJson(clean));
  if (leaf.size() > kMaxLeafBytes) {
    return Invalid(absl::StrCat("larger than ", kMaxLeafBytes, " bytes"));
  }
  return leaf;
}

bool IsAscii(absl::string_view s) {
  for (char c : s) {
    if (static_cast<unsigned char>(c) >= 0x80) return false;
  }
  return true;
}

bool AllAscii(const Receipt& r) {
  for (absl::string_view s :
       {absl::string_view(r.decision), absl::string_view(r.reason), absl::string_view(r.resource),
        absl::string_view(r.key_version), absl::string_view(r.tee),
        absl::string_view(r.evidence_sha256), absl::string_view(r.tcb_status),
        absl::string_view(r.chip_id), absl::string_view(r.policy_version),
        absl::string_view(r.rule), absl::string_view(r.client_address),
        absl::string_view(r.session_digest), absl::string_view(r.token_id)}) {
    if (!IsAscii(s)) return false;
  }
  for (const auto& [k, v] : r.measurements) {
    if (!IsAscii(k) || !IsAscii(v)) return false;
  }
  for (const auto& [k, v] : r.labels) {
    if (!IsAscii(k) || !IsAscii(v)) return false;
  }
  for (const std::string& i : r.images) {
    if (!IsAscii(i)) return false;
  }
  for (const ShadowVerdict& v : r.shadow) {
    if (!IsAscii(v.rule)) return false;
  }
  return true;
}

void Member(absl::string_view key, absl::string_view value, std::string& out) {
  out.push_back('"');
  out.append(key.data(), key.size());
  out += "\":";
  common::AppendJcsString(value, out);
  out.push_back(',');
}

// An object of strings from pairs, as ReceiptToJson builds it: a repeated
// key keeps its last value. ASCII keys: UTF-16 order is byte order.
void AsciiObject(absl::string_view key,
                 const std::vector<std::pair<std::string, std::string>>& pairs, std::string& out) {
  std::vector<const std::pair<std::string, std::string>*> sorted;
  sorted.reserve(pairs.size());
  for (const auto& p : pairs) sorted.push_back(&p);
  std::stable_sort(sorted.begin(), sorted.end(),
                   [](const auto* a, const auto* b) { return a->first < b->first; });
  out.push_back('"');
  out.append(key.data(), key.size());
  out += "\":{";
  bool first = true;
  for (size_t i = 0; i < sorted.size(); ++i) {
    if (i + 1 < sorted.size() && sorted[i + 1]->first == sorted[i]->first) continue;
    if (!first) out.push_back(',');
    first = false;
    common::AppendJcsString(sorted[i]->first, out);
    out.push_back(':');
    common::AppendJcsString(sorted[i]->second, out);
  }
  out += "},";
}

}  // namespace

LeafTemplate::LeafTemplate(const Receipt& r) {
  if (!AllAscii(r)) {
    general_ = r;
    return;
  }
  // Members in JCS order (ASCII names: byte order).
  std::string out = "{";
  Member("chip_id", r.chip_id, out);
  Member("client_address", r.client_address, out);
  Member("decision", r.decision, out);
  Member("evidence_sha256", r.evidence_sha256, out);
  out += "\"images\":[";
  for (size_t i = 0; i < r.images.size(); ++i) {
    if (i > 0) out.push_back(',');
    common::AppendJcsString(r.images[i], out);
  }
  out += "],\"index\":";
  head_ = std::move(out);
  out = ",";
  Member("key_version", r.key_version, out);
  AsciiObject("labels", r.labels, out);
  AsciiObject("measurements", r.measurements, out);
  Member("policy_version", r.policy_version, out);
  Member("reason", r.reason, out);
  Member("resource", r.resource, out);
  Member("rule", r.rule, out);
  Member("session_digest", r.session_digest, out);
  out += "\"shadow\":[";
  for (size_t i = 0; i < r.shadow.size(); ++i) {
    if (i > 0) out.push_back(',');
    out += r.shadow[i].allow ? "{\"allow\":true,\"rule\":" : "{\"allow\":false,\"rule\":";
    common::AppendJcsString(r.shadow[i].rule, out);
    out.push_back('}');
  }
  out += "],";
  Member("tcb_status", r.tcb_status, out);
  Member("tee", r.tee, out);
  out += "\"time\":\"";
  mid_ = std::move(out);
  out = "\",";
  Member("token_id", r.token_id, out);
  out.back() = '}';
  tail_ = std::move(out);
}

absl::StatusOr<std::string> LeafTemplate::Fill(uint64_t index, absl::Time time) const {
  if (general_.has_value()) {
    Receipt r = *general_;
    r.index = index;
    r.time = time;
    return GeneralLeaf(r);
  }
  // JCS writes numbers as doubles: exact (and plain digits) below 2^53.
  if (index >= (uint64_t{1} << 53)) return Invalid("index beyond 2^53");
  std::string leaf = absl::StrCat(head_, index, mid_, FormatReceiptTime(time), tail_);
  if (leaf.size() > kMaxLeafBytes) {
    return Invalid(absl::StrCat("larger than ", kMaxLeafBytes, " bytes"));
  }
  return leaf;
}

absl::StatusOr<std::string> ReceiptLeaf(const Receipt& r) {
  return LeafTemplate(r).Fill(r.index, r.time);
}

absl::StatusOr<uint64_t> LeafIndex(absl::string_view leaf) {
  std::optional<absl::string_view> raw;
  KBS_RETURN_IF_ERROR(ForEachLeafMember(leaf, [&](absl::string_view name, absl::string_view value) {
    if (name == "index" && !raw.has_value()) raw = value;
  }));
  if (!raw.has_value()) return Invalid("no `index` member");
  // A plain integer: no sign, no leading zero, no fraction or exponent.
  if (raw->empty() || raw->size() > 16 || ((*raw)[0] == '0' && raw->size() > 1)) {
    return Invalid("`index` must be a number");
  }
  uint64_t value = 0;
  for (char d : *raw) {
    if (d < '0' || d > '9') return Invalid("`index` must be a number");
    value = value * 10 + static_cast<uint64_t>(d - '0');
  }
  if (value >= (uint64_t{1} << 53)) return Invalid("`index` beyond 2^53");
  return value;
}

absl::Status ForEachLeafMember(
    absl::string_view leaf,
    const std::function<void(absl::string_view name, absl::string_view raw_value)>& fn) {
  if (leaf.empty() || leaf[0] != '{') return Invalid("not a JSON object");
  int depth = 0;
  char last = 0;  // the last structural character outside strings
  absl::string_view name;
  size_t value_start = 0;  // of the current top-level member's value, once seen
  for (size_t i = 0; i < leaf.size(); ++i) {
    const char c = leaf[i];
    if (c == '"') {
      const bool key = depth == 1 && (last == '{' || last == ',');
      const size_t start = i + 1;
      for (++i; i < leaf.size() && leaf[i] != '"'; ++i) {
        if (leaf[i] == '\\') ++i;  // the escaped character cannot end the string
      }
      if (i >= leaf.size()) return Invalid("unterminated string");
      if (key) name = leaf.substr(start, i - start);
      continue;
    }
    switch (c) {
      case '{':
      case '[':
        ++depth;
        break;
      case '}':
      case ']':
        if (depth == 1 && value_start != 0) {
          fn(name, absl::StripAsciiWhitespace(leaf.substr(value_start, i - value_start)));
          value_start = 0;
        }
        if (--depth < 0) return Invalid("unbalanced brackets");
        if (depth == 0 && i + 1 != leaf.size()) return Invalid("bytes after the object");
        break;
      case ':':
        if (depth == 1) value_start = i + 1;
        break;
      case ',':
        if (depth == 1 && value_start != 0) {
          fn(name, absl::StripAsciiWhitespace(leaf.substr(value_start, i - value_start)));
          value_start = 0;
        }
        break;
      default:
        break;
    }
    if (c == '{' || c == '[' || c == '}' || c == ']' || c == ',' || c == ':') last = c;
  }
  if (depth != 0) return Invalid("unterminated object");
  return absl::OkStatus();
}

std::string LeafStringLiteral(absl::string_view value) {
  std::string out;
  if (std::all_of(value.begin(), value.end(), [](char c) { return (c & 0x80) == 0; })) {
    common::AppendJcsString(value, out);
    return out;
  }
  // What GeneralLeaf does to a string: DumpJson replaces invalid UTF-8.
  auto clean = common::ParseTrustedJson(common::DumpJson(Json(std::string(value))));
  common::AppendJcsString(clean.ok() && clean->is_string() ? clean->get<std::string>() : "", out);
  return out;
}

std::string LeafTimeLiteral(absl::Time time) {
  return absl::StrCat("\"", FormatReceiptTime(time), "\"");
}

absl::StatusOr<Receipt> ParseReceiptLeaf(absl::string_view leaf) {
  if (leaf.size() > kMaxLeafBytes) return Invalid("leaf too large");
  auto json = common::ParseJson(leaf);
  if (!json.ok()) return Invalid(json.status().message());
  if (!json->is_object()) return Invalid("not a JSON object");
  Receipt r;
  const Json* index = common::FindMember(*json, "index");
  if (index == nullptr || !index->is_number_unsigned()) return Invalid("`index` must be a number");
  r.index = index->get<uint64_t>();
  KBS_ASSIGN_OR_RETURN(std::string time, Str(*json, "time"));
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, time, &r.time, &err)) return Invalid("bad `time`");
  KBS_ASSIGN_OR_RETURN(r.decision, Str(*json, "decision"));
  if (r.decision != "granted" && r.decision != "denied" && r.decision != "failed" &&
      r.decision != "attested") {
    return Invalid("`decision` must be granted, denied, failed or attested");
  }
  KBS_ASSIGN_OR_RETURN(r.reason, Str(*json, "reason"));
  KBS_ASSIGN_OR_RETURN(r.resource, Str(*json, "resource"));
  KBS_ASSIGN_OR_RETURN(r.key_version, Str(*json, "key_version"));
  KBS_ASSIGN_OR_RETURN(r.tee, Str(*json, "tee"));
  KBS_ASSIGN_OR_RETURN(r.evidence_sha256, Str(*json, "evidence_sha256"));
  KBS_ASSIGN_OR_RETURN(r.measurements, StrMap(*json, "measurements"));
  const Json* images = common::FindMember(*json, "images");
  if (images == nullptr || !images->is_array() || images->size() > kMaxListItems) {
    return Invalid("`images` must be an array of strings");
  }
  for (const Json& i : *images) {
    if (!i.is_string()) return Invalid("`images` must be an array of strings");
    r.images.push_back(i.get<std::string>());
  }
  KBS_ASSIGN_OR_RETURN(r.tcb_status, Str(*json, "tcb_status"));
  KBS_ASSIGN_OR_RETURN(r.chip_id, Str(*json, "chip_id"));
  KBS_ASSIGN_OR_RETURN(r.policy_version, Str(*json, "policy_version"));
  KBS_ASSIGN_OR_RETURN(r.rule, Str(*json, "rule"));
  KBS_ASSIGN_OR_RETURN(r.labels, StrMap(*json, "labels"));
  const Json* shadow = common::FindMember(*json, "shadow");
  if (shadow == nullptr || !shadow->is_array() || shadow->size() > kMaxListItems) {
    return Invalid("`shadow` must be an array");
  }
  for (const Json& s : *shadow) {
    const Json* rule = s.is_object() ? common::FindMember(s, "rule") : nullptr;
    const Json* allow = s.is_object() ? common::FindMember(s, "allow") : nullptr;
    if (rule == nullptr || !rule->is_string() || allow == nullptr || !allow->is_boolean()) {
      return Invalid("`shadow` entries are {rule, allow}");
    }
    r.shadow.push_back({rule->get<std::string>(), allow->get<bool>()});
  }
  KBS_ASSIGN_OR_RETURN(r.client_address, Str(*json, "client_address"));
  KBS_ASSIGN_OR_RETURN(r.session_digest, Str(*json, "session_digest"));
  KBS_ASSIGN_OR_RETURN(r.token_id, Str(*json, "token_id"));
  // Canonical form only: an auditor's re-encoding must hash the same.
  KBS_ASSIGN_OR_RETURN(std::string again, ReceiptLeaf(r));
  if (again != leaf) return Invalid("not in canonical (JCS) form or has unknown members");
  return r;
}

}  // namespace kbs::receipts
