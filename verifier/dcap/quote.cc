#include "verifier/dcap/quote.h"

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/status_macros.h"

namespace kbs::verifier::dcap {
namespace {

using common::ByteReader;

// Certification data types (sgx_quote_3.h sgx_ql_cert_key_type_t).
constexpr uint16_t kCertPckChain = 5;
constexpr uint16_t kCertQeReport = 6;
// No real quote comes near this; it bounds what a malicious length can make
// us copy.
constexpr uint32_t kMaxSignatureData = 1 << 20;

absl::StatusOr<std::string> Take(ByteReader& r, size_t n, absl::string_view what) {
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> b, r.Bytes(n, what));
  return common::ToString(b);
}

absl::StatusOr<TdReport> ParseTdReport(ByteReader& r, bool td15) {
  TdReport t;
  KBS_ASSIGN_OR_RETURN(t.tee_tcb_svn, Take(r, 16, "TD report TEE_TCB_SVN"));
  KBS_ASSIGN_OR_RETURN(t.mr_seam, Take(r, 48, "TD report MRSEAM"));
  KBS_ASSIGN_OR_RETURN(t.mr_signer_seam, Take(r, 48, "TD report MRSIGNERSEAM"));
  KBS_ASSIGN_OR_RETURN(t.seam_attributes, r.U64("TD report SEAMATTRIBUTES"));
  KBS_ASSIGN_OR_RETURN(t.td_attributes, r.U64("TD report TDATTRIBUTES"));
  KBS_ASSIGN_OR_RETURN(t.xfam, r.U64("TD report XFAM"));
  KBS_ASSIGN_OR_RETURN(t.mr_td, Take(r, 48, "TD report MRTD"));
  KBS_ASSIGN_OR_RETURN(t.mr_config_id, Take(r, 48, "TD report MRCONFIGID"));
  KBS_ASSIGN_OR_RETURN(t.mr_owner, Take(r, 48, "TD report MROWNER"));
  KBS_ASSIGN_OR_RETURN(t.mr_owner_config, Take(r, 48, "TD report MROWNERCONFIG"));
  for (int i = 0; i < 4; ++i) {
    KBS_ASSIGN_OR_RETURN(t.rtmr[i], Take(r, 48, absl::StrCat("TD report RTMR", i)));
  }
  KBS_ASSIGN_OR_RETURN(t.report_data, Take(r, 64, "TD report REPORTDATA"));
  if (td15) {
    KBS_ASSIGN_OR_RETURN(t.tee_tcb_svn2, Take(r, 16, "TD report TEE_TCB_SVN2"));
    KBS_ASSIGN_OR_RETURN(t.mr_service_td, Take(r, 48, "TD report MRSERVICETD"));
  }
  return t;
}

absl::StatusOr<EnclaveReport> ReadEnclaveReport(ByteReader& r, absl::string_view what) {
  EnclaveReport e;
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> raw, r.Bytes(kEnclaveReportSize, what));
  e.raw = common::ToString(raw);
  ByteReader b(raw);
  auto field = [&](size_t n, absl::string_view name) {
    return Take(b, n, absl::StrCat(what, " ", name));
  };
  KBS_ASSIGN_OR_RETURN(e.cpu_svn, field(16, "CPUSVN"));
  KBS_ASSIGN_OR_RETURN(e.misc_select, b.U32(absl::StrCat(what, " MISCSELECT")));
  KBS_ASSIGN_OR_RETURN(e.reserved1, field(12, "reserved"));
  KBS_ASSIGN_OR_RETURN(e.isv_ext_prod_id, field(16, "ISVEXTPRODID"));
  KBS_ASSIGN_OR_RETURN(e.attributes, field(16, "ATTRIBUTES"));
  KBS_ASSIGN_OR_RETURN(e.mr_enclave, field(32, "MRENCLAVE"));
  KBS_ASSIGN_OR_RETURN(e.reserved2, field(32, "reserved"));
  KBS_ASSIGN_OR_RETURN(e.mr_signer, field(32, "MRSIGNER"));
  KBS_ASSIGN_OR_RETURN(e.reserved3, field(32, "reserved"));
  KBS_ASSIGN_OR_RETURN(e.config_id, field(64, "CONFIGID"));
  KBS_ASSIGN_OR_RETURN(e.isv_prod_id, b.U16(absl::StrCat(what, " ISVPRODID")));
  KBS_ASSIGN_OR_RETURN(e.isv_svn, b.U16(absl::StrCat(what, " ISVSVN")));
  KBS_ASSIGN_OR_RETURN(e.config_svn, b.U16(absl::StrCat(what, " CONFIGSVN")));
  KBS_ASSIGN_OR_RETURN(e.reserved4, field(42, "reserved"));
  KBS_ASSIGN_OR_RETURN(e.isv_family_id, field(16, "ISVFAMILYID"));
  KBS_ASSIGN_OR_RETURN(e.report_data, field(64, "REPORTDATA"));
  return e;
}

// QE report, its signature, QE auth data and the PCK chain (the contents of
// certification data type 6 in v4/v5; the tail of the signature data in v3).
absl::Status ReadQeSection(ByteReader& r, Quote& q) {
  KBS_ASSIGN_OR_RETURN(q.qe_report, ReadEnclaveReport(r, "QE report"));
  KBS_ASSIGN_OR_RETURN(q.qe_report_signature, Take(r, 64, "QE report signature"));
  KBS_ASSIGN_OR_RETURN(uint16_t auth_size, r.U16("QE auth data size"));
  KBS_ASSIGN_OR_RETURN(q.qe_auth_data, Take(r, auth_size, "QE auth data"));
  const size_t type_offset = r.offset();
  KBS_ASSIGN_OR_RETURN(uint16_t cert_type, r.U16("QE certification data type"));
  if (cert_type != kCertPckChain) {
    return absl::InvalidArgumentError(
        absl::StrCat("QE certification data type at offset ", type_offset, " is ", cert_type,
                     "; only 5 (PCK certificate chain) is supported"));
  }
  KBS_ASSIGN_OR_RETURN(uint32_t chain_size, r.U32("QE certification data size"));
  KBS_ASSIGN_OR_RETURN(q.pck_chain_pem, Take(r, chain_size, "PCK certificate chain"));
  // The chain is PEM text; some quote generators NUL-terminate it.
  while (!q.pck_chain_pem.empty() && q.pck_chain_pem.back() == '\0') q.pck_chain_pem.pop_back();
  return absl::OkStatus();
}

}  // namespace

uint64_t EnclaveReport::attribute_flags() const {
  uint64_t v = 0;
  for (int i = 7; i >= 0 && attributes.size() >= 8; --i) {
    v = (v << 8) | static_cast<uint8_t>(attributes[i]);
  }
  return v;
}

absl::StatusOr<EnclaveReport> ParseEnclaveReport(absl::Span<const uint8_t> bytes) {
  if (bytes.size() != kEnclaveReportSize) {
    return absl::InvalidArgumentError(
        absl::StrCat("enclave report is ", bytes.size(), " bytes, expected 384"));
  }
  ByteReader r(bytes);
  return ReadEnclaveReport(r, "enclave report");
}

absl::StatusOr<Quote> ParseQuote(absl::Span<const uint8_t> bytes) {
  ByteReader r(bytes);
  Quote q;
  QuoteHeader& h = q.header;
  KBS_ASSIGN_OR_RETURN(h.version, r.U16("quote header version"));
  KBS_ASSIGN_OR_RETURN(h.att_key_type, r.U16("quote header attestation key type"));
  KBS_ASSIGN_OR_RETURN(h.tee_type, r.U32("quote header TEE type"));
  KBS_ASSIGN_OR_RETURN(h.reserved, Take(r, 4, "quote header reserved"));
  KBS_ASSIGN_OR_RETURN(h.qe_vendor_id, Take(r, 16, "quote header QE vendor id"));
  KBS_ASSIGN_OR_RETURN(h.user_data, Take(r, 20, "quote header user data"));
  if (h.version != 3 && h.version != 4 && h.version != 5) {
    return absl::InvalidArgumentError(
        absl::StrCat("quote version ", h.version, " is not supported (3, 4 and 5 are)"));
  }
  if (h.att_key_type != kAttestationKeyEcdsaP256) {
    return absl::InvalidArgumentError(absl::StrCat("quote attestation key type ", h.att_key_type,
                                                   " is not supported (2 = ECDSA P-256)"));
  }
  if (h.version == 3) {
    // In v3 bytes 4..8 are att_key_data_0 (0) and 8..12 the QE and PCE SVNs.
    if (h.tee_type != kTeeTypeSgx) {
      return absl::InvalidArgumentError(
          absl::StrCat("quote v3 with TEE type 0x", absl::Hex(h.tee_type), "; v3 is SGX only"));
    }
    h.qe_svn = static_cast<uint8_t>(h.reserved[0]) | static_cast<uint8_t>(h.reserved[1]) << 8;
    h.pce_svn = static_cast<uint8_t>(h.reserved[2]) | static_cast<uint8_t>(h.reserved[3]) << 8;
  } else if (h.tee_type != kTeeTypeTdx && !(h.version == 5 && h.tee_type == kTeeTypeSgx)) {
    return absl::InvalidArgumentError(absl::StrCat("quote v", h.version, " with TEE type 0x",
                                                   absl::Hex(h.tee_type), " is not supported"));
  }

  // Body.
  uint32_t body_size = 0;
  if (h.version == 5) {
    KBS_ASSIGN_OR_RETURN(q.body_type, r.U16("quote v5 body type"));
    KBS_ASSIGN_OR_RETURN(body_size, r.U32("quote v5 body size"));
    const uint32_t want = q.body_type == 1   ? kEnclaveReportSize
                          : q.body_type == 2 ? kTdReport10Size
                          : q.body_type == 3 ? kTdReport15Size
                                             : 0;
    if (want == 0) {
      return absl::InvalidArgumentError(
          absl::StrCat("quote v5 body type ", q.body_type, " is unknown (1, 2, 3 are defined)"));
    }
    if (body_size != want) {
      return absl::InvalidArgumentError(absl::StrCat("quote v5 body of type ", q.body_type,
                                                     " declares ", body_size, " bytes, expected ",
                                                     want));
    }
    if ((q.body_type == 1) != (h.tee_type == kTeeTypeSgx)) {
      return absl::InvalidArgumentError(absl::StrCat("quote v5 body type ", q.body_type,
                                                     " does not match TEE type 0x",
                                                     absl::Hex(h.tee_type)));
    }
  } else {
    q.body_type = h.version == 3 ? 1 : 2;
  }
  if (q.body_type == 1) {
    KBS_ASSIGN_OR_RETURN(q.enclave, ReadEnclaveReport(r, "enclave report"));
  } else {
    KBS_ASSIGN_OR_RETURN(q.td, ParseTdReport(r, q.body_type == 3));
  }
  q.signed_bytes = common::ToString(bytes.subspan(0, r.offset()));

  // Signature data.
  KBS_ASSIGN_OR_RETURN(uint32_t sig_len, r.U32("quote signature data length"));
  if (sig_len > kMaxSignatureData || sig_len > r.remaining()) {
    return absl::InvalidArgumentError(absl::StrCat("quote signature data length ", sig_len,
                                                   " at offset ", r.offset() - 4, " exceeds the ",
                                                   r.remaining(), " bytes that follow"));
  }
  KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> sig_data, r.Bytes(sig_len, "signature data"));
  q.size = r.offset();
  ByteReader s(sig_data);
  KBS_ASSIGN_OR_RETURN(q.signature, Take(s, 64, "quote signature"));
  KBS_ASSIGN_OR_RETURN(q.attestation_key, Take(s, 64, "attestation key"));
  if (h.version == 3) {
    KBS_RETURN_IF_ERROR(ReadQeSection(s, q));
  } else {
    KBS_ASSIGN_OR_RETURN(uint16_t cert_type, s.U16("certification data type"));
    if (cert_type != kCertQeReport) {
      return absl::InvalidArgumentError(
          absl::StrCat("certification data type ", cert_type,
                       " is not supported (6 = QE report certification data)"));
    }
    KBS_ASSIGN_OR_RETURN(uint32_t cert_size, s.U32("certification data size"));
    KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> cert, s.Bytes(cert_size, "certification data"));
    ByteReader c(cert);
    KBS_RETURN_IF_ERROR(ReadQeSection(c, q));
  }
  return q;
}

}  // namespace kbs::verifier::dcap
