// Claims shared by the TDX and SGX verifiers: the platform, the TCB status
// and the collateral a quote was judged with (trustee's QVL "supplemental"
// claims, evidence-formats.md §2.6).
#ifndef KBS_VERIFIER_DCAP_CLAIMS_H_
#define KBS_VERIFIER_DCAP_CLAIMS_H_

#include <string>

#include "absl/strings/string_view.h"
#include "common/json.h"
#include "verifier/dcap/quote_verifier.h"
#include "verifier/trust_vector.h"

namespace kbs::verifier::dcap {

// Adds fmspc, tcb_status, advisory_ids, tcb_date, platform_id (PPID),
// sgx_type, pce_svn, pck_cpu_svn, the collateral's dates and numbers, ... to
// `claims`. Its keys are distinct from the TEE-specific claims' (SGX
// `cpu_svn` is the enclave report's CPUSVN, `pck_cpu_svn` the PCK's).
void AddPlatformClaims(const VerifiedQuote& q, common::Json& claims);

// The hardware tier for a usable TCB status: affirming when up to date, a
// warning when hardening, configuration or updates are needed.
int8_t HardwareTrust(absl::string_view tcb_status);

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_CLAIMS_H_
