// The guest side of RCAR on real hardware: SEV-SNP and TDX evidence from
// Linux's configfs-tsm report interface (Linux 6.7+, the sev-guest or
// tdx-guest driver; Documentation/ABI/testing/configfs-tsm), in the formats
// the CoCo attestation agent sends (evidence-formats.md §1.1 and §2):
//   snp: {"attestation_report": <serde form>, "cert_chain": [{"cert_type","data"}] | null}
//   tdx: {"quote": "<base64>", "cc_eventlog": "<base64 of the CCEL log area>" | null}
// Used by `kbsctl attest --tee snp|tdx` and `kbsctl model unseal`.
#ifndef KBS_KBS_CLIENT_TSM_ATTESTER_H_
#define KBS_KBS_CLIENT_TSM_ATTESTER_H_

#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/json.h"
#include "kbs/client/sample_attester.h"
#include "verifier/snp/evidence.h"

namespace kbs::client {

struct TsmOptions {
  // configfs-tsm's report directory.
  std::string report_dir = "/sys/kernel/config/tsm/report";
  // The TDX CC event log (ACPI CCEL table data); sent when present (an
  // unreadable one fails the attestation).
  std::string ccel_path = "/sys/firmware/acpi/tables/data/CCEL";
};

// What configfs-tsm returned for one request.
struct TsmReport {
  std::string provider;  // "sev_guest", "tdx_guest", ...
  std::string outblob;   // the SNP report or the TDX quote
  std::string auxblob;   // SNP: the GHCB certificate table ("" if none)
};

// Requests a report bound to `report_data` (at most 64 bytes, zero-padded)
// from configfs-tsm: a private entry is created, `inblob` written, `outblob`
// and `auxblob` read, and the entry removed. FailedPrecondition when the
// interface is missing; Aborted when another writer raced on the entry.
absl::StatusOr<TsmReport> RequestTsmReport(absl::string_view report_data,
                                           const TsmOptions& options);

// The SNP certificate table of an extended report (GHCB spec, "certificate
// table"): 24-byte entries {GUID, offset, length} ending with a zero GUID,
// offsets from the table's start. VCEK, VLEK, ASK and ARK by GUID; others
// as "OTHER:<guid>". InvalidArgument for entries outside the table.
absl::StatusOr<std::vector<verifier::snp::CertTableEntry>> ParseSnpCertTable(
    absl::string_view table);

// An EvidenceMaker for `tee` ("snp" or "tdx") backed by configfs-tsm. The
// init-data digest is not passed on: the hardware holds it (HOST_DATA,
// MRCONFIGID) from launch.
absl::StatusOr<EvidenceMaker> TsmEvidenceMaker(absl::string_view tee, TsmOptions options = {});

}  // namespace kbs::client

#endif  // KBS_KBS_CLIENT_TSM_ATTESTER_H_
