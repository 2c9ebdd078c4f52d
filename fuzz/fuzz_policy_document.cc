// Fuzz target: policy documents (YAML/JSON through yaml-cpp, then the rule
// compiler), and a decision against fixed claims when one compiles.
#include <cstdint>

#include "policy/policy_engine.h"

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  absl::string_view text(reinterpret_cast<const char*>(data), size);
  kbs::policy::PolicyOptions options;
  options.sample_tee_enabled = true;
  auto engine = kbs::policy::CompilePolicy(text, options);
  if (!engine.ok()) return 0;
  static const kbs::policy::ClaimSet* claims = [] {
    auto c = kbs::policy::ClaimsFromJson(
        {{"tee", "snp"},
         {"snp", {{"measurement", std::string(96, 'a')}, {"debug", false}, {"vmpl", 0}}},
         {"images", {"ghcr.io/a/b@sha256:" + std::string(64, '1')}}});
    return new kbs::policy::ClaimSet(*std::move(c));
  }();
  for (const char* path : {"models/llama/key", "a/b/c"}) {
    kbs::policy::PolicyInput in;
    in.resource_path = path;
    in.claims = claims;
    (void)(*engine)->Evaluate(in);
  }
  return 0;
}
