// Test helper: a complete AMD-shaped certificate hierarchy made with OpenSSL
// (ARK self-signed and ASK/ASVK with RSASSA-PSS/SHA-384, VCEK/VLEK with the
// AMD extensions on EC P-384) and SEV-SNP reports signed by it, so every
// field and every failure of the SNP verifier can be exercised without
// hardware. The test ARK's fingerprint is configured as a trust anchor.
#ifndef KBS_TESTS_TESTING_SNP_GENERATOR_H_
#define KBS_TESTS_TESTING_SNP_GENERATOR_H_

#include <array>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/openssl_util.h"
#include "verifier/snp/report.h"

namespace kbs::testing {

// The fields a test sets; everything else gets a plausible default.
struct SnpReportFields {
  uint32_t version = 3;
  uint64_t policy = 0x30000;  // SMT allowed, debug not allowed
  uint32_t vmpl = 0;
  uint32_t signing_key = 0;                                             // 0 VCEK, 1 VLEK
  uint8_t cpuid_family = 0x19, cpuid_model = 0xA0, cpuid_stepping = 1;  // Genoa
  verifier::snp::TcbVersion reported_tcb;
  std::string report_data;  // fitted to 64 bytes
  std::string host_data;    // fitted to 32 bytes
  std::string measurement = std::string(48, '\x6a');
  std::string chip_id;  // 64 bytes
};

// A plausible Genoa TCB (bootloader 10, SNP 23, microcode 25) for tests and
// benchmarks that need one but do not test TCB values.
verifier::snp::TcbVersion PlausibleTcb();

struct SnpCertOptions {
  verifier::snp::TcbVersion tcb;
  std::string chip_id;  // 64 bytes (VCEK hwID)
  std::string product_name = "Genoa";
  absl::Time not_before = absl::FromUnixSeconds(1700000000);  // 2023-11-14
  absl::Time not_after = absl::FromUnixSeconds(1950000000);   // 2031-10-16
};

// A PEM bundle of DER certificates (empty when one does not parse).
std::string PemOfDers(const std::vector<std::string>& ders);

class SnpTestChain {
 public:
  static absl::StatusOr<std::unique_ptr<SnpTestChain>> Create(
      verifier::snp::Product product = verifier::snp::Product::kGenoa);

  // SHA-256 of the ARK DER, hex.
  std::string ArkFingerprintHex() const;
  // ASK, ARK and ASVK as one PEM bundle (AMD's distribution form).
  std::string ChainPem() const;
  std::string AskDer() const;
  std::string ArkDer() const;

  // A VCEK (or, with `csp_id`, a VLEK) and its key; the last issued signs.
  absl::StatusOr<std::string> IssueVcek(const SnpCertOptions& options);
  absl::StatusOr<std::string> IssueVlek(const SnpCertOptions& options, absl::string_view csp_id);

  // The 1184 report bytes for `fields`, signed with the last issued VEK.
  absl::StatusOr<std::string> SignReport(const SnpReportFields& fields) const;
  // An ARK-signed CRL revoking the ARK-issued certificates with these serial
  // numbers (DER). The generator's ASK has serial 2, its ASVK serial 3.
  absl::StatusOr<std::string> MakeCrl(const std::vector<long>& revoked_serials) const;
  // The same with these thisUpdate and nextUpdate (none when InfiniteFuture).
  absl::StatusOr<std::string> MakeCrl(const std::vector<long>& revoked_serials,
                                      absl::Time this_update, absl::Time next_update) const;

  // The last issued VEK's private key (PEM), for signers in other processes.
  absl::StatusOr<std::string> VekKeyPem() const;

  // Signs report `fields` with `vek_key` (EC P-384) for `product`'s layout.
  static absl::StatusOr<std::string> SignReportWith(EVP_PKEY* vek_key,
                                                    verifier::snp::Product product,
                                                    const SnpReportFields& fields);
  // The agent's evidence JSON for a signed report, carrying `vek_der`.
  static absl::StatusOr<common::Json> EvidenceJson(absl::string_view report,
                                                   absl::string_view vek_der,
                                                   absl::string_view cert_type = "VCEK");

 private:
  SnpTestChain() = default;
  absl::StatusOr<std::string> IssueVek(const SnpCertOptions& options, bool vlek,
                                       absl::string_view csp_id);
  common::EvpPkeyPtr ark_key_, ask_key_, asvk_key_, vek_key_;
  common::X509Ptr ark_, ask_, asvk_;
  verifier::snp::Product product_ = verifier::snp::Product::kGenoa;
  long serial_ = 1;
};

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_SNP_GENERATOR_H_
