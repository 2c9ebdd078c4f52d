// `kbsctl audit ...`: the auditor's tools for the receipt log (docs/audit.md).
// Online commands talk to the KBS's HTTP audit endpoints with an auditor
// token; `verify-proof` and the checks inside `verify` run offline against
// the log's public key.
#ifndef KBS_KBS_CLI_AUDIT_COMMANDS_H_
#define KBS_KBS_CLI_AUDIT_COMMANDS_H_

#include <string>

#include "absl/status/statusor.h"

namespace kbs::cli {

struct AuditArgs {
  std::string url, cacert, token;  // token: an auditor JWT ("" for public calls)
  std::string out, proof, entry, log_key, from_checkpoint, format = "jsonl", export_file;
  uint64_t index = 0;
  bool fresh = false;
  // list filters
  std::string from, to, decision, resource, key_version, image, measurement, tee, policy, rule,
      chip_id;
};

// Each returns the process exit code (0 ok, 1 failure, 2 bad input) after
// printing the result or the reason.
int AuditLogKey(const AuditArgs& a);
int AuditCheckpoint(const AuditArgs& a);
int AuditList(const AuditArgs& a);
int AuditProve(const AuditArgs& a);
int AuditVerifyProof(const AuditArgs& a);
int AuditVerify(const AuditArgs& a);
// Verifies the log as AuditVerify does, then writes FILE.jsonl: one line per
// receipt, {"index":N,"proof":"<c2sp tlog-proof>","receipt":{...leaf...}},
// every proof against the verified checkpoint.
int AuditExport(const AuditArgs& a);
// Offline: checks every line of an export against the log key.
int AuditVerifyExport(const AuditArgs& a);

}  // namespace kbs::cli

#endif  // KBS_KBS_CLI_AUDIT_COMMANDS_H_
