// Fuzz target: the TDX CC event log parser, RTMR replay and claims.
// Invariants: a log that parses has only MR indexes 0..4 and 48-byte (or
// absent) SHA-384 digests, replays to four 48-byte registers, yields one
// serializable claim per event, and re-encoded as a SHA-384-only log parses
// back to the same events and the same replay.
#include <cstdint>
#include <cstdlib>
#include <string>

#include "common/bytes.h"
#include "common/json.h"
#include "verifier/tdx/eventlog.h"

namespace {

namespace tdx = kbs::verifier::tdx;

void PutU32(std::string& out, uint32_t v) {
  for (int i = 0; i < 4; ++i) out.push_back(static_cast<char>(v >> (8 * i)));
}

// The events as a CCEL log declaring SHA-384 only, padded with 0xFF.
std::string EncodeSha384Only(const tdx::CcEventLog& log) {
  std::string spec("Spec ID Event03\0", 16);
  PutU32(spec, 0);
  spec.append({0, 2, 0, 2});
  PutU32(spec, 1);
  spec.append({0x0C, 0x00, 0x30, 0x00, 0x00});
  std::string out;
  PutU32(out, 0);
  PutU32(out, tdx::kEvNoAction);
  out.append(20, '\0');
  PutU32(out, static_cast<uint32_t>(spec.size()));
  out += spec;
  for (const tdx::CcEvent& e : log.events) {
    PutU32(out, e.mr_index);
    PutU32(out, e.type);
    PutU32(out, 1);
    out.append({0x0C, 0x00});
    out += e.sha384.empty() ? std::string(48, '\0') : e.sha384;
    PutU32(out, static_cast<uint32_t>(e.data.size()));
    out += e.data;
  }
  out.append(16, '\xff');
  return out;
}

}  // namespace

extern "C" int LLVMFuzzerTestOneInput(const uint8_t* data, size_t size) {
  auto log = tdx::ParseCcEventLog(absl::Span<const uint8_t>(data, size));
  if (!log.ok()) return 0;
  if (log->events.size() > tdx::kMaxEvents) std::abort();
  for (const tdx::CcEvent& e : log->events) {
    if (e.mr_index > tdx::kRtmrCount) std::abort();
    if (!e.sha384.empty() && e.sha384.size() != tdx::kSha384Size) std::abort();
    if (e.mr_index >= 1 && e.type != tdx::kEvNoAction && e.sha384.empty()) std::abort();
  }
  auto rtmrs = tdx::ReplayRtmrs(*log);
  for (const std::string& rtmr : rtmrs) {
    if (rtmr.size() != tdx::kSha384Size) std::abort();
  }
  kbs::common::Json claims = tdx::EventLogClaims(*log);
  if (claims.size() != log->events.size()) std::abort();
  (void)kbs::common::DumpJson(claims);

  std::string encoded = EncodeSha384Only(*log);
  if (encoded.size() > tdx::kMaxEventLogSize) return 0;
  auto again = tdx::ParseCcEventLog(kbs::common::AsSpan(encoded));
  if (!again.ok() || again->events.size() != log->events.size()) std::abort();
  for (size_t i = 0; i < log->events.size(); ++i) {
    const tdx::CcEvent &a = log->events[i], &b = again->events[i];
    if (a.mr_index != b.mr_index || a.type != b.type || a.data != b.data) std::abort();
    if (!a.sha384.empty() && a.sha384 != b.sha384) std::abort();
  }
  if (tdx::ReplayRtmrs(*again) != rtmrs) std::abort();
  return 0;
}
