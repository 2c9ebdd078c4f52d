#include "kbs/core/audit.h"

#include <algorithm>

#include "absl/status/status.h"
#include "absl/strings/escaping.h"
#include "absl/strings/str_cat.h"
#include "common/status_macros.h"
#include "kbs/core/errors.h"
#include "kbs/receipts/receipt.h"

namespace kbs {
namespace {

using common::Json;

Json HashesJson(const std::vector<receipts::Hash>& hashes) {
  Json out = Json::array();
  for (const receipts::Hash& h : hashes) {
    out.push_back(
        absl::Base64Escape(absl::string_view(reinterpret_cast<const char*>(h.data()), h.size())));
  }
  return out;
}

absl::Status Mapped(const absl::Status& s) {
  return KbsError(s.code(), ErrorKind::kPluginInternalError, s.message());
}

}  // namespace

absl::Status Audit::Authorize(absl::string_view token) const {
  if (absl::Status s = auditors_->Authorize(token); !s.ok()) {
    return KbsError(absl::StatusCode::kUnauthenticated, ErrorKind::kAdminAuthAccess,
                    absl::StrCat("auditor authentication failed: ", s.message()));
  }
  return absl::OkStatus();
}

absl::StatusOr<std::string> Audit::Checkpoint(absl::string_view token, bool fresh) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto note = log_->LatestCheckpoint(fresh);
  if (!note.ok()) return Mapped(note.status());
  return note;
}

absl::StatusOr<std::vector<receipts::StoredReceipt>> Audit::Receipts(absl::string_view token,
                                                                     uint64_t start, uint64_t end) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto out = log_->Range(start, end);
  if (!out.ok()) return Mapped(out.status());
  return out;
}

absl::StatusOr<std::string> Audit::LeafLines(absl::string_view token, uint64_t start,
                                             uint64_t end) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  std::string out;
  if (end > start) {
    out.reserve(std::min({end - start, log_->size(), receipts::ReceiptLog::kMaxRange}) * 1024);
  }
  if (absl::Status s = log_->AppendLeafLines(start, end, out); !s.ok()) return Mapped(s);
  return out;
}

absl::StatusOr<std::vector<receipts::StoredReceipt>> Audit::Query(absl::string_view token,
                                                                  const receipts::ReceiptQuery& q) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto out = log_->Query(q);
  if (!out.ok()) return Mapped(out.status());
  return out;
}

absl::StatusOr<Json> Audit::InclusionProof(absl::string_view token, uint64_t index, uint64_t size) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto proof = log_->InclusionProof(index, size);
  if (!proof.ok()) return Mapped(proof.status());
  return Json{{"index", index}, {"size", size}, {"hashes", HashesJson(*proof)}};
}

absl::StatusOr<Json> Audit::ConsistencyProof(absl::string_view token, uint64_t size1,
                                             uint64_t size2) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto proof = log_->ConsistencyProof(size1, size2);
  if (!proof.ok()) return Mapped(proof.status());
  return Json{{"size1", size1}, {"size2", size2}, {"hashes", HashesJson(*proof)}};
}

absl::StatusOr<std::string> Audit::Prove(absl::string_view token, uint64_t index) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  auto proof = log_->Prove(index);
  if (!proof.ok()) return Mapped(proof.status());
  return receipts::EncodeTlogProof(*proof);
}

absl::StatusOr<std::string> Audit::Evidence(absl::string_view token, uint64_t index) {
  KBS_RETURN_IF_ERROR(Authorize(token));
  if (index >= log_->size()) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                    absl::StrCat("no receipt ", index));
  }
  auto rows = log_->Range(index, index + 1);
  if (!rows.ok()) return Mapped(rows.status());
  if (rows->empty()) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                    absl::StrCat("no receipt ", index));
  }
  auto receipt = receipts::ParseReceiptLeaf(rows->front().leaf);
  if (!receipt.ok()) return Mapped(receipt.status());
  if (receipt->evidence_sha256.empty()) {
    return KbsError(absl::StatusCode::kNotFound, ErrorKind::kPluginInternalError,
                    absl::StrCat("receipt ", index, " names no evidence"));
  }
  auto evidence = log_->Evidence(receipt->token_id, receipt->evidence_sha256);
  if (!evidence.ok()) return Mapped(evidence.status());
  return evidence;
}

}  // namespace kbs
