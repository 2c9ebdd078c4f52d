#include "verifier/tdx/eventlog.h"

#include <optional>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs::verifier::tdx {
namespace {

using common::ByteReader;

// TCG_EfiSpecIDEventStruct.signature (PFP §10.4.5.1), NUL included.
constexpr absl::string_view kSpecIdSignature("Spec ID Event03\0", 16);
constexpr size_t kSha1Size = 20;
constexpr uint32_t kEndOfLogIndex = 0xFFFFFFFF;
// The TPM registry has a handful of hash algorithms (SHA-1, SHA-2, SHA-3,
// SM3); more than this in one log is malformed, and the cap keeps the
// per-record algorithm lookups small.
constexpr size_t kMaxAlgorithms = 16;
// No registered hash is longer than 64 bytes (SHA-512, SHA3-512).
constexpr size_t kMaxDigestSize = 64;
constexpr size_t kMaxClaimText = 4096;

// The fixed digest size of the algorithms we know; 0 for the others.
size_t KnownDigestSize(uint16_t alg) {
  switch (alg) {
    case kTpmAlgSha1:
      return 20;
    case kTpmAlgSha256:
      return 32;
    case kTpmAlgSha384:
      return 48;
    case kTpmAlgSha512:
      return 64;
  }
  return 0;
}

absl::Status Malformed(absl::string_view detail) { return absl::InvalidArgumentError(detail); }

// Prefixes a record's error with where the record starts.
absl::Status InRecord(const absl::Status& status, size_t record, size_t offset) {
  return absl::InvalidArgumentError(
      absl::StrCat("CC event log record ", record, " at offset ", offset, ": ", status.message()));
}

// TCG_EfiSpecIDEventStruct (PFP §10.4.5.1); must fill the event exactly.
absl::StatusOr<SpecIdEvent> ParseSpecId(absl::Span<const uint8_t> event) {
  ByteReader r(event);
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> signature, r.Bytes(16, "Spec ID signature"));
  if (common::AsStringView(signature) != kSpecIdSignature) {
    return Malformed("no Spec ID event: signature is not \"Spec ID Event03\"");
  }
  SpecIdEvent spec;
  KBS_ASSIGN_OR_RETURN(spec.platform_class, r.U32("platformClass"));
  KBS_ASSIGN_OR_RETURN(spec.spec_version_minor, r.U8("specVersionMinor"));
  KBS_ASSIGN_OR_RETURN(spec.spec_version_major, r.U8("specVersionMajor"));
  KBS_ASSIGN_OR_RETURN(spec.spec_errata, r.U8("specErrata"));
  KBS_ASSIGN_OR_RETURN(spec.uintn_size, r.U8("uintnSize"));
  KBS_ASSIGN_OR_RETURN(uint32_t count, r.U32("numberOfAlgorithms"));
  if (count == 0 || count > kMaxAlgorithms) {
    return Malformed(absl::StrCat("Spec ID event declares ", count, " algorithms (1..",
                                  kMaxAlgorithms, " allowed)"));
  }
  bool has_sha384 = false;
  for (uint32_t i = 0; i < count; ++i) {
    SpecIdEvent::Algorithm alg;
    KBS_ASSIGN_OR_RETURN(alg.id, r.U16("algorithmId"));
    KBS_ASSIGN_OR_RETURN(alg.digest_size, r.U16("digestSize"));
    for (const SpecIdEvent::Algorithm& seen : spec.algorithms) {
      if (seen.id == alg.id) {
        return Malformed(absl::StrFormat("Spec ID event declares algorithm 0x%04x twice", alg.id));
      }
    }
    size_t known = KnownDigestSize(alg.id);
    if (alg.digest_size == 0 || alg.digest_size > kMaxDigestSize ||
        (known != 0 && alg.digest_size != known)) {
      return Malformed(absl::StrFormat(
          "Spec ID event declares algorithm 0x%04x with digest size %d", alg.id, alg.digest_size));
    }
    has_sha384 |= alg.id == kTpmAlgSha384;
    spec.algorithms.push_back(alg);
  }
  KBS_ASSIGN_OR_RETURN(uint8_t vendor_size, r.U8("vendorInfoSize"));
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> vendor, r.Bytes(vendor_size, "vendorInfo"));
  spec.vendor_info = common::ToString(vendor);
  if (r.remaining() != 0) {
    return Malformed(absl::StrCat("Spec ID event has ", r.remaining(), " trailing bytes"));
  }
  if (!has_sha384) return Malformed("Spec ID event does not declare SHA-384");
  return spec;
}

// The leading TCG_PCR_EVENT (SHA-1 format, PFP §10.2.1): pcrIndex, eventType
// (EV_NO_ACTION), digest[20], eventSize, event = Spec ID structure. Its
// pcrIndex is not checked: the GCP firmware writes 1 where the spec says 0.
absl::StatusOr<SpecIdEvent> ParseHeader(ByteReader& r) {
  KBS_RETURN_IF_ERROR(r.Skip(4, "pcrIndex"));
  KBS_ASSIGN_OR_RETURN(uint32_t type, r.U32("eventType"));
  if (type != kEvNoAction) {
    return Malformed(
        absl::StrFormat("no Spec ID event: first record has type 0x%08x, not EV_NO_ACTION", type));
  }
  KBS_RETURN_IF_ERROR(r.Skip(kSha1Size, "SHA-1 digest"));
  KBS_ASSIGN_OR_RETURN(uint32_t size, r.U32("eventSize"));
  size_t data_offset = r.offset();
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> event, r.Bytes(size, "event"));
  absl::StatusOr<SpecIdEvent> spec = ParseSpecId(event);
  if (!spec.ok()) {
    return Malformed(
        absl::StrCat("Spec ID event data at offset ", data_offset, ": ", spec.status().message()));
  }
  return spec;
}

// True when the tail [offset, end) is padding that ends the log: fewer bytes
// than a header, all 0x00 or all 0xFF (the CCEL area is padded to its size).
bool IsPaddingTail(absl::Span<const uint8_t> tail) {
  if (tail.size() >= 8) return false;
  bool zeros = true, ones = true;
  for (uint8_t b : tail) {
    zeros &= b == 0x00;
    ones &= b == 0xFF;
  }
  return zeros || ones;
}

// One TCG_PCR_EVENT2 (PFP §10.2.2) after its MR index and type.
absl::Status ParseEventBody(ByteReader& r, const SpecIdEvent& spec, CcEvent& event) {
  KBS_ASSIGN_OR_RETURN(uint32_t count, r.U32("digest count"));
  if (count == 0 || count > spec.algorithms.size()) {
    return Malformed(absl::StrCat("digest count ", count, " (1..", spec.algorithms.size(),
                                  " declared algorithms allowed)"));
  }
  std::vector<uint16_t> seen;
  for (uint32_t i = 0; i < count; ++i) {
    KBS_ASSIGN_OR_RETURN(uint16_t alg, r.U16("digest algorithm"));
    const SpecIdEvent::Algorithm* declared = nullptr;
    for (const SpecIdEvent::Algorithm& a : spec.algorithms) {
      if (a.id == alg) declared = &a;
    }
    if (declared == nullptr) {
      return Malformed(
          absl::StrFormat("digest algorithm 0x%04x is not declared in the Spec ID event", alg));
    }
    for (uint16_t s : seen) {
      if (s == alg) return Malformed(absl::StrFormat("digest algorithm 0x%04x repeated", alg));
    }
    seen.push_back(alg);
    KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> digest,
                         r.Bytes(declared->digest_size, "digest"));
    if (alg == kTpmAlgSha384) event.sha384 = common::ToString(digest);
  }
  KBS_ASSIGN_OR_RETURN(uint32_t size, r.U32("eventSize"));
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> data, r.Bytes(size, "event"));
  event.data = common::ToString(data);
  if (event.mr_index >= 1 && event.mr_index <= kRtmrCount && event.type != kEvNoAction &&
      event.sha384.empty()) {
    return Malformed(
        absl::StrCat("event extends RTMR", event.mr_index - 1, " but has no SHA-384 digest"));
  }
  return absl::OkStatus();
}

// Validates `text` as UTF-8 (RFC 3629: no overlongs, surrogates or values
// above U+10FFFF) with no control characters other than tab, LF and CR.
bool IsPrintableUtf8(absl::string_view text) {
  const auto* s = reinterpret_cast<const uint8_t*>(text.data());
  size_t n = text.size();
  for (size_t i = 0; i < n;) {
    uint8_t c = s[i];
    if (c < 0x80) {
      if ((c < 0x20 && c != '\t' && c != '\n' && c != '\r') || c == 0x7F) return false;
      ++i;
      continue;
    }
    size_t len;
    uint8_t lo = 0x80, hi = 0xBF;  // bounds of the second byte
    if (c >= 0xC2 && c <= 0xDF) {
      len = 2;
      if (c == 0xC2) lo = 0xA0;  // U+0080..U+009F are the C1 controls
    } else if (c >= 0xE0 && c <= 0xEF) {
      len = 3;
      if (c == 0xE0) lo = 0xA0;  // overlong
      if (c == 0xED) hi = 0x9F;  // surrogates
    } else if (c >= 0xF0 && c <= 0xF4) {
      len = 4;
      if (c == 0xF0) lo = 0x90;  // overlong
      if (c == 0xF4) hi = 0x8F;  // above U+10FFFF
    } else {
      return false;
    }
    if (n - i < len || s[i + 1] < lo || s[i + 1] > hi) return false;
    for (size_t k = 2; k < len; ++k) {
      if (s[i + k] < 0x80 || s[i + k] > 0xBF) return false;
    }
    i += len;
  }
  return true;
}

// The event data as claim text, if it is text (see EventLogClaims).
std::optional<std::string> ClaimText(absl::string_view data) {
  while (!data.empty() && data.back() == '\0') data.remove_suffix(1);
  if (data.empty() || !IsPrintableUtf8(data)) return std::nullopt;
  if (data.size() > kMaxClaimText) {
    size_t cut = kMaxClaimText;
    while (cut > 0 && (static_cast<uint8_t>(data[cut]) & 0xC0) == 0x80) --cut;
    data = data.substr(0, cut);
  }
  return std::string(data);
}

}  // namespace

absl::StatusOr<CcEventLog> ParseCcEventLog(absl::Span<const uint8_t> data) {
  if (data.size() > kMaxEventLogSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("CC event log is ", data.size(), " bytes (at most ", kMaxEventLogSize, ")"));
  }
  ByteReader r(data);
  CcEventLog log;
  absl::StatusOr<SpecIdEvent> spec = ParseHeader(r);
  if (!spec.ok()) return InRecord(spec.status(), 0, 0);
  log.spec_id = *std::move(spec);

  for (size_t record = 1;; ++record) {
    size_t offset = r.offset();
    if (IsPaddingTail(data.subspan(offset))) break;
    CcEvent event;
    absl::Status status = [&]() -> absl::Status {
      KBS_ASSIGN_OR_RETURN(event.mr_index, r.U32("MR index"));
      if (event.mr_index == kEndOfLogIndex) return absl::OkStatus();
      KBS_ASSIGN_OR_RETURN(event.type, r.U32("event type"));
      if (event.mr_index == 0 && event.type == 0) return absl::OkStatus();
      if (log.events.size() == kMaxEvents) {
        return Malformed(absl::StrCat("more than ", kMaxEvents, " events"));
      }
      if (event.mr_index > kRtmrCount) {
        return Malformed(absl::StrCat("MR index ", event.mr_index, " is not 0..", kRtmrCount));
      }
      return ParseEventBody(r, log.spec_id, event);
    }();
    if (!status.ok()) return InRecord(status, record, offset);
    // A 0xFFFFFFFF or all-zero header ends the log (the area's padding).
    if (event.mr_index == kEndOfLogIndex || (event.mr_index == 0 && event.type == 0)) break;
    log.events.push_back(std::move(event));
  }
  return log;
}

std::array<std::string, kRtmrCount> ReplayRtmrs(const CcEventLog& log) {
  std::array<std::string, kRtmrCount> rtmrs;
  for (std::string& rtmr : rtmrs) rtmr.assign(kSha384Size, '\0');
  for (const CcEvent& event : log.events) {
    if (event.mr_index < 1 || event.mr_index > kRtmrCount || event.type == kEvNoAction) continue;
    std::string& rtmr = rtmrs[event.mr_index - 1];
    // ParseCcEventLog guarantees a 48-byte digest here; a hand-built log
    // without one leaves the register unchanged, which cannot match a quote
    // whose firmware did extend it.
    if (event.sha384.size() != kSha384Size) continue;
    rtmr = common::Digest(common::HashAlgorithm::kSha384, absl::StrCat(rtmr, event.sha384));
  }
  return rtmrs;
}

absl::string_view EventTypeName(uint32_t type) {
  // TCG PC Client Platform Firmware Profile 1.06, Table 9 (§10.4.1).
  switch (type) {
    case 0x00000000:
      return "EV_PREBOOT_CERT";
    case 0x00000001:
      return "EV_POST_CODE";
    case 0x00000002:
      return "EV_UNUSED";
    case 0x00000003:
      return "EV_NO_ACTION";
    case 0x00000004:
      return "EV_SEPARATOR";
    case 0x00000005:
      return "EV_ACTION";
    case 0x00000006:
      return "EV_EVENT_TAG";
    case 0x00000007:
      return "EV_S_CRTM_CONTENTS";
    case 0x00000008:
      return "EV_S_CRTM_VERSION";
    case 0x00000009:
      return "EV_CPU_MICROCODE";
    case 0x0000000A:
      return "EV_PLATFORM_CONFIG_FLAGS";
    case 0x0000000B:
      return "EV_TABLE_OF_DEVICES";
    case 0x0000000C:
      return "EV_COMPACT_HASH";
    case 0x0000000D:
      return "EV_IPL";
    case 0x0000000E:
      return "EV_IPL_PARTITION_DATA";
    case 0x0000000F:
      return "EV_NONHOST_CODE";
    case 0x00000010:
      return "EV_NONHOST_CONFIG";
    case 0x00000011:
      return "EV_NONHOST_INFO";
    case 0x00000012:
      return "EV_OMIT_BOOT_DEVICE_EVENTS";
    case 0x00000013:
      return "EV_POST_CODE2";
    case 0x80000000:
      return "EV_EFI_EVENT_BASE";
    case 0x80000001:
      return "EV_EFI_VARIABLE_DRIVER_CONFIG";
    case 0x80000002:
      return "EV_EFI_VARIABLE_BOOT";
    case 0x80000003:
      return "EV_EFI_BOOT_SERVICES_APPLICATION";
    case 0x80000004:
      return "EV_EFI_BOOT_SERVICES_DRIVER";
    case 0x80000005:
      return "EV_EFI_RUNTIME_SERVICES_DRIVER";
    case 0x80000006:
      return "EV_EFI_GPT_EVENT";
    case 0x80000007:
      return "EV_EFI_ACTION";
    case 0x80000008:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB";
    case 0x80000009:
      return "EV_EFI_HANDOFF_TABLES";
    case 0x8000000A:
      return "EV_EFI_PLATFORM_FIRMWARE_BLOB2";
    case 0x8000000B:
      return "EV_EFI_HANDOFF_TABLES2";
    case 0x8000000C:
      return "EV_EFI_VARIABLE_BOOT2";
    case 0x8000000D:
      return "EV_EFI_GPT_EVENT2";
    case 0x80000010:
      return "EV_EFI_HCRTM_EVENT";
    case 0x800000E0:
      return "EV_EFI_VARIABLE_AUTHORITY";
    case 0x800000E1:
      return "EV_EFI_SPDM_FIRMWARE_BLOB";
    case 0x800000E2:
      return "EV_EFI_SPDM_FIRMWARE_CONFIG";
    case 0x800000E3:
      return "EV_EFI_SPDM_DEVICE_POLICY";
    case 0x800000E4:
      return "EV_EFI_SPDM_DEVICE_AUTHORITY";
  }
  return "";
}

common::Json EventLogClaims(const CcEventLog& log) {
  common::Json claims = common::Json::array();
  for (const CcEvent& event : log.events) {
    common::Json entry = common::Json::object();
    entry["index"] = event.mr_index;
    absl::string_view name = EventTypeName(event.type);
    entry["type"] = name.empty() ? absl::StrFormat("0x%08x", event.type) : std::string(name);
    entry["type_value"] = event.type;
    if (!event.sha384.empty()) entry["digest"] = common::HexEncode(event.sha384);
    // Only the digests are bound by the replay: an event is measured when it
    // extends an RTMR, and its data is proven only when it hashes to the
    // digest. A policy must not trust `data` without `data_verified`.
    entry["measured"] = event.mr_index >= 1 && event.mr_index <= 4 && event.type != kEvNoAction;
    entry["data_verified"] =
        !event.sha384.empty() &&
        common::ConstantTimeEquals(common::Digest(common::HashAlgorithm::kSha384, event.data),
                                   event.sha384);
    if (std::optional<std::string> text = ClaimText(event.data)) entry["data"] = *std::move(text);
    claims.push_back(std::move(entry));
  }
  return claims;
}

}  // namespace kbs::verifier::tdx
