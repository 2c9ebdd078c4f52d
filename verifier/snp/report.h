// The SEV-SNP ATTESTATION_REPORT (AMD SEV-SNP ABI spec 56860, Table 23;
// evidence-formats.md §1.2): a 1184-byte little-endian structure whose first
// 0x2A0 bytes are signed with ECDSA P-384/SHA-384 by the VCEK or VLEK.
// Parsing checks the size, version, signature algorithm, reserved (MBZ)
// fields and the reserved bits of POLICY and KEY_INFO, and nothing else: the
// signature is checked by the verifier.
#ifndef KBS_VERIFIER_SNP_REPORT_H_
#define KBS_VERIFIER_SNP_REPORT_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace kbs::verifier::snp {

inline constexpr size_t kReportSize = 0x4A0;
inline constexpr size_t kSignedSize = 0x2A0;

enum class Product { kMilan, kGenoa, kTurin };
absl::string_view ProductName(Product p);  // "Milan", "Genoa", "Turin"
// From a VCEK/VLEK productName extension ("Milan-B0", "Genoa", "Turin", ...).
std::optional<Product> ProductFromName(absl::string_view name);
// From the report's CPUID fields (v3+): family 0x19 models 0x00-0x0F Milan,
// 0x10-0x1F and 0xA0-0xAF Genoa; family 0x1A models 0x00-0x11 Turin.
std::optional<Product> ProductFromCpuid(uint8_t family, uint8_t model);

// TCB_VERSION: Milan/Genoa lay it out as bootloader, tee, 4 reserved, snp,
// microcode; Turin as fmc, bootloader, tee, snp, 3 reserved, microcode.
struct TcbVersion {
  uint64_t raw = 0;
  std::optional<uint8_t> fmc;  // Turin only
  uint8_t bootloader = 0;
  uint8_t tee = 0;
  uint8_t snp = 0;
  uint8_t microcode = 0;

  static TcbVersion Decode(uint64_t raw, bool turin_layout);
  uint64_t Encode(bool turin_layout) const;
};

struct FirmwareVersion {
  uint8_t major = 0, minor = 0, build = 0;
};

struct SnpReport {
  uint32_t version = 0;
  uint32_t guest_svn = 0;
  uint64_t policy = 0;
  std::array<uint8_t, 16> family_id{};
  std::array<uint8_t, 16> image_id{};
  uint32_t vmpl = 0;
  uint32_t signature_algo = 0;
  uint64_t current_tcb = 0;
  uint64_t platform_info = 0;
  uint32_t key_info = 0;
  std::array<uint8_t, 64> report_data{};
  std::array<uint8_t, 48> measurement{};
  std::array<uint8_t, 32> host_data{};
  std::array<uint8_t, 48> id_key_digest{};
  std::array<uint8_t, 48> author_key_digest{};
  std::array<uint8_t, 32> report_id{};
  std::array<uint8_t, 32> report_id_ma{};
  uint64_t reported_tcb = 0;
  uint8_t cpuid_family = 0, cpuid_model = 0, cpuid_stepping = 0;  // v3+
  std::array<uint8_t, 64> chip_id{};
  uint64_t committed_tcb = 0;
  FirmwareVersion current, committed;
  uint64_t launch_tcb = 0;
  std::optional<uint64_t> launch_mit_vector, current_mit_vector;  // v5
  // ECDSA signature components as stored: 72-byte little-endian integers.
  std::array<uint8_t, 72> signature_r{};
  std::array<uint8_t, 72> signature_s{};
  // The exact signed bytes [0x000, 0x2A0).
  std::string signed_bytes;

  // KEY_INFO bits 4:2: 0 VCEK, 1 VLEK, 7 none.
  uint32_t signing_key() const { return (key_info >> 2) & 0x7; }
  bool debug_allowed() const { return (policy >> 19) & 1; }
  // The product the CPUID fields name (v3+), if any.
  std::optional<Product> cpuid_product() const;
};

// InvalidArgument (naming the offset) for a wrong size, an unknown version
// (accepted: 2, 3, 5) or signature algorithm (1 = ECDSA P-384/SHA-384), a
// non-zero reserved field, a POLICY whose reserved bit 17 is 0 or whose
// reserved bits 63:26 are set, or a KEY_INFO with reserved bits 31:5 set.
absl::StatusOr<SnpReport> ParseSnpReport(absl::Span<const uint8_t> bytes);

}  // namespace kbs::verifier::snp

#endif  // KBS_VERIFIER_SNP_REPORT_H_
