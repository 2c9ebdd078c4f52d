#include "verifier/sample/sample_verifier.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/encoding.h"
#include "common/jcs.h"
#include "common/status_macros.h"

namespace kbs::verifier {
namespace {

using common::Json;

// Extra claims are test scaffolding; keep them small so tokens stay compact.
constexpr size_t kMaxExtraClaimsBytes = 4096;
constexpr absl::string_view kReserved[] = {"svn", "report_data", "init_data"};

}  // namespace

absl::StatusOr<SampleEvidence> SampleEvidence::Parse(const Json& evidence) {
  if (!evidence.is_object()) {
    return absl::InvalidArgumentError("sample evidence must be a JSON object");
  }
  SampleEvidence out;
  KBS_ASSIGN_OR_RETURN(out.svn, common::GetStringMember(evidence, "svn", "sample evidence"));
  KBS_ASSIGN_OR_RETURN(std::string report_data_b64,
                       common::GetStringMember(evidence, "report_data", "sample evidence"));
  auto report_data = common::Base64Decode(report_data_b64);
  if (!report_data.ok()) {
    return absl::InvalidArgumentError(
        "sample evidence: `report_data` is not standard padded base64");
  }
  out.report_data = *std::move(report_data);
  if (const Json* init = common::FindMember(evidence, "init_data");
      init != nullptr && !init->is_null()) {
    if (!init->is_string()) {
      return absl::InvalidArgumentError("sample evidence: `init_data` must be a hex string");
    }
    auto decoded = common::HexDecode(init->get<std::string>());
    if (!decoded.ok() || decoded->empty()) {
      return absl::InvalidArgumentError("sample evidence: `init_data` is not a hex digest");
    }
    out.init_data = *std::move(decoded);
  }
  if (const Json* claims = common::FindMember(evidence, "claims");
      claims != nullptr && !claims->is_null()) {
    if (!claims->is_object()) {
      return absl::InvalidArgumentError("sample evidence: `claims` must be an object");
    }
    for (absl::string_view reserved : kReserved) {
      if (claims->contains(std::string(reserved))) {
        return absl::InvalidArgumentError(
            absl::StrCat("sample evidence: `claims` may not override `", reserved, "`"));
      }
    }
    KBS_ASSIGN_OR_RETURN(std::string canonical, common::CanonicalizeJson(*claims));
    if (canonical.size() > kMaxExtraClaimsBytes) {
      return absl::InvalidArgumentError(
          absl::StrCat("sample evidence: `claims` exceeds ", kMaxExtraClaimsBytes, " bytes"));
    }
    out.extra_claims = *claims;
  }
  return out;
}

std::unique_ptr<SampleVerifier> SampleVerifier::CreateCpu() {
  return std::unique_ptr<SampleVerifier>(new SampleVerifier("sample", "cpu"));
}

std::unique_ptr<SampleVerifier> SampleVerifier::CreateDevice() {
  return std::unique_ptr<SampleVerifier>(new SampleVerifier("sampledevice", "gpu"));
}

absl::StatusOr<VerifiedClaims> SampleVerifier::Verify(const Json& evidence,
                                                      const EvidenceBinding& binding) const {
  // Parse.
  KBS_ASSIGN_OR_RETURN(SampleEvidence parsed, SampleEvidence::Parse(evidence));

  // Verify the binding. trustee's sample verifier compares the digest
  // exactly, with no padding (kbs-protocol.md §2.4 item 4).
  if (!common::ConstantTimeEquals(common::AsSpan(parsed.report_data),
                                  common::AsSpan(binding.report_data))) {
    return absl::UnauthenticatedError(
        absl::StrCat(tee_,
                     " evidence: report_data does not match the runtime-data digest "
                     "(nonce, tee-pubkey or additional evidence differ)"));
  }
  if (binding.init_data_digest.has_value()) {
    if (!parsed.init_data.has_value()) {
      return absl::UnauthenticatedError(
          absl::StrCat(tee_, " evidence: init-data was sent but the evidence binds none"));
    }
    if (!common::ConstantTimeEquals(common::AsSpan(*parsed.init_data),
                                    common::AsSpan(*binding.init_data_digest))) {
      return absl::UnauthenticatedError(
          absl::StrCat(tee_, " evidence: init_data does not match the init-data digest"));
    }
  }

  // Appraise.
  Json claims = parsed.extra_claims;
  claims["svn"] = parsed.svn;
  claims["report_data"] = common::HexEncode(parsed.report_data);
  if (parsed.init_data.has_value()) claims["init_data"] = common::HexEncode(*parsed.init_data);
  TrustVector tv;
  // No hardware stands behind this evidence.
  tv.hardware = kContraindicatedHardware;
  if (const Json* debug = common::FindMember(claims, "debug");
      debug != nullptr && debug->is_boolean() && debug->get<bool>()) {
    tv.configuration = kWarningUnsafeConfig;
  }
  return MakeVerifiedClaims(tee_, std::move(claims), tv);
}

}  // namespace kbs::verifier
