#include "verifier/snp/report.h"

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/status_macros.h"

namespace kbs::verifier::snp {
namespace {

template <size_t N>
absl::Status ReadArray(common::ByteReader& r, std::array<uint8_t, N>& out, absl::string_view what) {
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> bytes, r.Bytes(N, what));
  std::copy(bytes.begin(), bytes.end(), out.begin());
  return absl::OkStatus();
}

// Reserved bytes must be zero (ABI 56860: "MBZ"); naming the offset.
absl::Status Reserved(common::ByteReader& r, size_t n) {
  size_t offset = r.offset();
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> bytes, r.Bytes(n, "reserved"));
  if (!common::AllZero(bytes)) {
    return absl::InvalidArgumentError(absl::StrCat("SNP report: reserved bytes at offset 0x",
                                                   absl::Hex(offset), " (", n,
                                                   " bytes) are not zero"));
  }
  return absl::OkStatus();
}

// GUEST_POLICY (ABI 56860, "Guest Policy" table): bit 17 is reserved and
// must be one; bits 63:26 are reserved (MBZ) in every ABI revision up to the
// newest report version accepted here (5). Bits 20-25 (SINGLE_SOCKET ..
// PAGE_SWAP_DISABLE) were defined over successive revisions and are not tied
// to the report version, so they are not rejected. The firmware refuses to
// launch a guest with a policy it does not understand; a report carrying one
// is not what the ABI describes.
constexpr uint64_t kPolicyReservedOne = uint64_t{1} << 17;
constexpr uint64_t kPolicyReservedMbz = ~((uint64_t{1} << 26) - 1);
// KEY_INFO (ABI 56860, ATTESTATION_REPORT 0x48): bits 31:5 reserved (MBZ)
// in every revision; 4:2 SIGNING_KEY, 1 MASK_CHIP_KEY, 0 AUTHOR_KEY_EN.
constexpr uint32_t kKeyInfoReservedMbz = ~uint32_t{0x1F};

absl::Status CheckPolicy(uint64_t policy) {
  if ((policy & kPolicyReservedOne) == 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SNP report: POLICY (offset 0x8) reserved bit 17 must be 1, policy 0x", absl::Hex(policy)));
  }
  if ((policy & kPolicyReservedMbz) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat("SNP report: POLICY (offset 0x8) reserved bits 63:26 must be zero, policy 0x",
                     absl::Hex(policy)));
  }
  return absl::OkStatus();
}

absl::Status CheckKeyInfo(uint32_t key_info) {
  if ((key_info & kKeyInfoReservedMbz) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        "SNP report: KEY_INFO (offset 0x48) reserved bits 31:5 must be zero, key_info 0x",
        absl::Hex(key_info)));
  }
  return absl::OkStatus();
}

}  // namespace

absl::string_view ProductName(Product p) {
  switch (p) {
    case Product::kMilan:
      return "Milan";
    case Product::kGenoa:
      return "Genoa";
    case Product::kTurin:
      return "Turin";
  }
  return "Milan";
}

std::optional<Product> ProductFromName(absl::string_view name) {
  if (absl::StartsWith(name, "Milan")) return Product::kMilan;
  if (absl::StartsWith(name, "Genoa")) return Product::kGenoa;
  if (absl::StartsWith(name, "Turin")) return Product::kTurin;
  return std::nullopt;
}

std::optional<Product> ProductFromCpuid(uint8_t family, uint8_t model) {
  if (family == 0x19) {
    if (model <= 0x0F) return Product::kMilan;
    if ((model >= 0x10 && model <= 0x1F) || (model >= 0xA0 && model <= 0xAF)) {
      return Product::kGenoa;
    }
  }
  if (family == 0x1A && model <= 0x11) return Product::kTurin;
  return std::nullopt;
}

TcbVersion TcbVersion::Decode(uint64_t raw, bool turin_layout) {
  TcbVersion t;
  t.raw = raw;
  auto byte = [raw](int i) { return static_cast<uint8_t>(raw >> (8 * i)); };
  if (turin_layout) {
    t.fmc = byte(0);
    t.bootloader = byte(1);
    t.tee = byte(2);
    t.snp = byte(3);
  } else {
    t.bootloader = byte(0);
    t.tee = byte(1);
    t.snp = byte(6);
  }
  t.microcode = byte(7);
  return t;
}

uint64_t TcbVersion::Encode(bool turin_layout) const {
  auto at = [](uint8_t v, int i) { return static_cast<uint64_t>(v) << (8 * i); };
  if (turin_layout) {
    return at(fmc.value_or(0), 0) | at(bootloader, 1) | at(tee, 2) | at(snp, 3) | at(microcode, 7);
  }
  return at(bootloader, 0) | at(tee, 1) | at(snp, 6) | at(microcode, 7);
}

std::optional<Product> SnpReport::cpuid_product() const {
  if (version < 3) return std::nullopt;
  return ProductFromCpuid(cpuid_family, cpuid_model);
}

absl::StatusOr<SnpReport> ParseSnpReport(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kReportSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("SNP report must be ", kReportSize, " bytes, got ", bytes.size()));
  }
  common::ByteReader r(bytes);
  SnpReport rep;
  KBS_ASSIGN_OR_RETURN(rep.version, r.U32("VERSION"));
  if (rep.version != 2 && rep.version != 3 && rep.version != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("SNP report version ", rep.version, " is not supported (2, 3 or 5)"));
  }
  KBS_ASSIGN_OR_RETURN(rep.guest_svn, r.U32("GUEST_SVN"));
  KBS_ASSIGN_OR_RETURN(rep.policy, r.U64("POLICY"));
  KBS_RETURN_IF_ERROR(CheckPolicy(rep.policy));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.family_id, "FAMILY_ID"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.image_id, "IMAGE_ID"));
  KBS_ASSIGN_OR_RETURN(rep.vmpl, r.U32("VMPL"));
  KBS_ASSIGN_OR_RETURN(rep.signature_algo, r.U32("SIGNATURE_ALGO"));
  if (rep.signature_algo != 1) {
    return absl::InvalidArgumentError(absl::StrCat("SNP report signature algorithm ",
                                                   rep.signature_algo, " is not ECDSA P-384 (1)"));
  }
  KBS_ASSIGN_OR_RETURN(rep.current_tcb, r.U64("CURRENT_TCB"));
  KBS_ASSIGN_OR_RETURN(rep.platform_info, r.U64("PLATFORM_INFO"));
  KBS_ASSIGN_OR_RETURN(rep.key_info, r.U32("KEY_INFO"));
  KBS_RETURN_IF_ERROR(CheckKeyInfo(rep.key_info));
  KBS_RETURN_IF_ERROR(Reserved(r, 4));  // 0x04C
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.report_data, "REPORT_DATA"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.measurement, "MEASUREMENT"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.host_data, "HOST_DATA"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.id_key_digest, "ID_KEY_DIGEST"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.author_key_digest, "AUTHOR_KEY_DIGEST"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.report_id, "REPORT_ID"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.report_id_ma, "REPORT_ID_MA"));
  KBS_ASSIGN_OR_RETURN(rep.reported_tcb, r.U64("REPORTED_TCB"));
  if (rep.version >= 3) {
    KBS_ASSIGN_OR_RETURN(rep.cpuid_family, r.U8("CPUID_FAM_ID"));
    KBS_ASSIGN_OR_RETURN(rep.cpuid_model, r.U8("CPUID_MOD_ID"));
    KBS_ASSIGN_OR_RETURN(rep.cpuid_stepping, r.U8("CPUID_STEP"));
    KBS_RETURN_IF_ERROR(Reserved(r, 21));  // 0x18B
  } else {
    KBS_RETURN_IF_ERROR(Reserved(r, 24));  // 0x188
  }
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.chip_id, "CHIP_ID"));
  KBS_ASSIGN_OR_RETURN(rep.committed_tcb, r.U64("COMMITTED_TCB"));
  KBS_ASSIGN_OR_RETURN(rep.current.build, r.U8("CURRENT_BUILD"));
  KBS_ASSIGN_OR_RETURN(rep.current.minor, r.U8("CURRENT_MINOR"));
  KBS_ASSIGN_OR_RETURN(rep.current.major, r.U8("CURRENT_MAJOR"));
  KBS_RETURN_IF_ERROR(Reserved(r, 1));  // 0x1EB
  KBS_ASSIGN_OR_RETURN(rep.committed.build, r.U8("COMMITTED_BUILD"));
  KBS_ASSIGN_OR_RETURN(rep.committed.minor, r.U8("COMMITTED_MINOR"));
  KBS_ASSIGN_OR_RETURN(rep.committed.major, r.U8("COMMITTED_MAJOR"));
  KBS_RETURN_IF_ERROR(Reserved(r, 1));  // 0x1EF
  KBS_ASSIGN_OR_RETURN(rep.launch_tcb, r.U64("LAUNCH_TCB"));
  if (rep.version >= 5) {
    KBS_ASSIGN_OR_RETURN(rep.launch_mit_vector, r.U64("LAUNCH_MIT_VECTOR"));
    KBS_ASSIGN_OR_RETURN(rep.current_mit_vector, r.U64("CURRENT_MIT_VECTOR"));
  } else {
    KBS_RETURN_IF_ERROR(Reserved(r, 16));  // 0x1F8
  }
  KBS_RETURN_IF_ERROR(Reserved(r, kSignedSize - r.offset()));  // 0x208..0x2A0
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.signature_r, "SIGNATURE.R"));
  KBS_RETURN_IF_ERROR(ReadArray(r, rep.signature_s, "SIGNATURE.S"));
  KBS_RETURN_IF_ERROR(Reserved(r, r.remaining()));  // rest of the 512-byte signature
  rep.signed_bytes.assign(reinterpret_cast<const char*>(bytes.data()), kSignedSize);
  return rep;
}

}  // namespace kbs::verifier::snp
