#include "verifier/tdx/tdx_verifier.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/encoding.h"
#include "common/status_macros.h"
#include "verifier/dcap/claims.h"
#include "verifier/tdx/eventlog.h"

namespace kbs::verifier::tdx {
namespace {

using common::Json;

// Agent evidence stays well below this; it bounds decoding work.
constexpr size_t kMaxQuoteBase64 = 64 << 10;
constexpr size_t kMaxEventLogBase64 = 24 << 20;

std::string Hex(absl::string_view b) { return common::HexEncode(b); }

std::string HexLe64(uint64_t v) {
  std::string b(8, '\0');
  for (int i = 0; i < 8; ++i) b[i] = static_cast<char>((v >> (8 * i)) & 0xFF);
  return Hex(b);
}

Json Claims(const dcap::VerifiedQuote& q) {
  const dcap::TdReport& td = *q.quote.td;
  const uint64_t a = td.td_attributes;
  Json claims = {
      {"version", q.quote.header.version},
      {"tee_tcb_svn", Hex(td.tee_tcb_svn)},
      {"mr_seam", Hex(td.mr_seam)},
      {"mr_signer_seam", Hex(td.mr_signer_seam)},
      {"seam_attributes", HexLe64(td.seam_attributes)},
      {"td_attributes",
       {{"debug", (a & 1) != 0},
        {"septve_disable", ((a >> 28) & 1) != 0},
        {"protection_keys", ((a >> 30) & 1) != 0},
        {"key_locker", ((a >> 31) & 1) != 0},
        {"perfmon", ((a >> 63) & 1) != 0},
        {"raw", HexLe64(a)}}},
      {"debug", td.debug()},
      {"xfam", HexLe64(td.xfam)},
      {"mr_td", Hex(td.mr_td)},
      {"mr_config_id", Hex(td.mr_config_id)},
      {"init_data", Hex(td.mr_config_id)},
      {"mr_owner", Hex(td.mr_owner)},
      {"mr_owner_config", Hex(td.mr_owner_config)},
      {"rtmr_0", Hex(td.rtmr[0])},
      {"rtmr_1", Hex(td.rtmr[1])},
      {"rtmr_2", Hex(td.rtmr[2])},
      {"rtmr_3", Hex(td.rtmr[3])},
      {"report_data", Hex(td.report_data)},
  };
  if (td.tee_tcb_svn2.has_value()) claims["tee_tcb_svn2"] = Hex(*td.tee_tcb_svn2);
  if (td.mr_service_td.has_value()) claims["mr_servicetd"] = Hex(*td.mr_service_td);
  dcap::AddPlatformClaims(q, claims);
  return claims;
}

}  // namespace

Json TdxEvidenceToJson(const TdxEvidence& evidence) {
  Json out = Json::object();
  out["cc_eventlog"] =
      evidence.cc_eventlog.has_value() ? Json(common::Base64Encode(*evidence.cc_eventlog)) : Json();
  out["quote"] = common::Base64Encode(evidence.quote);
  return out;
}

absl::StatusOr<TdxEvidence> ParseTdxEvidence(const Json& evidence) {
  if (!evidence.is_object()) {
    return absl::InvalidArgumentError("TDX evidence must be a JSON object");
  }
  KBS_ASSIGN_OR_RETURN(std::string quote_b64,
                       common::GetStringMember(evidence, "quote", "TDX evidence"));
  if (quote_b64.size() > kMaxQuoteBase64) {
    return absl::InvalidArgumentError("TDX evidence: quote is too large");
  }
  TdxEvidence out;
  auto quote = common::Base64Decode(quote_b64);
  if (!quote.ok()) return absl::InvalidArgumentError("TDX evidence: quote is not base64");
  out.quote = *std::move(quote);
  const Json* log = common::FindMember(evidence, "cc_eventlog");
  if (log != nullptr && !log->is_null()) {
    if (!log->is_string()) {
      return absl::InvalidArgumentError(
          "TDX evidence: cc_eventlog must be a base64 string or null");
    }
    if (log->get_ref<const std::string&>().size() > kMaxEventLogBase64) {
      return absl::InvalidArgumentError("TDX evidence: cc_eventlog is too large");
    }
    auto raw = common::Base64Decode(log->get<std::string>());
    if (!raw.ok()) return absl::InvalidArgumentError("TDX evidence: cc_eventlog is not base64");
    if (!raw->empty()) out.cc_eventlog = *std::move(raw);
  }
  return out;
}

absl::StatusOr<VerifiedClaims> TdxVerifier::Verify(const Json& evidence,
                                                   const EvidenceBinding& binding) const {
  KBS_ASSIGN_OR_RETURN(TdxEvidence parsed, ParseTdxEvidence(evidence));
  TdxExpectations expect;
  expect.report_data = binding.report_data;
  expect.mr_config_id = binding.init_data_digest;
  expect.at = clock_->Now();
  return VerifyEvidence(parsed, expect);
}

absl::StatusOr<VerifiedClaims> TdxVerifier::VerifyEvidence(
    const TdxEvidence& evidence, const TdxExpectations& expect,
    const dcap::Collateral* collateral) const {
  // Parse and verify the quote.
  KBS_ASSIGN_OR_RETURN(
      dcap::VerifiedQuote q,
      quotes_.Verify(common::AsSpan(evidence.quote), dcap::DcapTee::kTdx, expect.at, collateral));
  const dcap::TdReport& td = *q.quote.td;

  // Bind the TD to this attestation.
  if (expect.report_data.has_value() &&
      !common::ConstantTimeEquals(FitReportData(*expect.report_data, 64), td.report_data)) {
    return absl::UnauthenticatedError(
        "TDX REPORTDATA does not match the runtime-data digest (nonce, tee-pubkey or additional "
        "evidence differ)");
  }
  if (expect.mr_config_id.has_value() &&
      !common::ConstantTimeEquals(FitReportData(*expect.mr_config_id, 48), td.mr_config_id)) {
    return absl::UnauthenticatedError("TDX MRCONFIGID does not match the init-data digest");
  }

  // The event log must reproduce the RTMRs it claims to explain.
  Json claims = Claims(q);
  if (evidence.cc_eventlog.has_value()) {
    auto log = ParseCcEventLog(common::AsSpan(*evidence.cc_eventlog));
    if (!log.ok()) {
      return absl::InvalidArgumentError(absl::StrCat("TDX cc_eventlog: ", log.status().message()));
    }
    std::array<std::string, 4> replayed = ReplayRtmrs(*log);
    for (int i = 0; i < 4; ++i) {
      if (!common::ConstantTimeEquals(replayed[i], td.rtmr[i])) {
        return absl::UnauthenticatedError(absl::StrCat(
            "the CC event log does not replay to the quote's RTMR", i, " (replayed ",
            Hex(replayed[i]).substr(0, 16), "..., quoted ", Hex(td.rtmr[i]).substr(0, 16), "...)"));
      }
    }
    claims["event_log"] = EventLogClaims(*log);
  }

  // Appraise.
  TrustVector tv;
  tv.hardware = dcap::HardwareTrust(q.tcb.status);
  if (td.debug()) tv.configuration = kWarningUnsafeConfig;
  return MakeVerifiedClaims("tdx", std::move(claims), tv);
}

}  // namespace kbs::verifier::tdx
