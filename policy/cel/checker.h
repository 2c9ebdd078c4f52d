// Static checking of a parsed condition, in place:
//  - resolves kCall nodes to the supported functions and methods (size,
//    startsWith, endsWith, contains, matches), rejecting unknown names and
//    wrong arity;
//  - infers static types bottom-up (literals and operators have known types,
//    claims are dyn) and rejects operations that can never succeed, e.g.
//    size(1), !'x', 'a' < 1, 1 in 2, x.startsWith(1), and a condition whose
//    known type is not bool (cel-spec langdef "Gradual Type Checking");
//  - compiles matches() patterns with RE2 (they must be string literals);
//  - folds list and map literals whose elements are all constants into one
//    shared Value, built once here;
//  - records, on nodes that read a claim at a fixed path, that path.
// Errors are InvalidArgument "column N: ...".
#ifndef KBS_POLICY_CEL_CHECKER_H_
#define KBS_POLICY_CEL_CHECKER_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "policy/cel/ast.h"

namespace kbs::policy::cel::internal {

absl::Status Check(Node& root);

// The claim-reading nodes that are not part of a longer claim path (for
// `snp.tcb.snp` only the outer selection), in source order, one per path.
void CollectClaims(const Node& root, std::vector<std::string>& paths,
                   std::vector<const Node*>& nodes);

}  // namespace kbs::policy::cel::internal

#endif  // KBS_POLICY_CEL_CHECKER_H_
