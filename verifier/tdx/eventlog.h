// The TDX CC event log (CCEL, evidence-formats.md §2.7): the log area the
// ACPI "CCEL" table points at, in the TCG crypto-agile format (TCG PC Client
// Platform Firmware Profile 1.06 §10.2-§10.4): one legacy TCG_PCR_EVENT whose
// data is the "Spec ID Event03" structure declaring the digest algorithms and
// their sizes, then TCG_PCR_EVENT2 records until a 0xFFFFFFFF or all-zero
// header or the end of the area. MR index 0 is MRTD, 1..4 are RTMR0..3.
//
// Parsing only checks structure; the log means something only once its
// replay (ReplayRtmrs) equals the RTMRs of a verified quote. All functions
// are thread-safe (no shared state).
#ifndef KBS_VERIFIER_TDX_EVENTLOG_H_
#define KBS_VERIFIER_TDX_EVENTLOG_H_

#include <array>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "common/json.h"

namespace kbs::verifier::tdx {

// TCG algorithm registry ids (TPM_ALG_ID) the log may declare.
inline constexpr uint16_t kTpmAlgSha1 = 0x0004;
inline constexpr uint16_t kTpmAlgSha256 = 0x000B;
inline constexpr uint16_t kTpmAlgSha384 = 0x000C;
inline constexpr uint16_t kTpmAlgSha512 = 0x000D;

inline constexpr uint32_t kEvNoAction = 0x00000003;
inline constexpr uint32_t kEvIpl = 0x0000000D;

inline constexpr size_t kMaxEventLogSize = 16 << 20;
inline constexpr size_t kMaxEvents = 100000;
inline constexpr size_t kRtmrCount = 4;
inline constexpr size_t kSha384Size = 48;

// The "Spec ID Event03" structure (TCG_EfiSpecIDEventStruct, PFP §10.4.5.1).
struct SpecIdEvent {
  struct Algorithm {
    uint16_t id = 0;
    uint16_t digest_size = 0;
  };
  uint32_t platform_class = 0;
  uint8_t spec_version_minor = 0;
  uint8_t spec_version_major = 0;
  uint8_t spec_errata = 0;
  uint8_t uintn_size = 0;
  std::vector<Algorithm> algorithms;  // distinct ids, always including SHA-384
  std::string vendor_info;
};

// One TCG_PCR_EVENT2 record. Digests for algorithms other than SHA-384 are
// checked for shape and dropped.
struct CcEvent {
  uint32_t mr_index = 0;  // 0 = MRTD, 1..4 = RTMR0..3
  uint32_t type = 0;
  std::string sha384;  // raw 48-byte SHA-384 digest ("" if the record has none)
  std::string data;    // raw event bytes
};

struct CcEventLog {
  SpecIdEvent spec_id;
  // The TCG_PCR_EVENT2 records in log order, EV_NO_ACTION ones included; the
  // leading Spec ID event is not among them (it is `spec_id`).
  std::vector<CcEvent> events;
};

// Bounds-checked parse of a CCEL log area of at most kMaxEventLogSize bytes
// holding at most kMaxEvents records. InvalidArgument names the record
// (record 0 is the Spec ID event, events[i] is record i + 1) and its offset
// on: a truncated record; a missing or malformed Spec ID event, or one that
// does not declare SHA-384 (48 bytes); a digest count of 0 or above the
// number of declared algorithms; an algorithm the Spec ID event did not
// declare, or one repeated in a record; an MR index other than 0..4; a
// record extending an RTMR (index 1..4, not EV_NO_ACTION) without a SHA-384
// digest; an event size beyond the buffer; too large a buffer or too many
// records. Trailing bytes after the terminating header are not examined.
absl::StatusOr<CcEventLog> ParseCcEventLog(absl::Span<const uint8_t> data);

// RTMR0..3 (48 raw bytes each) replayed from the log: each starts as 48 zero
// bytes and RTMR[i-1] = SHA-384(RTMR[i-1] || sha384) for every record with
// MR index i in 1..4 and type other than EV_NO_ACTION, in log order.
std::array<std::string, kRtmrCount> ReplayRtmrs(const CcEventLog& log);

// The TCG PFP name of an event type ("EV_IPL", "EV_EFI_ACTION", ...), or ""
// when the type is not one the spec names.
absl::string_view EventTypeName(uint32_t type);

// The events as claims: a JSON array with one object per event,
//   {"index": mr_index, "type": name or "0x%08x", "type_value": type,
//    "digest": lowercase hex SHA-384 (absent when the record has none),
//    "data": text}
// where "data" is present only when the event bytes, after trimming trailing
// NULs, are non-empty printable UTF-8 (tab, CR and LF allowed); longer text
// is cut to 4096 bytes at a character boundary.
common::Json EventLogClaims(const CcEventLog& log);

}  // namespace kbs::verifier::tdx

#endif  // KBS_VERIFIER_TDX_EVENTLOG_H_
