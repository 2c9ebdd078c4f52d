#include "policy/rule_engine.h"

#include <algorithm>

#include "absl/container/flat_hash_map.h"
#include "absl/container/flat_hash_set.h"
#include "absl/container/inlined_vector.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/str_replace.h"
#include "absl/strings/str_split.h"

namespace kbs::policy {
namespace {

// Buckets with more rules than this also index by register value.
constexpr size_t kSmallBucket = 8;
constexpr size_t kMaxPatternBytes = 256;
constexpr size_t kMaxLabelValueBytes = 128;

// Primary TEE types (kbs-protocol.md §7.1) a rule may admit.
constexpr absl::string_view kPrimaryTees[] = {"snp",         "tdx",         "sgx", "sample",
                                              "az-snp-vtpm", "az-tdx-vtpm", "cca", "csv",
                                              "se",          "hygondcu",    "tpm"};
// Device TEEs: their registers may appear in rules beside a primary TEE.
constexpr absl::string_view kDeviceTees[] = {"nvidia", "sampledevice"};

bool IsPrimaryTee(absl::string_view tee) {
  return std::find(std::begin(kPrimaryTees), std::end(kPrimaryTees), tee) != std::end(kPrimaryTees);
}
bool IsDeviceTee(absl::string_view tee) {
  return std::find(std::begin(kDeviceTees), std::end(kDeviceTees), tee) != std::end(kDeviceTees);
}
bool IsSampleTee(absl::string_view tee) { return tee == "sample" || tee == "sampledevice"; }

// Registers whose values have a fixed size: inline values are checked, so a
// truncated or mistyped measurement is an error when the policy is set,
// not a silent never-match.
struct KnownRegister {
  absl::string_view name;
  size_t hex_digits;
};
constexpr KnownRegister kKnownRegisters[] = {
    {"snp.measurement", 96},     {"snp.host_data", 64},
    {"snp.id_key_digest", 96},   {"snp.author_key_digest", 96},
    {"snp.family_id", 32},       {"snp.image_id", 32},
    {"snp.chip_id", 128},        {"tdx.mr_td", 96},
    {"tdx.mr_config_id", 96},    {"tdx.mr_owner", 96},
    {"tdx.mr_owner_config", 96}, {"tdx.rtmr_0", 96},
    {"tdx.rtmr_1", 96},          {"tdx.rtmr_2", 96},
    {"tdx.rtmr_3", 96},          {"tdx.mr_seam", 96},
    {"tdx.mr_signer_seam", 96},  {"sgx.mr_enclave", 64},
    {"sgx.mr_signer", 64},
};

bool IsHex(absl::string_view s) {
  for (char c : s) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return false;
  }
  return true;
}

bool IsName(absl::string_view s, size_t max) {
  if (s.empty() || s.size() > max) return false;
  for (char c : s) {
    if (!absl::ascii_isalnum(static_cast<unsigned char>(c)) && c != '_' && c != '.' && c != '-') {
      return false;
    }
  }
  return true;
}

bool IsLabelKey(absl::string_view s) {
  if (s.empty() || s.size() > 64 || absl::ascii_isdigit(static_cast<unsigned char>(s[0]))) {
    return false;
  }
  for (char c : s) {
    if (!absl::ascii_islower(static_cast<unsigned char>(c)) &&
        !absl::ascii_isdigit(static_cast<unsigned char>(c)) && c != '_') {
      return false;
    }
  }
  return true;
}

// "sha256:<64 hex>" → normalized digest, or "" when not one.
std::string NormalizeDigest(absl::string_view s) {
  if (!absl::StartsWith(s, "sha256:")) return "";
  absl::string_view hex = s.substr(7);
  if (hex.size() != 64 || !IsHex(hex)) return "";
  return absl::StrCat("sha256:", absl::AsciiStrToLower(hex));
}

// Register claims are lowercase hex as our verifiers write them; a value
// with uppercase hex digits is compared lowercased (as rule values are).
absl::string_view Lowered(absl::string_view value, std::string& storage) {
  bool upper = false;
  for (char c : value) {
    if (!absl::ascii_isxdigit(static_cast<unsigned char>(c))) return value;
    upper |= (c >= 'A' && c <= 'F');
  }
  if (!upper) return value;
  storage = absl::AsciiStrToLower(value);
  return storage;
}

// A long value shortened for explanations: "6a6519d7c8b4…" (never cutting
// a UTF-8 sequence).
std::string Abbrev(absl::string_view s) {
  if (s.size() <= 16) return std::string(s);
  size_t cut = 12;
  while (cut > 0 && (static_cast<unsigned char>(s[cut]) & 0xC0) == 0x80) --cut;
  return absl::StrCat(s.substr(0, cut), "…");
}

// '*' matches any run of characters within one segment.
bool SegmentMatch(absl::string_view pat, absl::string_view s) {
  size_t p = 0, i = 0, star = absl::string_view::npos, mark = 0;
  while (i < s.size()) {
    if (p < pat.size() && pat[p] == '*') {
      star = p++;
      mark = i;
    } else if (p < pat.size() && pat[p] == s[i]) {
      ++p;
      ++i;
    } else if (star != absl::string_view::npos) {
      p = star + 1;
      i = ++mark;
    } else {
      return false;
    }
  }
  while (p < pat.size() && pat[p] == '*') ++p;
  return p == pat.size();
}

using Segments = absl::InlinedVector<absl::string_view, 8>;

bool SegmentsMatch(absl::Span<const std::string> pats, absl::Span<const absl::string_view> segs) {
  if (pats.empty()) return segs.empty();
  if (pats[0] == "**") {
    for (size_t k = 0; k <= segs.size(); ++k) {
      if (SegmentsMatch(pats.subspan(1), segs.subspan(k))) return true;
    }
    return false;
  }
  if (segs.empty()) return false;
  return SegmentMatch(pats[0], segs[0]) && SegmentsMatch(pats.subspan(1), segs.subspan(1));
}

struct Pattern {
  std::string text;
  std::vector<std::string> segments;
  bool literal = true;
  std::string index_key;  // the path (literal) or its leading literal segments + '/'
};

struct CompiledRegister {
  std::string name;  // "snp.measurement": also the claim path
  std::string tee;
  absl::flat_hash_set<std::string> values;
  std::string refset;
};

struct CompiledRule {
  uint32_t index = 0;
  std::string name;
  bool shadow = false;
  bool allow_debug = false;
  std::vector<Pattern> patterns;
  std::vector<std::string> tees;
  std::vector<CompiledRegister> registers;
  bool has_images = false;
  absl::flat_hash_set<std::string> image_values;  // "sha256:…" or "name@sha256:…"
  std::string image_refset;
  std::vector<std::unique_ptr<cel::Expression>> conditions;
  std::vector<std::pair<std::string, std::string>> labels;

  bool Admits(absl::string_view tee) const {
    return std::find(tees.begin(), tees.end(), tee) != tees.end();
  }
};

struct Entry {
  uint32_t rule;
  int32_t pattern;  // index into the rule's patterns
};

struct Bucket {
  std::vector<Entry> all;  // document order
  struct ByRegister {
    std::string reg;
    absl::flat_hash_map<std::string, std::vector<Entry>> by_value;
  };
  struct TeeIndex {
    std::vector<Entry> scan;  // rules for this TEE without an inline register
    std::vector<ByRegister> registers;
  };
  bool indexed = false;
  absl::flat_hash_map<std::string, TeeIndex> by_tee;
};

using RuleIds = absl::InlinedVector<uint32_t, 16>;

// Rules by the resources they govern: literal paths exactly, patterns by
// their leading literal segments (a path "a/b/c" looks up "", "a/", "a/b/").
class RuleIndex {
 public:
  void Add(const CompiledRule& rule) {
    for (size_t p = 0; p < rule.patterns.size(); ++p) {
      const Pattern& pattern = rule.patterns[p];
      auto& map = pattern.literal ? exact_ : prefix_;
      map[pattern.index_key].all.push_back({rule.index, static_cast<int32_t>(p)});
    }
  }

  void Finish(const std::vector<CompiledRule>& rules) {
    for (auto* map : {&exact_, &prefix_}) {
      for (auto& [key, bucket] : *map) {
        if (bucket.all.size() <= kSmallBucket) continue;
        bucket.indexed = true;
        for (const Entry& e : bucket.all) {
          const CompiledRule& rule = rules[e.rule];
          for (const std::string& tee : rule.tees) {
            Bucket::TeeIndex& ti = bucket.by_tee[tee];
            // Any allowing rule must match its first register for this
            // TEE, so that value is a complete index key.
            const CompiledRegister* first = nullptr;
            for (const CompiledRegister& reg : rule.registers) {
              if (reg.tee == tee) {
                first = &reg;
                break;
              }
            }
            if (first == nullptr || !first->refset.empty()) {
              ti.scan.push_back(e);
              continue;
            }
            auto it =
                std::find_if(ti.registers.begin(), ti.registers.end(),
                             [&](const Bucket::ByRegister& b) { return b.reg == first->name; });
            if (it == ti.registers.end()) {
              ti.registers.push_back({first->name, {}});
              it = ti.registers.end() - 1;
            }
            for (const std::string& v : first->values) it->by_value[v].push_back(e);
          }
        }
      }
    }
  }

  // Every rule governing `path` (document order, no duplicates).
  void Governing(absl::string_view path, const std::vector<CompiledRule>& rules,
                 RuleIds& out) const {
    Segments segs = absl::StrSplit(path, '/');
    ForEachBucket(path, [&](const Bucket& b) { AddMatching(b.all, rules, segs, out); });
    Finalize(out);
  }

  // The rules governing `path` that could admit the attested TEE with its
  // register values: a superset of the allowing rules, usually tiny.
  void Admitting(absl::string_view path, const ClaimSet& claims,
                 const std::vector<CompiledRule>& rules, RuleIds& out) const {
    Segments segs = absl::StrSplit(path, '/');
    ForEachBucket(path, [&](const Bucket& b) {
      if (!b.indexed) {
        AddMatching(b.all, rules, segs, out);
        return;
      }
      auto ti = b.by_tee.find(claims.tee);
      if (ti == b.by_tee.end()) return;
      AddMatching(ti->second.scan, rules, segs, out);
      for (const Bucket::ByRegister& reg : ti->second.registers) {
        const Value* v = claims.root.FindPath(reg.reg);
        if (v == nullptr || !v->is_string()) continue;
        std::string storage;
        auto hit = reg.by_value.find(Lowered(v->string_value(), storage));
        if (hit != reg.by_value.end()) AddMatching(hit->second, rules, segs, out);
      }
    });
    Finalize(out);
  }

 private:
  template <typename F>
  void ForEachBucket(absl::string_view path, F f) const {
    if (auto it = exact_.find(path); it != exact_.end()) f(it->second);
    if (prefix_.empty()) return;
    // "", "a/", "a/b/", ... (every leading run of whole segments).
    for (size_t pos = 0;;) {
      if (auto it = prefix_.find(path.substr(0, pos)); it != prefix_.end()) f(it->second);
      size_t slash = path.find('/', pos);
      if (slash == absl::string_view::npos) break;
      pos = slash + 1;
    }
  }

  static void AddMatching(const std::vector<Entry>& entries, const std::vector<CompiledRule>& rules,
                          const Segments& segs, RuleIds& out) {
    for (const Entry& e : entries) {
      const Pattern& p = rules[e.rule].patterns[e.pattern];
      if (p.literal || SegmentsMatch(p.segments, segs)) out.push_back(e.rule);
    }
  }

  static void Finalize(RuleIds& out) {
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
  }

  absl::flat_hash_map<std::string, Bucket> exact_;
  absl::flat_hash_map<std::string, Bucket> prefix_;
};

class RulePolicy final : public PolicyEngine {
 public:
  RulePolicy(std::string id, common::Json document, std::vector<CompiledRule> rules,
             const PolicyOptions& options)
      : id_(std::move(id)),
        document_(std::move(document)),
        rules_(std::move(rules)),
        sample_enabled_(options.sample_tee_enabled) {
    for (const CompiledRule& rule : rules_) (rule.shadow ? shadow_ : enforce_).Add(rule);
    enforce_.Finish(rules_);
    shadow_.Finish(rules_);
  }

  const std::string& id() const override { return id_; }
  const common::Json& document() const override { return document_; }

  std::vector<std::string> referenced_sets() const override {
    std::vector<std::string> out;
    for (const CompiledRule& rule : rules_) {
      for (const CompiledRegister& reg : rule.registers) {
        if (!reg.refset.empty()) out.push_back(reg.refset);
      }
      if (!rule.image_refset.empty()) out.push_back(rule.image_refset);
    }
    std::sort(out.begin(), out.end());
    out.erase(std::unique(out.begin(), out.end()), out.end());
    return out;
  }

  absl::StatusOr<Decision> Evaluate(const PolicyInput& input) const override {
    if (input.claims == nullptr) return absl::InternalError("policy input without claims");
    Decision d;
    d.policy_id = id_;
    RuleIds ids;
    enforce_.Admitting(input.resource_path, *input.claims, rules_, ids);
    for (uint32_t id : ids) {
      if (Check(rules_[id], input, nullptr)) {
        d.allow = true;
        d.rule = rules_[id].name;
        d.labels = rules_[id].labels;
        break;
      }
    }
    if (!d.allow) Explain(input, d);
    // Shadow rules: what they would have decided.
    RuleIds shadow_ids;
    shadow_.Governing(input.resource_path, rules_, shadow_ids);
    for (size_t i = 0; i < shadow_ids.size() && i < kMaxExplainedRules; ++i) {
      RuleVerdict v;
      v.allow = Check(rules_[shadow_ids[i]], input, &v);
      v.rule = rules_[shadow_ids[i]].name;
      v.labels = rules_[shadow_ids[i]].labels;
      d.shadow.push_back(std::move(v));
    }
    return d;
  }

 private:
  void Explain(const PolicyInput& input, Decision& d) const {
    RuleIds ids;
    enforce_.Governing(input.resource_path, rules_, ids);
    if (ids.empty()) {
      d.reason = absl::StrCat("no rule governs resource ", input.resource_path);
      d.client_reason = d.reason;
      return;
    }
    std::vector<std::string> reasons, client;
    for (size_t i = 0; i < ids.size() && i < kMaxExplainedRules; ++i) {
      RuleVerdict v;
      v.rule = rules_[ids[i]].name;
      v.labels = rules_[ids[i]].labels;
      // Fast path said no rule allows; re-checking with reasons agrees
      // unless the rule was not an index candidate (then it fails its
      // first register, which Check reports).
      v.allow = Check(rules_[ids[i]], input, &v);
      reasons.push_back(v.reason);
      client.push_back(v.client_reason);
      d.candidates.push_back(std::move(v));
    }
    if (ids.size() > kMaxExplainedRules) {
      std::string more =
          absl::StrCat("and ", ids.size() - kMaxExplainedRules, " more rules did not allow");
      reasons.push_back(more);
      client.push_back(more);
    }
    d.reason = absl::StrJoin(reasons, "; ");
    d.client_reason = absl::StrJoin(client, "; ");
  }

  // True when `rule` allows. With `why`, a failure fills its reasons.
  bool Check(const CompiledRule& rule, const PolicyInput& input, RuleVerdict* why) const {
    const ClaimSet& claims = *input.claims;
    auto fail = [&](std::string reason, std::string client) {
      if (why != nullptr) {
        why->reason = absl::StrCat("rule ", rule.name, ": ", reason);
        why->client_reason = absl::StrCat("rule ", rule.name, ": ", client);
      }
      return false;
    };
    if (!rule.Admits(claims.tee)) {
      if (why == nullptr) return false;
      std::string text = absl::StrCat("TEE ", claims.tee, " is not admitted");
      return fail(absl::StrCat(text, " (the rule admits ", absl::StrJoin(rule.tees, ", "), ")"),
                  text);
    }
    if (IsSampleTee(claims.tee) && !sample_enabled_) {
      std::string text = "the sample TEE is disabled on this KBS";
      return fail(text, text);
    }
    if (!rule.allow_debug && claims.debug != std::optional<bool>(false)) {
      if (why == nullptr) return false;
      if (claims.debug.has_value()) {
        return fail("debug guest not admitted (the rule does not set allow_debug)",
                    "debug guest not admitted");
      }
      std::string text =
          absl::StrCat("the ", claims.tee, " claims do not say whether the guest is debuggable");
      return fail(text, text);
    }
    for (const CompiledRegister& reg : rule.registers) {
      if (reg.tee != claims.tee) {
        // Another primary TEE's registers do not apply; a device's do, and
        // the device must have attested.
        if (!IsDeviceTee(reg.tee)) continue;
        if (std::find(claims.tees.begin(), claims.tees.end(), reg.tee) == claims.tees.end()) {
          std::string text =
              absl::StrCat("device ", reg.tee, " did not attest (", reg.name, " is required)");
          return fail(text, text);
        }
      }
      const Value* v = claims.root.FindPath(reg.name);
      if (v == nullptr) {
        std::string text = absl::StrCat("claim ", reg.name, " is absent");
        return fail(text, text);
      }
      if (!v->is_string()) {
        std::string text = absl::StrCat("claim ", reg.name, " is not a string");
        return fail(text, text);
      }
      std::string storage;
      absl::string_view value = Lowered(v->string_value(), storage);
      if (reg.refset.empty()) {
        if (reg.values.contains(value)) continue;
        if (why == nullptr) return false;
        return fail(absl::StrCat(reg.name, " ", Abbrev(value), " not in the rule's ",
                                 reg.values.size(), " allowed values"),
                    absl::StrCat(reg.name, " ", Abbrev(value), " is not an allowed value"));
      }
      RefMatch m = input.refvalues != nullptr ? input.refvalues->Match(reg.refset, value, input.now)
                                              : RefMatch::kNoSuchSet;
      if (m == RefMatch::kMatch) continue;
      if (why == nullptr) return false;
      std::string client = absl::StrCat(reg.name, " ", Abbrev(value), " is not an allowed value");
      switch (m) {
        case RefMatch::kExpired:
          return fail(
              absl::StrCat(reg.name, " ", Abbrev(value), " in set ", reg.refset, " has expired"),
              absl::StrCat(reg.name, " ", Abbrev(value), " is no longer allowed"));
        case RefMatch::kNoSuchSet:
          return fail(absl::StrCat("reference-value set ", reg.refset, " does not exist (",
                                   reg.name, " ", Abbrev(value), ")"),
                      client);
        default:
          return fail(absl::StrCat(reg.name, " ", Abbrev(value), " not in set ", reg.refset),
                      client);
      }
    }
    if (rule.has_images && !CheckImages(rule, input, fail)) return false;
    for (size_t i = 0; i < rule.conditions.size(); ++i) {
      cel::Outcome outcome = rule.conditions[i]->Evaluate(claims.root);
      if (outcome.pass) continue;
      if (why == nullptr) return false;
      const cel::Expression& e = *rule.conditions[i];
      return fail(
          absl::StrCat("condition ", i + 1, " `", e.source(), "` failed: ", outcome.explanation),
          absl::StrCat("condition ", i + 1, " failed (", absl::StrJoin(e.referenced_claims(), ", "),
                       ")"));
    }
    if (why != nullptr)
      why->reason = why->client_reason = absl::StrCat("rule ", rule.name, " allows");
    return true;
  }

  template <typename Fail>
  bool CheckImages(const CompiledRule& rule, const PolicyInput& input, Fail& fail) const {
    const ClaimSet& claims = *input.claims;
    if (!claims.images.has_value()) {
      std::string text =
          "the pod's verified init-data declares no container images (no agent policy)";
      return fail(text, text);
    }
    if (claims.images->empty()) {
      std::string text = "the pod's agent policy lists no container images";
      return fail(text, text);
    }
    for (const PodImage& image : *claims.images) {
      if (!image.digest.has_value()) {
        std::string text =
            absl::StrCat("image ", image.reference.empty() ? "<unnamed>" : image.reference,
                         " is not pinned by digest");
        return fail(text, text);
      }
      // A bare digest first: the common case, and no string to build.
      bool ok;
      if (rule.image_refset.empty()) {
        ok = rule.image_values.contains(*image.digest) ||
             rule.image_values.contains(absl::StrCat(image.name, "@", *image.digest));
      } else {
        ok =
            input.refvalues != nullptr &&
            (input.refvalues->Match(rule.image_refset, *image.digest, input.now) ==
                 RefMatch::kMatch ||
             input.refvalues->Match(rule.image_refset, absl::StrCat(image.name, "@", *image.digest),
                                    input.now) == RefMatch::kMatch);
      }
      if (!ok) {
        std::string text =
            absl::StrCat("image ", Abbrev(*image.digest), " (", image.reference, ") not allowed");
        return fail(
            rule.image_refset.empty() ? text : absl::StrCat(text, " by set ", rule.image_refset),
            text);
      }
    }
    return true;
  }

  std::string id_;
  common::Json document_;
  std::vector<CompiledRule> rules_;
  bool sample_enabled_;
  RuleIndex enforce_;
  RuleIndex shadow_;
};

class RuleCompiler {
 public:
  RuleCompiler(const PolicyOptions& options, std::vector<PolicyError>& errors)
      : options_(options), errors_(errors) {}

  std::optional<CompiledRule> Compile(const RuleSpec& spec, uint32_t index) {
    spec_ = &spec;
    size_t errors_before = errors_.size();
    CompiledRule rule;
    rule.index = index;
    rule.name = spec.name;
    rule.shadow = spec.shadow;
    rule.allow_debug = spec.allow_debug;
    rule.labels = spec.labels;
    if (!spec.name.empty() && !IsName(spec.name, 128)) {
      Error(spec.PosOf("name"), "name", "a rule name is 1-128 characters of [A-Za-z0-9_.-]");
    }
    for (const std::string& text : spec.resources) rule.patterns.push_back(CompilePattern(text));
    for (const std::string& tee : spec.tees) {
      if (IsDeviceTee(tee)) {
        Error(spec.PosOf("tee"), "tee",
              absl::StrCat(tee,
                           " is a device TEE; a rule admits the primary TEE (list the "
                           "device's registers under measurements)"));
      } else if (!IsPrimaryTee(tee)) {
        Error(spec.PosOf("tee"), "tee",
              absl::StrCat("unknown TEE type \"", tee.substr(0, 32), "\""));
      } else if (rule.Admits(tee)) {
        Error(spec.PosOf("tee"), "tee", absl::StrCat(tee, " is listed twice"));
      } else {
        rule.tees.push_back(tee);
      }
    }
    for (const auto& [name, allowed] : spec.measurements) {
      CompileRegister(name, allowed, rule);
    }
    if (!spec.measurements.empty()) {
      // A rule pinning registers for some of its TEEs but not others would
      // admit the others on images and conditions alone: almost always a
      // slip, so it must be said explicitly by splitting the rule.
      for (const std::string& tee : rule.tees) {
        bool has = std::any_of(rule.registers.begin(), rule.registers.end(),
                               [&](const CompiledRegister& r) { return r.tee == tee; });
        if (!has) {
          Error(spec.PosOf("measurements"), "measurements",
                absl::StrCat("the rule admits ", tee, " but lists no ", tee,
                             " register; list one or move ", tee, " to its own rule"));
        }
      }
    }
    if (spec.images.has_value()) CompileImages(*spec.images, rule);
    for (size_t i = 0; i < spec.conditions.size(); ++i) {
      SourcePos pos = i < spec.condition_pos.size() ? spec.condition_pos[i] : spec.pos;
      auto expr = cel::Expression::Compile(spec.conditions[i], options_.expression_limits);
      if (!expr.ok()) {
        Error(pos, absl::StrCat("conditions[", i, "]"), std::string(expr.status().message()));
      } else {
        rule.conditions.push_back(*std::move(expr));
      }
    }
    for (const auto& [key, value] : spec.labels) {
      if (!IsLabelKey(key)) {
        Error(spec.PosOf("labels"), absl::StrCat("labels.", key.substr(0, 64)),
              "a label name is 1-64 characters of [a-z0-9_], not starting with a digit");
      }
      if (value.size() > kMaxLabelValueBytes) {
        Error(spec.PosOf("labels"), absl::StrCat("labels.", key.substr(0, 64)),
              absl::StrCat("longer than ", kMaxLabelValueBytes, " characters"));
      }
    }
    if (errors_.size() != errors_before) return std::nullopt;
    return rule;
  }

 private:
  Pattern CompilePattern(const std::string& text) {
    Pattern p;
    p.text = text;
    if (text.empty() || text.size() > kMaxPatternBytes) {
      Error(spec_->PosOf("resources"), "resources", "a resource pattern is 1-256 characters");
      return p;
    }
    p.segments = absl::StrSplit(text, '/');
    size_t fixed = 0, stars = 0;
    bool globstar = false;
    std::string key;
    int key_segments = 0;
    bool leading = true;
    for (const std::string& seg : p.segments) {
      bool wild = absl::StrContains(seg, '*');
      if (seg == "**") {
        globstar = true;
      } else {
        ++fixed;
        if (seg.empty() || seg[0] == '.' || !IsName(absl::StrReplaceAll(seg, {{"*", "x"}}), 256) ||
            absl::StrContains(seg, "**")) {
          Error(spec_->PosOf("resources"), "resources",
                absl::StrCat("\"", text.substr(0, 64),
                             "\": each segment is [A-Za-z0-9_.-] with `*` wildcards, or `**`"));
          return p;
        }
      }
      stars += std::count(seg.begin(), seg.end(), '*');
      if (wild) leading = false;
      // Paths have three segments, so a bucket key has at most two.
      if (leading && key_segments < 2) {
        absl::StrAppend(&key, seg, "/");
        ++key_segments;
      }
    }
    if (stars > 8) {
      Error(spec_->PosOf("resources"), "resources",
            absl::StrCat("\"", text.substr(0, 64), "\": at most 8 `*`"));
    }
    if (fixed > 3 || (!globstar && fixed != 3)) {
      Error(spec_->PosOf("resources"), "resources",
            absl::StrCat("\"", text.substr(0, 64), "\" has ", fixed,
                         " segments; resource paths are repository/type/tag (use `*` for a "
                         "segment or `**` for any number)"));
    }
    p.literal = stars == 0;
    p.index_key = p.literal ? text : key;
    return p;
  }

  void CompileRegister(const std::string& name, const AllowedValues& allowed, CompiledRule& rule) {
    std::string field = absl::StrCat("measurements.", name.substr(0, 64));
    size_t dot = name.find('.');
    if (dot == std::string::npos || dot == 0 || dot + 1 == name.size()) {
      Error(allowed.pos, field, "a register is named <tee>.<claim>, e.g. snp.measurement");
      return;
    }
    CompiledRegister reg;
    reg.name = name;
    reg.tee = name.substr(0, dot);
    if (!rule.Admits(reg.tee) && !IsDeviceTee(reg.tee)) {
      Error(allowed.pos, field,
            absl::StrCat("the register names TEE ", reg.tee.substr(0, 32),
                         ", which the rule does not admit"));
      return;
    }
    if (!allowed.refvalues.empty()) {
      if (!IsValidRefValueSetName(allowed.refvalues)) {
        Error(allowed.pos, field, "invalid reference-value set name");
        return;
      }
      reg.refset = allowed.refvalues;
    }
    const KnownRegister* known = nullptr;
    for (const KnownRegister& k : kKnownRegisters) {
      if (k.name == name) known = &k;
    }
    for (size_t i = 0; i < allowed.values.size(); ++i) {
      const std::string& v = allowed.values[i];
      if (known != nullptr && (v.size() != known->hex_digits || !IsHex(v))) {
        Error(allowed.pos, absl::StrCat(field, "[", i, "]"),
              absl::StrCat("\"", Abbrev(v), "\" is not ", known->hex_digits, " hex digits (",
                           known->hex_digits / 2, " bytes)"));
        continue;
      }
      reg.values.insert(NormalizeRefValue(v));
    }
    rule.registers.push_back(std::move(reg));
  }

  void CompileImages(const AllowedValues& allowed, CompiledRule& rule) {
    rule.has_images = true;
    if (!allowed.refvalues.empty()) {
      if (!IsValidRefValueSetName(allowed.refvalues)) {
        Error(allowed.pos, "images", "invalid reference-value set name");
      }
      rule.image_refset = allowed.refvalues;
      return;
    }
    for (size_t i = 0; i < allowed.values.size(); ++i) {
      const std::string& v = allowed.values[i];
      size_t at = v.find('@');
      std::string digest = NormalizeDigest(at == std::string::npos ? v : v.substr(at + 1));
      if (digest.empty() || at == 0) {
        Error(allowed.pos, absl::StrCat("images[", i, "]"),
              absl::StrCat("\"", Abbrev(v),
                           "\" must be sha256:<64 hex> or <name>@sha256:<64 hex> (a tag can "
                           "never be trusted)"));
        continue;
      }
      // Pod images are compared by name (without tag) and digest.
      rule.image_values.insert(
          at == std::string::npos
              ? digest
              : absl::StrCat(ParseImageReference(v.substr(0, at)).name, "@", digest));
    }
  }

  void Error(SourcePos pos, absl::string_view field, std::string message) {
    errors_.push_back(
        {pos, spec_->name.empty() ? "?" : spec_->name, std::string(field), std::move(message)});
  }

  const PolicyOptions& options_;
  std::vector<PolicyError>& errors_;
  const RuleSpec* spec_ = nullptr;
};

}  // namespace

bool ResourcePatternMatches(absl::string_view pattern, absl::string_view path) {
  std::vector<std::string> pats = absl::StrSplit(pattern, '/');
  Segments segs = absl::StrSplit(path, '/');
  return SegmentsMatch(pats, segs);
}

std::unique_ptr<PolicyEngine> CompileRules(const PolicyDocument& doc, const PolicyOptions& options,
                                           std::vector<PolicyError>& errors) {
  size_t errors_before = errors.size();
  RuleCompiler compiler(options, errors);
  std::vector<CompiledRule> rules;
  rules.reserve(doc.rules.size());
  for (const RuleSpec& spec : doc.rules) {
    std::optional<CompiledRule> rule = compiler.Compile(spec, static_cast<uint32_t>(rules.size()));
    if (rule.has_value()) rules.push_back(std::move(*rule));
  }
  if (errors.size() != errors_before) return nullptr;
  return std::make_unique<RulePolicy>(VersionId(doc), CanonicalJson(doc), std::move(rules),
                                      options);
}

}  // namespace kbs::policy
