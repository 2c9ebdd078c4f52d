// The rule engine behind policy documents (docs/policy.md): compiles a
// PolicyDocument's rules (semantic checks: TEE and register names, value
// formats, resource patterns, expressions) and indexes them, so a decision
// looks up the rules governing one resource — and, in large buckets, the
// rules admitting the attested measurement — instead of scanning them all.
//
// Decision semantics:
//  - A rule governs a resource when one of its `resources` patterns matches
//    (`*` within one path segment, `**` across segments).
//  - An enforcing rule allows when every check passes, in this order: the
//    attested TEE is listed; the guest is not debuggable unless
//    `allow_debug`; each listed register of that TEE has an allowed value;
//    every pod image is allowed (and there is at least one); every
//    condition is true.
//  - Allow iff some enforcing rule allows; the first in document order
//    decides. No governing rule means deny. Shadow rules are evaluated and
//    reported, and never grant.
#ifndef KBS_POLICY_RULE_ENGINE_H_
#define KBS_POLICY_RULE_ENGINE_H_

#include <memory>
#include <vector>

#include "policy/document.h"
#include "policy/policy_engine.h"

namespace kbs::policy {

// Every semantic error goes to `errors` (with the rule, field and line);
// returns nullptr when there is any.
std::unique_ptr<PolicyEngine> CompileRules(const PolicyDocument& doc, const PolicyOptions& options,
                                           std::vector<PolicyError>& errors);

// Whether `pattern` (a resource pattern) matches `path`.
bool ResourcePatternMatches(absl::string_view pattern, absl::string_view path);

}  // namespace kbs::policy

#endif  // KBS_POLICY_RULE_ENGINE_H_
