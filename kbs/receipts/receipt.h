// A receipt: what the log records about one release decision. Its leaf
// bytes (what the Merkle tree hashes) are the RFC 8785 (JCS) canonical JSON
// of the receipt, so an auditor can read and re-hash a leaf with ordinary
// tools (`jq -cS`, `sha256sum`). Never holds key material or raw evidence
// (only the evidence's SHA-256; the evidence itself is stored apart).
#ifndef KBS_KBS_RECEIPTS_RECEIPT_H_
#define KBS_KBS_RECEIPTS_RECEIPT_H_

#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <utility>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json.h"

namespace kbs::receipts {

struct ShadowVerdict {
  std::string rule;
  bool allow = false;
};

struct Receipt {
  uint64_t index = 0;  // assigned by the log
  absl::Time time;     // assigned by the log (its clock, microseconds)
  // "granted" | "denied" | "failed" (release decisions and failed
  // attestations) | "attested" (a verified attestation and its token).
  std::string decision;
  std::string reason;
  std::string resource;     // repo/type/tag ("" for a failed attestation)
  std::string key_version;  // "" until the key store versions values
  std::string tee;
  std::string evidence_sha256;  // hex, of the evidence as received
  // Register name ("snp.measurement") -> value, from the verified claims.
  std::vector<std::pair<std::string, std::string>> measurements;
  std::vector<std::string> images;
  std::string tcb_status;
  std::string chip_id;
  std::string policy_version;
  std::string rule;
  std::vector<std::pair<std::string, std::string>> labels;
  std::vector<ShadowVerdict> shadow;
  std::string client_address;
  std::string session_digest;  // hex SHA-256 of the session id
  std::string token_id;
};

inline constexpr size_t kMaxLeafBytes = 64 * 1024;

common::Json ReceiptToJson(const Receipt& r);
// The leaf bytes: JCS(ReceiptToJson(r)), with invalid UTF-8 replaced by
// U+FFFD.
absl::StatusOr<std::string> ReceiptLeaf(const Receipt& r);

// The leaf bytes of a receipt whose index and time are not yet assigned:
// appenders serialize in parallel, and the log's single writer only splices
// in the two values it assigns. Fill(i, t) == ReceiptLeaf(r with index i and
// time t).
class LeafTemplate {
 public:
  explicit LeafTemplate(const Receipt& r);
  absl::StatusOr<std::string> Fill(uint64_t index, absl::Time time) const;

 private:
  // All-ASCII receipts (the usual case) are serialized directly: the
  // canonical bytes before the index, between index and time, after time.
  std::string head_, mid_, tail_;
  // Others keep the receipt and go through ReceiptToJson and JCS in Fill
  // (UTF-8 repair, member order by UTF-16 code units).
  std::optional<Receipt> general_;
};
// The index a leaf states (its top-level "index" member), found in one scan
// that tracks strings and nesting without decoding anything else: what
// `kbsctl audit verify` checks for every leaf of a large log. InvalidArgument
// when the leaf is not an object with a plain integer "index" below 2^53.
absl::StatusOr<uint64_t> LeafIndex(absl::string_view leaf);
// The raw JSON text of each top-level member's value of a leaf (a string
// value with its quotes and escapes, exactly as stored), found in one scan
// like LeafIndex: start-up verification compares the receipts table's query
// columns with their leaf this way. InvalidArgument when the leaf is not a
// well-nested object.
absl::Status ForEachLeafMember(
    absl::string_view leaf,
    const std::function<void(absl::string_view name, absl::string_view raw_value)>& fn);
// The leaf encoding of a receipt string field: its JCS string literal, with
// invalid UTF-8 replaced (U+FFFD) as the leaf does.
std::string LeafStringLiteral(absl::string_view value);
// The leaf encoding of a receipt time (RFC 3339, microseconds, UTC), quoted.
std::string LeafTimeLiteral(absl::Time time);
// Decodes leaf bytes (bounded; InvalidArgument names the field). Accepts
// only the canonical form: re-encoding must give the same bytes.
absl::StatusOr<Receipt> ParseReceiptLeaf(absl::string_view leaf);

}  // namespace kbs::receipts

#endif  // KBS_KBS_RECEIPTS_RECEIPT_H_
