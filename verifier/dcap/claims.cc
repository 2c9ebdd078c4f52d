#include "verifier/dcap/claims.h"

#include "common/encoding.h"

namespace kbs::verifier::dcap {
namespace {

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

}  // namespace

int8_t HardwareTrust(absl::string_view s) {
  // Revoked never gets here: it fails verification.
  return s == "UpToDate" ? kAffirming : kWarningUnsafeConfig;
}

void AddPlatformClaims(const VerifiedQuote& q, common::Json& claims) {
  const PckExtensions& p = q.pck;
  claims["fmspc"] = common::HexEncode(p.fmspc);
  claims["pce_id"] = common::HexEncode(p.pce_id);
  claims["pce_svn"] = p.pce_svn;
  // The PCK certificate's CPUSVN: the platform's when the PCK was issued.
  // Not `cpu_svn`, which SGX claims use for the enclave report's CPUSVN
  // (as trustee does); TDX reports have no CPUSVN of their own.
  claims["pck_cpu_svn"] = common::HexEncode(p.cpu_svn);
  claims["platform_id"] = common::HexEncode(p.ppid);
  claims["sgx_type"] = p.sgx_type;
  claims["pck_ca"] = std::string(PckCaName(q.ca));
  if (p.platform_instance_id.has_value()) {
    claims["platform_instance_id"] = common::HexEncode(*p.platform_instance_id);
  }
  if (p.dynamic_platform.has_value()) claims["is_dynamic_platform"] = *p.dynamic_platform;
  if (p.cached_keys.has_value()) claims["is_cached_keys"] = *p.cached_keys;
  if (p.smt_enabled.has_value()) claims["is_smt_enabled"] = *p.smt_enabled;
  claims["tcb_status"] = q.tcb.status;
  claims["advisory_ids"] = q.tcb.advisory_ids;
  claims["tcb_date"] = q.tcb.tcb_date;
  common::Json detail = {{"platform", q.tcb.platform_status}, {"qe", q.tcb.qe_status}};
  if (q.tcb.module_status.has_value()) detail["tdx_module"] = *q.tcb.module_status;
  claims["tcb_status_detail"] = std::move(detail);
  const VerifiedCollateral& c = *q.collateral;
  claims["tcb_eval_num"] = c.tcb_info.tcb_evaluation_data_number;
  claims["earliest_issue_date"] = Rfc3339(c.earliest_issue_date);
  claims["latest_issue_date"] = Rfc3339(c.not_before);
  claims["earliest_expiration_date"] = Rfc3339(c.not_after);
  // Revocation is checked with the CRLs the collateral has; a policy that
  // requires both can say `tdx.revocation_checked.pck_crl`.
  claims["revocation_checked"] = {{"pck_crl", c.pck_crl != nullptr},
                                  {"root_ca_crl", c.root_crl != nullptr}};
  if (c.pck_crl_number.has_value()) claims["pck_crl_num"] = *c.pck_crl_number;
  if (c.root_crl_number.has_value()) claims["root_ca_crl_num"] = *c.root_crl_number;
  claims["qe_svn"] = q.quote.qe_report.isv_svn;
}

}  // namespace kbs::verifier::dcap
