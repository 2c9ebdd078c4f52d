// The auditor's side of the receipt log: read-only operations, each
// authorized with an auditor token (keys given by --auditor-public-key,
// made with `kbsctl admin keygen`). Auditors read the log and nothing else;
// no operation here changes a receipt. Front ends (HTTP, gRPC) translate to
// these calls.
#ifndef KBS_KBS_CORE_AUDIT_H_
#define KBS_KBS_CORE_AUDIT_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"
#include "kbs/admin/admin_auth.h"
#include "kbs/receipts/receipt_log.h"

namespace kbs {

// Thread-safe. Dependencies must outlive it.
class Audit final {
 public:
  Audit(receipts::ReceiptLog* log, const admin::AdminAuthenticator* auditors)
      : log_(log), auditors_(auditors) {}

  // The latest signed checkpoint note (`fresh`: sign one covering every
  // receipt first).
  absl::StatusOr<std::string> Checkpoint(absl::string_view token, bool fresh);
  // The log's C2SP note verifier key; public, no token needed.
  const std::string& LogKey() const { return log_->verifier_key(); }
  // At most 1000 receipts per call.
  absl::StatusOr<std::vector<receipts::StoredReceipt>> Receipts(absl::string_view token,
                                                                uint64_t start, uint64_t end);
  // Receipts [start, end) as leaf bytes, one per line (up to
  // ReceiptLog::kMaxRange): the bulk download.
  absl::StatusOr<std::string> LeafLines(absl::string_view token, uint64_t start, uint64_t end);
  absl::StatusOr<std::vector<receipts::StoredReceipt>> Query(absl::string_view token,
                                                             const receipts::ReceiptQuery& q);
  // {"index","size","hashes":[base64]} / {"size1","size2","hashes":[...]}.
  absl::StatusOr<common::Json> InclusionProof(absl::string_view token, uint64_t index,
                                              uint64_t size);
  absl::StatusOr<common::Json> ConsistencyProof(absl::string_view token, uint64_t size1,
                                                uint64_t size2);
  // The C2SP tlog-proof text of receipt `index`.
  absl::StatusOr<std::string> Prove(absl::string_view token, uint64_t index);
  // The stored evidence of receipt `index` (what its evidence_sha256 names).
  absl::StatusOr<std::string> Evidence(absl::string_view token, uint64_t index);

 private:
  absl::Status Authorize(absl::string_view token) const;
  receipts::ReceiptLog* log_;
  const admin::AdminAuthenticator* auditors_;
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_AUDIT_H_
