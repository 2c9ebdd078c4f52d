// The CoCo attestation agent's `snp` evidence (evidence-formats.md §1.1):
//   {"attestation_report": <virtee sev crate AttestationReport, serde form>,
//    "cert_chain": [{"cert_type": "VCEK"|"VLEK"|"ASK"|"ARK"|..., "data": [DER bytes]}] | null}
// Byte arrays are JSON arrays of numbers. The report is rebuilt into its
// exact 1184 ABI bytes (the signature covers those bytes, not the JSON).
#ifndef KBS_VERIFIER_SNP_EVIDENCE_H_
#define KBS_VERIFIER_SNP_EVIDENCE_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "common/json.h"

namespace kbs::verifier::snp {

// What ParseSnpEvidence accepts; attesters check before sending.
inline constexpr size_t kMaxCertChainEntries = 8;
inline constexpr size_t kMaxCertDerBytes = 16384;

struct CertTableEntry {
  std::string type;  // "VCEK", "VLEK", "ASK", "ARK", "CRL", or "OTHER:<uuid>"
  std::string der;
};

struct SnpEvidence {
  std::string report;  // 1184 bytes
  std::vector<CertTableEntry> cert_chain;
};

// InvalidArgument naming the field for missing members, wrong types, byte
// arrays of the wrong length or with values over 255, and oversized chains.
absl::StatusOr<SnpEvidence> ParseSnpEvidence(const common::Json& evidence);

// The serde form of a report (for reference attesters and tests): the
// inverse of the rebuild in ParseSnpEvidence.
absl::StatusOr<common::Json> ReportToSerdeJson(absl::string_view report_bytes);

// The agent's evidence JSON (attesters, tests): the inverse of
// ParseSnpEvidence; `cert_chain` is null when there are no certificates.
absl::StatusOr<common::Json> SnpEvidenceToJson(const SnpEvidence& evidence);

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_EVIDENCE_H_
