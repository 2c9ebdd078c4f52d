#include "verifier/sgx/sgx_verifier.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/encoding.h"
#include "common/status_macros.h"
#include "verifier/dcap/claims.h"

namespace kbs::verifier::sgx {
namespace {

using common::Json;

constexpr size_t kMaxQuoteBase64 = 64 << 10;

std::string Hex(absl::string_view b) { return common::HexEncode(b); }

Json Claims(const dcap::VerifiedQuote& q) {
  const dcap::EnclaveReport& e = *q.quote.enclave;
  const uint64_t flags = e.attribute_flags();
  Json claims = {
      {"version", q.quote.header.version},
      {"cpu_svn", Hex(e.cpu_svn)},
      {"misc_select", e.misc_select},
      {"isv_ext_prod_id", Hex(e.isv_ext_prod_id)},
      {"attributes",
       {{"debug", (flags & 0x2) != 0},
        {"mode64bit", (flags & 0x4) != 0},
        {"provision_key", (flags & 0x10) != 0},
        {"einittoken_key", (flags & 0x20) != 0},
        {"kss", (flags & 0x80) != 0},
        {"flags", Hex(e.attributes.substr(0, 8))},
        {"xfrm", Hex(e.attributes.substr(8, 8))}}},
      {"debug", e.debug()},
      {"mr_enclave", Hex(e.mr_enclave)},
      {"mr_signer", Hex(e.mr_signer)},
      {"config_id", Hex(e.config_id)},
      {"init_data", Hex(e.config_id)},
      {"isv_prod_id", e.isv_prod_id},
      {"isv_svn", e.isv_svn},
      {"config_svn", e.config_svn},
      {"isv_family_id", Hex(e.isv_family_id)},
      {"report_data", Hex(e.report_data)},
  };
  dcap::AddPlatformClaims(q, claims);
  return claims;
}

}  // namespace

absl::StatusOr<std::string> ParseSgxEvidence(const Json& evidence) {
  if (!evidence.is_object())
    return absl::InvalidArgumentError("SGX evidence must be a JSON object");
  KBS_ASSIGN_OR_RETURN(std::string b64, common::GetStringMember(evidence, "quote", "SGX evidence"));
  if (b64.size() > kMaxQuoteBase64)
    return absl::InvalidArgumentError("SGX evidence: quote is too large");
  auto quote = common::Base64Decode(b64);
  if (!quote.ok()) return absl::InvalidArgumentError("SGX evidence: quote is not base64");
  return *std::move(quote);
}

absl::StatusOr<VerifiedClaims> SgxVerifier::Verify(const Json& evidence,
                                                   const EvidenceBinding& binding) const {
  KBS_ASSIGN_OR_RETURN(std::string quote, ParseSgxEvidence(evidence));
  SgxExpectations expect;
  expect.report_data = binding.report_data;
  expect.config_id = binding.init_data_digest;
  expect.at = clock_->Now();
  return VerifyQuote(quote, expect);
}

absl::StatusOr<VerifiedClaims> SgxVerifier::VerifyQuote(absl::string_view quote,
                                                        const SgxExpectations& expect,
                                                        const dcap::Collateral* collateral) const {
  KBS_ASSIGN_OR_RETURN(
      dcap::VerifiedQuote q,
      quotes_.Verify(common::AsSpan(quote), dcap::DcapTee::kSgx, expect.at, collateral));
  const dcap::EnclaveReport& e = *q.quote.enclave;
  if (expect.report_data.has_value() &&
      !common::ConstantTimeEquals(FitReportData(*expect.report_data, 64), e.report_data)) {
    return absl::UnauthenticatedError(
        "SGX REPORTDATA does not match the runtime-data digest (nonce, tee-pubkey or additional "
        "evidence differ)");
  }
  if (expect.config_id.has_value() &&
      !common::ConstantTimeEquals(FitReportData(*expect.config_id, 64), e.config_id)) {
    return absl::UnauthenticatedError("SGX CONFIGID does not match the init-data digest");
  }
  TrustVector tv;
  tv.hardware = dcap::HardwareTrust(q.tcb.status);
  if (e.debug()) tv.configuration = kWarningUnsafeConfig;
  return MakeVerifiedClaims("sgx", Claims(q), tv);
}

}  // namespace kbs::verifier::sgx
