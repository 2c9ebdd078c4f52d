// Intel DCAP ECDSA quotes (evidence-formats.md §2.2, §4.2): TDX quote v4 and
// v5 (TD report 1.0 and 1.5 bodies) and SGX quote v3, with the ECDSA
// signature data, the QE report and the PCK certificate chain they carry.
// Parsing only: nothing here is verified. Lengths come from the quote's own
// size fields, never from the buffer size (real quotes carry padding).
#ifndef KBS_VERIFIER_DCAP_QUOTE_H_
#define KBS_VERIFIER_DCAP_QUOTE_H_

#include <array>
#include <cstdint>
#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "absl/types/span.h"

namespace kbs::verifier::dcap {

inline constexpr uint32_t kTeeTypeSgx = 0x00000000;
inline constexpr uint32_t kTeeTypeTdx = 0x00000081;
inline constexpr uint16_t kAttestationKeyEcdsaP256 = 2;
inline constexpr size_t kHeaderSize = 48;
inline constexpr size_t kEnclaveReportSize = 384;
inline constexpr size_t kTdReport10Size = 584;
inline constexpr size_t kTdReport15Size = 648;
// Intel's quoting enclave vendor id 939a7233-f79c-4ca9-940a-0db3957f0607.
inline constexpr std::array<uint8_t, 16> kIntelQeVendorId = {
    0x93, 0x9a, 0x72, 0x33, 0xf7, 0x9c, 0x4c, 0xa9, 0x94, 0x0a, 0x0d, 0xb3, 0x95, 0x7f, 0x06, 0x07};

// Byte fields are raw bytes of the stated size.
struct QuoteHeader {
  uint16_t version = 0;       // 3 (SGX), 4 or 5 (TDX)
  uint16_t att_key_type = 0;  // 2 = ECDSA-256-with-P-256
  uint32_t tee_type = 0;      // 0 SGX, 0x81 TDX
  uint16_t qe_svn = 0;        // SGX v3 only (bytes 8..10)
  uint16_t pce_svn = 0;       // SGX v3 only (bytes 10..12)
  std::string reserved;       // 4: bytes 8..12
  std::string qe_vendor_id;   // 16
  std::string user_data;      // 20
};

// An SGX enclave report body (the ISV enclave of an SGX quote, and the QE
// report of every quote).
struct EnclaveReport {
  std::string cpu_svn;  // 16
  uint32_t misc_select = 0;
  std::string reserved1;        // 12
  std::string isv_ext_prod_id;  // 16
  std::string attributes;       // 16: flags u64 || xfrm u64
  std::string mr_enclave;       // 32
  std::string reserved2;        // 32
  std::string mr_signer;        // 32
  std::string reserved3;        // 32
  std::string config_id;        // 64
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 0;
  uint16_t config_svn = 0;
  std::string reserved4;      // 42
  std::string isv_family_id;  // 16
  std::string report_data;    // 64
  std::string raw;            // the 384 bytes as quoted

  uint64_t attribute_flags() const;
  bool debug() const { return (attribute_flags() & 0x2) != 0; }
};

// A TD report body (TD 1.0; TD 1.5 adds TEE_TCB_SVN2 and MRSERVICETD).
struct TdReport {
  std::string tee_tcb_svn;     // 16
  std::string mr_seam;         // 48
  std::string mr_signer_seam;  // 48
  uint64_t seam_attributes = 0;
  uint64_t td_attributes = 0;
  uint64_t xfam = 0;
  std::string mr_td;                         // 48
  std::string mr_config_id;                  // 48
  std::string mr_owner;                      // 48
  std::string mr_owner_config;               // 48
  std::array<std::string, 4> rtmr;           // 48 each
  std::string report_data;                   // 64
  std::optional<std::string> tee_tcb_svn2;   // 16, TD 1.5
  std::optional<std::string> mr_service_td;  // 48, TD 1.5

  bool debug() const { return (td_attributes & 1) != 0; }
};

struct Quote {
  QuoteHeader header;
  // v5 body descriptor: 1 SGX enclave report, 2 TD 1.0, 3 TD 1.5. v4 quotes
  // are type 2 and v3 quotes type 1.
  uint16_t body_type = 0;
  std::optional<EnclaveReport> enclave;  // SGX quotes
  std::optional<TdReport> td;            // TDX quotes
  // Header and body as signed by the attestation key (v5: header || type ||
  // size || body).
  std::string signed_bytes;
  std::string signature;        // 64: r || s, big-endian
  std::string attestation_key;  // 64: X || Y, big-endian
  EnclaveReport qe_report;
  std::string qe_report_signature;  // 64: r || s, by the PCK key
  std::string qe_auth_data;
  std::string pck_chain_pem;  // PCK leaf, intermediate CA, root (as quoted)
  size_t size = 0;            // bytes the quote spans (trailing padding excluded)

  bool is_tdx() const { return header.tee_type == kTeeTypeTdx; }
  // The report data of the quoted TD or enclave (64 bytes).
  const std::string& report_data() const { return td ? td->report_data : enclave->report_data; }
};

// InvalidArgument naming the field and offset for any malformation: a
// version other than 3/4/5, an attestation key type other than ECDSA P-256,
// a TEE type the version does not allow, an unknown v5 body type or a size
// that disagrees with it, certification data types other than 6 (TDX) and 5
// (PCK chain), lengths past the end. Trailing bytes after the signature data
// are ignored.
absl::StatusOr<Quote> ParseQuote(absl::Span<const uint8_t> bytes);

// Parses a 384-byte enclave report body.
absl::StatusOr<EnclaveReport> ParseEnclaveReport(absl::Span<const uint8_t> bytes);

}  // namespace kbs::verifier::dcap

#endif  // KBS_VERIFIER_DCAP_QUOTE_H_
