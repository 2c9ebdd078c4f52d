// Test helper: an Intel-shaped DCAP certificate hierarchy made with OpenSSL
// (root CA, PCK Platform and Processor CAs, TCB Signing, PCK leaves carrying
// the SGX extension, all ECDSA P-256/SHA-256), ECDSA quotes (TDX v4, v5 with
// TD 1.0 and TD 1.5 bodies, SGX v3) whose QE report is signed by the last
// issued PCK, and signed collateral (TCB info, QE identity, CRLs), so every
// field and every failure of the DCAP verifier can be exercised without
// hardware. Layouts follow evidence-formats.md §2 and §4; the test root's
// fingerprint is configured as the trust anchor.
//
// Not thread-safe while IssuePck() runs; the const methods and QuoteSigner
// may be used from several threads.
#ifndef KBS_TESTS_TESTING_DCAP_GENERATOR_H_
#define KBS_TESTS_TESTING_DCAP_GENERATOR_H_

#include <array>
#include <cstdint>
#include <memory>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/json.h"
#include "common/openssl_util.h"

namespace kbs::testing {

// Subject common names (O=Intel Corporation, L=Santa Clara, ST=CA, C=US for
// all). The PCK names are Intel's, since verifiers tell the CA type by them;
// root and TCB Signing say "Test" and are trusted by pinning only.
inline constexpr char kDcapTestRootCn[] = "Test SGX Root CA";
inline constexpr char kDcapTestTcbSigningCn[] = "Test SGX TCB Signing";
inline constexpr char kDcapPckPlatformCaCn[] = "Intel SGX PCK Platform CA";
inline constexpr char kDcapPckProcessorCaCn[] = "Intel SGX PCK Processor CA";
inline constexpr char kDcapPckCn[] = "Intel SGX PCK Certificate";
// Serial numbers of the fixed certificates (PCKs count up from 100).
inline constexpr long kDcapRootSerial = 1;
inline constexpr long kDcapPlatformCaSerial = 2;
inline constexpr long kDcapProcessorCaSerial = 3;
inline constexpr long kDcapTcbSigningSerial = 4;
inline constexpr char kDcapDefaultFmspcHex[] = "00806F050000";

enum class QuoteKind {
  kTdxV4,      // version 4, TD 1.0 body at 48
  kTdxV5Td10,  // version 5, body type 2 (584 bytes)
  kTdxV5Td15,  // version 5, body type 3 (648 bytes)
  kSgxV3,      // version 3, enclave report body, no type-6 wrapper
};

// The PCK certificate's SGX extension (OID 1.2.840.113741.1.13.1, §2.4) and
// validity. Defaults mirror a real TDX platform PCK: UpToDate against
// DefaultTdxTcbInfo() / DefaultSgxTcbInfo(). Byte fields are raw and their
// sizes are not enforced, so malformed extensions can be made on purpose.
struct PckConfiguration {
  bool dynamic_platform = true;
  bool cached_keys = true;
  bool smt_enabled = true;
};
struct PckOptions {
  std::string ppid = std::string(16, '\x81');                      // raw 16
  std::string fmspc = std::string("\x00\x80\x6f\x05\x00\x00", 6);  // raw 6
  std::string pce_id = std::string(2, '\0');                       // raw 2
  std::array<uint8_t, 16> comp_svn = {3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
  uint16_t pce_svn = 11;
  std::string cpu_svn = std::string("\x03\x03\x02\x02\x04\x01\x00\x05", 8) + std::string(8, '\0');
  int sgx_type = 1;  // 0 Standard, 1 Scalable, 2 Scalable with Integrity
  // Issued by the Platform CA (true) or the Processor CA (false).
  bool platform_ca = true;
  // Platform-CA PCKs only; nullopt leaves the entry out.
  std::optional<std::string> platform_instance_id = std::string(16, '\x07');  // raw 16
  std::optional<PckConfiguration> configuration = PckConfiguration{};
  long serial = 0;                                            // 0: the next free serial (from 100)
  absl::Time not_before = absl::FromUnixSeconds(1700000000);  // 2023-11-14
  absl::Time not_after = absl::FromUnixSeconds(1950000000);   // 2031-10-16

  // A Processor-CA PCK as SGX-only machines have: Standard type, no
  // platform instance id or configuration.
  static PckOptions ProcessorCa();
};

// A TD report body (§2.2). Byte fields are raw and fitted (truncated or
// zero-padded) to their size; the TD 1.5 fields are used by kTdxV5Td15 only.
struct TdReportFields {
  std::string tee_tcb_svn = std::string("\x06\x01\x03", 3);  // 16; [1]=1 selects TDX_01
  std::string mr_seam = std::string(48, '\x5b');
  std::string mr_signer_seam;  // 48, zero for Intel's module
  uint64_t seam_attributes = 0;
  uint64_t td_attributes = 0x10000000;  // SEPT_VE_DISABLE, not DEBUG
  uint64_t xfam = 0x602e7;
  std::string mr_td = std::string(48, '\x4d');
  std::string mr_config_id;                                   // 48
  std::string mr_owner;                                       // 48
  std::string mr_owner_config;                                // 48
  std::array<std::string, 4> rtmr;                            // 48 each
  std::string report_data;                                    // 64
  std::string tee_tcb_svn2 = std::string("\x06\x01\x03", 3);  // 16
  std::string mr_servicetd;                                   // 48
};

// An SGX enclave report body (§4.2): the ISV enclave of an SGX quote.
struct EnclaveReportFields {
  std::string cpu_svn = std::string("\x03\x03\x02\x02\x04\x01\x00\x05", 8);  // 16
  uint32_t miscselect = 0;
  std::string isv_ext_prod_id;                                        // 16
  std::string attributes = std::string("\x05\0\0\0\0\0\0\0\x03", 9);  // 16: INIT|MODE64BIT, XFRM 3
  std::string mr_enclave = std::string(32, '\xe1');
  std::string mr_signer = std::string(32, '\x5e');
  std::string config_id;  // 64
  uint16_t isv_prod_id = 0;
  uint16_t isv_svn = 1;
  uint16_t config_svn = 0;
  std::string isv_family_id;  // 16
  std::string report_data;    // 64
};

// The quoting enclave's report and the certification data around it.
// Defaults are Intel's TD-QE; ForSgx() gives QE3.
struct QeFields {
  std::string cpu_svn = std::string("\x03\x03\x02\x02\x04\x01\x00\x05", 8);  // 16
  uint32_t miscselect = 0;
  std::string attributes = std::string("\x15\0\0\0\0\0\0\0\xe7", 9);  // 16
  std::string mr_enclave = std::string(32, '\xe5');
  std::string mr_signer = std::string(
      "\xdc\x9e\x2a\x7c\x6f\x94\x8f\x17\x47\x4e\x34\xa7\xfc\x43\xed\x03"
      "\x0f\x7c\x15\x63\xf1\xba\xbd\xdf\x63\x40\xc8\x2e\x0e\x54\xa8\xc5",
      32);
  uint16_t isv_prod_id = 2;
  uint16_t isv_svn = 8;
  uint16_t config_svn = 0;
  std::string auth_data = DefaultAuthData();  // 00 01 .. 1f, as real QEs send
  // Replaces SHA-256(attestation key || auth data) || 0^32 (negative tests).
  std::optional<std::string> report_data;
  // Replaces the last issued PCK's chain in the certification data.
  std::optional<std::string> pck_chain_pem;
  // Real QEs count a terminating NUL into the PEM chain's size.
  bool nul_terminated_chain = true;

  static QeFields ForSgx();
  static std::string DefaultAuthData();
};

// Header fields and framing; unset fields follow the quote kind.
struct QuoteOptions {
  std::optional<uint16_t> version;
  uint16_t att_key_type = 2;  // ECDSA-256-with-P-256
  std::optional<uint32_t> tee_type;
  std::string qe_vendor_id =
      std::string("\x93\x9a\x72\x33\xf7\x9c\x4c\xa9\x94\x0a\x0d\xb3\x95\x7f\x06\x07", 16);
  std::string user_data = std::string(16, '\x88');  // 20: QE-ID, then zeros
  // SGX v3 header bytes 8..12 (zero in TDX quotes); default: the QE
  // report's ISVSVN and the PCK's PCESVN.
  std::optional<uint16_t> qe_svn;
  std::optional<uint16_t> pce_svn;
  size_t trailing_padding = 0;  // zero bytes after the signature data
};

// Signs quote bodies for a fixed attestation key and a fixed QE
// certification data tail (QE report, its PCK signature, auth data, PCK
// chain): one P-256 signature per quote, for load generators. Export() and
// Import() carry it to another process. Move-only; Sign() and
// SignEnclave() are thread-safe.
class QuoteSigner final {
 public:
  // A TDX quote (kTdxV4, kTdxV5Td10, kTdxV5Td15) of `td`.
  absl::StatusOr<std::string> Sign(QuoteKind kind, const TdReportFields& td,
                                   const QuoteOptions& options = {}) const;
  // An SGX v3 quote of `enclave`.
  absl::StatusOr<std::string> SignEnclave(const EnclaveReportFields& enclave,
                                          const QuoteOptions& options = {}) const;

  // JSON {"attestation_key": PKCS#8 PEM, "qe_certification_data": hex,
  // "pce_svn": n}. The text holds a private key: test use only.
  absl::StatusOr<std::string> Export() const;
  // InvalidArgument for text Export() did not produce.
  static absl::StatusOr<QuoteSigner> Import(absl::string_view exported);

  // X || Y, 64 bytes big-endian, as quoted.
  const std::string& attestation_public_key() const { return public_key_; }
  // QE report (384) | signature (64) | auth size u16 | auth | type 5 u16 |
  // size u32 | PEM chain: the contents of TDX certification data type 6 and
  // the tail of SGX v3 signature data.
  const std::string& qe_certification_data() const { return qe_certification_data_; }

 private:
  friend class DcapTestPki;
  QuoteSigner(common::EvpPkeyPtr key, std::string public_key, std::string qe_certification_data,
              uint16_t pce_svn);
  absl::StatusOr<std::string> Assemble(QuoteKind kind, absl::string_view body,
                                       const QuoteOptions& options) const;
  common::EvpPkeyPtr key_;
  std::string public_key_;
  std::string qe_certification_data_;
  uint16_t pce_svn_ = 0;
};

class DcapTestPki final {
 public:
  // Root, both PCK CAs and TCB Signing, valid over [not_before, not_after].
  static absl::StatusOr<std::unique_ptr<DcapTestPki>> Create(
      absl::Time not_before = absl::FromUnixSeconds(1600000000),  // 2020-09-13
      absl::Time not_after = absl::FromUnixSeconds(2400000000));  // 2046-01-20

  // SHA-256 of the root DER, lowercase hex.
  std::string RootFingerprintHex() const;
  std::string RootPem() const;
  std::string RootDer() const;
  // TCB Signing, root (the TCB-Info-Issuer-Chain / enclave identity chain).
  std::string TcbSigningChainPem() const;
  // PCK Platform (or Processor) CA, root (the SGX-PCK-CRL-Issuer-Chain).
  std::string PckCrlIssuerChainPem(bool platform) const;

  // A PCK leaf; returns the chain PEM leaf, CA, root. Its key signs the QE
  // reports of later quotes.
  absl::StatusOr<std::string> IssuePck(const PckOptions& options);
  // The last issued PCK's serial and key (PKCS#8 PEM).
  long LastPckSerial() const { return last_pck_serial_; }
  absl::StatusOr<std::string> PckKeyPem() const;

  // A signer with a fresh attestation key (or the PKCS#8 PEM given) whose QE
  // report is signed by the last issued PCK. FailedPrecondition before
  // IssuePck().
  absl::StatusOr<QuoteSigner> MakeQuoteSigner(const QeFields& qe,
                                              absl::string_view attestation_key_pem = "") const;
  // One quote with a fresh attestation key: `td` for TDX kinds, `enclave`
  // for kSgxV3.
  absl::StatusOr<std::string> MakeQuote(QuoteKind kind, const TdReportFields& td,
                                        const EnclaveReportFields& enclave, const QeFields& qe,
                                        const QuoteOptions& options = {}) const;

  // PCS bodies {"tcbInfo":<text>,"signature":"<hex r||s>"} and
  // {"enclaveIdentity":...}: the value is serialized once by CollateralText()
  // and the TCB Signing key signs exactly those bytes.
  absl::StatusOr<std::string> SignTcbInfo(const common::Json& tcb_info) const;
  absl::StatusOr<std::string> SignQeIdentity(const common::Json& identity) const;
  // Same, for a caller-made text (whitespace, key order, duplicates: signed
  // as given, not parsed).
  absl::StatusOr<std::string> SignTcbInfoText(absl::string_view text) const;
  absl::StatusOr<std::string> SignQeIdentityText(absl::string_view text) const;
  // ECDSA P-256/SHA-256 by the TCB Signing key over `text`, hex r || s.
  absl::StatusOr<std::string> SignCollateralText(absl::string_view text) const;
  // Compact JSON with members in Intel's order (id, version, issueDate, ...;
  // unknown members last, sorted), unlike common::DumpJson's sorted keys, so
  // a verifier that re-serializes instead of keeping the signed bytes fails.
  static std::string CollateralText(const common::Json& value);

  // DER CRLs (v2, CRL number, AKI, ECDSA-SHA256) revoking `revoked` serials,
  // signed by the PCK Platform/Processor CA or by the root.
  absl::StatusOr<std::string> MakePckCrl(bool platform, const std::vector<long>& revoked,
                                         absl::Time this_update, absl::Time next_update) const;
  absl::StatusOr<std::string> MakeRootCrl(const std::vector<long>& revoked, absl::Time this_update,
                                          absl::Time next_update) const;

  // dcap-qvl's QuoteCollateralV3 JSON (§2.5): pck_crl_issuer_chain,
  // root_ca_crl (hex DER), pck_crl (hex DER), tcb_info_issuer_chain,
  // tcb_info (exact signed text), tcb_info_signature (hex),
  // qe_identity_issuer_chain, qe_identity, qe_identity_signature.
  absl::StatusOr<common::Json> CollateralBundle(const common::Json& tcb_info,
                                                const common::Json& qe_identity, bool platform,
                                                absl::string_view pck_crl_der,
                                                absl::string_view root_crl_der) const;

  // Collateral that rates a default PCK, quote and QE as UpToDate. TDX:
  // tdxModule, tdxModuleIdentities TDX_03 and TDX_01, levels UpToDate then
  // OutOfDate (with advisoryIDs). SGX: UpToDate, SWHardeningNeeded (lower
  // comp SVNs), OutOfDate (lower PCESVN). QE identity: TD_QE (isvprodid 2) or
  // QE (isvprodid 1), version 2, UpToDate from ISVSVN 8 (TD_QE: 4).
  static common::Json DefaultTdxTcbInfo(absl::Time issue_date, absl::Time next_update,
                                        absl::string_view fmspc_hex = kDcapDefaultFmspcHex);
  static common::Json DefaultSgxTcbInfo(absl::Time issue_date, absl::Time next_update,
                                        absl::string_view fmspc_hex = kDcapDefaultFmspcHex);
  static common::Json DefaultQeIdentity(bool tdx, absl::Time issue_date, absl::Time next_update);
  // "2026-02-01T14:49:26Z", as PCS writes times.
  static std::string IntelTime(absl::Time t);

  // The agent's evidence JSON (§2.1, §4.1): {"cc_eventlog": base64|null,
  // "quote": base64} and {"quote": base64}.
  static common::Json TdxEvidenceJson(absl::string_view quote,
                                      std::optional<absl::string_view> cc_eventlog = std::nullopt);
  static common::Json SgxEvidenceJson(absl::string_view quote);

 private:
  DcapTestPki() = default;
  X509* PckCa(bool platform) const;
  EVP_PKEY* PckCaKey(bool platform) const;
  absl::StatusOr<std::string> MakeCrl(X509* issuer, EVP_PKEY* key, const std::vector<long>& revoked,
                                      absl::Time this_update, absl::Time next_update) const;

  common::EvpPkeyPtr root_key_, platform_ca_key_, processor_ca_key_, tcb_key_, pck_key_;
  common::X509Ptr root_, platform_ca_, processor_ca_, tcb_;
  std::string pck_chain_pem_;
  uint16_t pck_pce_svn_ = 0;
  long last_pck_serial_ = 0;
  long next_serial_ = 100;
};

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_DCAP_GENERATOR_H_
