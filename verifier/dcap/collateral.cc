#include "verifier/dcap/collateral.h"

#include <openssl/ecdsa.h>
#include <openssl/err.h>
#include <openssl/evp.h>
#include <openssl/x509v3.h>

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/json.h"
#include "common/status_macros.h"
#include "verifier/dcap/signature.h"

namespace kbs::verifier::dcap {
namespace {

using common::Json;

absl::Status Bad(absl::string_view where, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat(where, ": ", what));
}

absl::StatusOr<const Json*> Member(const Json& o, absl::string_view key, absl::string_view where) {
  const Json* v = common::FindMember(o, key);
  if (v == nullptr) return Bad(where, absl::StrCat("no member \"", key, "\""));
  return v;
}

absl::StatusOr<std::string> String(const Json& o, absl::string_view key, absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(const Json* v, Member(o, key, where));
  if (!v->is_string()) return Bad(where, absl::StrCat("\"", key, "\" is not a string"));
  return v->get<std::string>();
}

absl::StatusOr<int64_t> Int(const Json& o, absl::string_view key, absl::string_view where,
                            int64_t max) {
  KBS_ASSIGN_OR_RETURN(const Json* v, Member(o, key, where));
  if (!v->is_number_integer() || v->get<int64_t>() < 0 || v->get<int64_t>() > max) {
    return Bad(where, absl::StrCat("\"", key, "\" is not an integer in [0, ", max, "]"));
  }
  return v->get<int64_t>();
}

absl::StatusOr<std::string> HexBytes(const Json& o, absl::string_view key, size_t size,
                                     absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(std::string text, String(o, key, where));
  auto raw = common::HexDecode(absl::AsciiStrToLower(text));
  if (!raw.ok() || raw->size() != size) {
    return Bad(where, absl::StrCat("\"", key, "\" is not ", size, " bytes of hex"));
  }
  return *std::move(raw);
}

absl::StatusOr<uint64_t> HexU64(const Json& o, absl::string_view key, absl::string_view where) {
  // Intel writes the attribute words as they are in memory (little endian).
  KBS_ASSIGN_OR_RETURN(std::string raw, HexBytes(o, key, 8, where));
  uint64_t v = 0;
  for (int i = 7; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(raw[i]);
  return v;
}

absl::StatusOr<uint32_t> HexU32(const Json& o, absl::string_view key, absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(std::string raw, HexBytes(o, key, 4, where));
  uint32_t v = 0;
  for (int i = 3; i >= 0; --i) v = (v << 8) | static_cast<uint8_t>(raw[i]);
  return v;
}

absl::StatusOr<absl::Time> Date(const Json& o, absl::string_view key, absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(std::string text, String(o, key, where));
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, text, &t, &err)) {
    return Bad(where, absl::StrCat("\"", key, "\" is not an RFC 3339 time"));
  }
  return t;
}

absl::StatusOr<std::vector<std::string>> Advisories(const Json& level, absl::string_view where) {
  std::vector<std::string> out;
  const Json* ids = common::FindMember(level, "advisoryIDs");
  if (ids == nullptr) return out;
  if (!ids->is_array()) return Bad(where, "\"advisoryIDs\" is not an array");
  for (const Json& id : *ids) {
    if (!id.is_string()) return Bad(where, "\"advisoryIDs\" holds a non-string");
    out.push_back(id.get<std::string>());
  }
  return out;
}

absl::StatusOr<std::array<uint8_t, 16>> Components(const Json& tcb, absl::string_view key,
                                                   absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(const Json* comps, Member(tcb, key, where));
  if (!comps->is_array() || comps->size() != 16) {
    return Bad(where, absl::StrCat("\"", key, "\" is not an array of 16 components"));
  }
  std::array<uint8_t, 16> out{};
  for (size_t i = 0; i < 16; ++i) {
    if (!(*comps)[i].is_object())
      return Bad(where, absl::StrCat(key, "[", i, "] is not an object"));
    KBS_ASSIGN_OR_RETURN(int64_t svn, Int((*comps)[i], "svn", absl::StrCat(where, " ", key), 255));
    out[i] = static_cast<uint8_t>(svn);
  }
  return out;
}

// An identity level: {"tcb":{"isvsvn":n},"tcbDate":..,"tcbStatus":..,"advisoryIDs"?}.
absl::StatusOr<std::vector<TcbLevel>> IdentityLevels(const Json& o, absl::string_view where) {
  KBS_ASSIGN_OR_RETURN(const Json* levels, Member(o, "tcbLevels", where));
  if (!levels->is_array() || levels->empty())
    return Bad(where, "\"tcbLevels\" is not a non-empty array");
  std::vector<TcbLevel> out;
  for (const Json& l : *levels) {
    const std::string lw = absl::StrCat(where, " tcbLevels[", out.size(), "]");
    if (!l.is_object()) return Bad(lw, "not an object");
    TcbLevel level;
    KBS_ASSIGN_OR_RETURN(const Json* tcb, Member(l, "tcb", lw));
    if (!tcb->is_object()) return Bad(lw, "\"tcb\" is not an object");
    KBS_ASSIGN_OR_RETURN(int64_t isvsvn, Int(*tcb, "isvsvn", lw, 65535));
    level.isv_svn = static_cast<uint16_t>(isvsvn);
    KBS_ASSIGN_OR_RETURN(level.tcb_date, String(l, "tcbDate", lw));
    KBS_ASSIGN_OR_RETURN(level.status, String(l, "tcbStatus", lw));
    KBS_ASSIGN_OR_RETURN(level.advisory_ids, Advisories(l, lw));
    out.push_back(std::move(level));
  }
  return out;
}

absl::StatusOr<TdxModuleIdentity> ModuleIdentity(const Json& o, absl::string_view where,
                                                 bool with_levels) {
  if (!o.is_object()) return Bad(where, "not an object");
  TdxModuleIdentity m;
  if (with_levels) {
    KBS_ASSIGN_OR_RETURN(m.id, String(o, "id", where));
    KBS_ASSIGN_OR_RETURN(m.levels, IdentityLevels(o, where));
  }
  KBS_ASSIGN_OR_RETURN(m.mr_signer, HexBytes(o, "mrsigner", 48, where));
  KBS_ASSIGN_OR_RETURN(m.attributes, HexU64(o, "attributes", where));
  KBS_ASSIGN_OR_RETURN(m.attributes_mask, HexU64(o, "attributesMask", where));
  return m;
}

// The text span of the value of top-level member `name` of the JSON object
// `text` (already known to be valid JSON). Strings are skipped with their
// escapes so braces inside them do not count.
std::optional<std::pair<size_t, size_t>> MemberSpan(absl::string_view text,
                                                    absl::string_view name) {
  int depth = 0;
  for (size_t i = 0; i < text.size(); ++i) {
    const char c = text[i];
    if (c == '"') {
      const size_t start = i;
      for (++i; i < text.size() && text[i] != '"'; ++i) {
        if (text[i] == '\\') ++i;
      }
      if (i >= text.size()) return std::nullopt;
      if (depth != 1) continue;
      // A key is followed by ':'.
      size_t j = i + 1;
      while (j < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[j]))) ++j;
      if (j >= text.size() || text[j] != ':') continue;
      auto key = common::ParseTrustedJson(text.substr(start, i + 1 - start));
      if (!key.ok() || !key->is_string() || key->get<std::string>() != name) continue;
      ++j;
      while (j < text.size() && absl::ascii_isspace(static_cast<unsigned char>(text[j]))) ++j;
      auto value = common::ParseJsonPrefix(text.substr(j));
      if (!value.ok()) return std::nullopt;
      return std::make_pair(j, value->size);
    }
    if (c == '{' || c == '[') ++depth;
    if (c == '}' || c == ']') --depth;
  }
  return std::nullopt;
}

absl::StatusOr<std::string> Hex(const Json& o, absl::string_view key, absl::string_view where,
                                bool optional) {
  const Json* v = common::FindMember(o, key);
  if (v == nullptr || v->is_null()) {
    if (optional) return std::string();
    return Bad(where, absl::StrCat("no member \"", key, "\""));
  }
  if (!v->is_string()) return Bad(where, absl::StrCat("\"", key, "\" is not a string"));
  auto raw = common::HexDecode(absl::AsciiStrToLower(v->get<std::string>()));
  if (!raw.ok()) return Bad(where, absl::StrCat("\"", key, "\" is not hex"));
  return *std::move(raw);
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

absl::Status CheckWindow(absl::string_view what, absl::Time issued, absl::Time next,
                         absl::Time at) {
  if (at < issued || at > next) {
    return absl::UnauthenticatedError(absl::StrCat(what, " is not current at ", Rfc3339(at),
                                                   " (issued ", Rfc3339(issued), ", next update ",
                                                   Rfc3339(next), "); fresh collateral is needed"));
  }
  return absl::OkStatus();
}

// Verifies `signed_object` with the leaf of `chain_pem` and the chain to a
// pinned root at `at`. Returns the chain's window.
absl::StatusOr<ChainWindow> VerifySigned(absl::string_view what, absl::string_view text,
                                         absl::string_view signature, absl::string_view chain_pem,
                                         const RootAnchors& anchors, absl::Time at) {
  auto certs = common::ParsePemCertificates(chain_pem);
  if (!certs.ok() || certs->size() != 2) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, " issuer chain is not the TCB Signing certificate and the root"));
  }
  const X509* leaf = (*certs)[0].get();
  const X509* root = (*certs)[1].get();
  // Only Intel's TCB Signing key signs collateral: a PCK or CA key under the
  // same root must not (Intel QVL checks the subject too).
  if (!absl::StrContains(common::CommonName(leaf), "SGX TCB Signing")) {
    return absl::UnauthenticatedError(absl::StrCat(what, " is signed by '",
                                                   common::CommonName(leaf).substr(0, 64),
                                                   "', not by an SGX TCB Signing certificate"));
  }
  KBS_ASSIGN_OR_RETURN(
      ChainWindow w, VerifyChain(leaf, {}, root, anchors, at, absl::StrCat(what, " issuer chain")));
  if (signature.size() != 64 || !VerifyP256Signature(X509_get0_pubkey(leaf), text, signature)) {
    return absl::UnauthenticatedError(absl::StrCat(what, " signature does not verify with '",
                                                   common::CommonName(leaf).substr(0, 64), "'"));
  }
  return w;
}

absl::StatusOr<common::X509CrlPtr> Crl(absl::string_view der, absl::string_view what) {
  auto crl = common::ParseCrl(der);
  if (!crl.ok()) {
    return absl::UnauthenticatedError(absl::StrCat(what, ": ", crl.status().message()));
  }
  return crl;
}

std::optional<int64_t> CrlNumber(const X509_CRL* crl) {
  ASN1_INTEGER* n =
      static_cast<ASN1_INTEGER*>(X509_CRL_get_ext_d2i(crl, NID_crl_number, nullptr, nullptr));
  if (n == nullptr) return std::nullopt;
  int64_t v = 0;
  bool ok = ASN1_INTEGER_get_int64(&v, n) == 1;
  ASN1_INTEGER_free(n);
  ERR_clear_error();
  if (!ok) return std::nullopt;
  return v;
}

std::string TeeDir(DcapTee tee) { return tee == DcapTee::kTdx ? "tdx" : "sgx"; }

}  // namespace

absl::string_view DcapTeeName(DcapTee tee) { return tee == DcapTee::kTdx ? "tdx" : "sgx"; }

absl::StatusOr<TcbInfo> ParseTcbInfo(absl::string_view json) {
  constexpr absl::string_view kWhere = "TCB info";
  KBS_ASSIGN_OR_RETURN(Json o, common::ParseJson(json));
  if (!o.is_object()) return Bad(kWhere, "not a JSON object");
  TcbInfo t;
  KBS_ASSIGN_OR_RETURN(int64_t version, Int(o, "version", kWhere, 100));
  t.version = static_cast<int>(version);
  if (t.version != 2 && t.version != 3) {
    return Bad(kWhere, absl::StrCat("version ", t.version, " is not supported (2 and 3 are)"));
  }
  if (t.version == 3) {
    KBS_ASSIGN_OR_RETURN(t.id, String(o, "id", kWhere));
  } else {
    t.id = "SGX";
  }
  KBS_ASSIGN_OR_RETURN(t.issue_date, Date(o, "issueDate", kWhere));
  KBS_ASSIGN_OR_RETURN(t.next_update, Date(o, "nextUpdate", kWhere));
  KBS_ASSIGN_OR_RETURN(t.fmspc, HexBytes(o, "fmspc", 6, kWhere));
  KBS_ASSIGN_OR_RETURN(t.pce_id, HexBytes(o, "pceId", 2, kWhere));
  KBS_ASSIGN_OR_RETURN(t.tcb_evaluation_data_number,
                       Int(o, "tcbEvaluationDataNumber", kWhere, INT32_MAX));
  if (const Json* m = common::FindMember(o, "tdxModule"); m != nullptr) {
    KBS_ASSIGN_OR_RETURN(t.tdx_module, ModuleIdentity(*m, "TCB info tdxModule", false));
  }
  if (const Json* ids = common::FindMember(o, "tdxModuleIdentities"); ids != nullptr) {
    if (!ids->is_array()) return Bad(kWhere, "\"tdxModuleIdentities\" is not an array");
    for (const Json& id : *ids) {
      KBS_ASSIGN_OR_RETURN(TdxModuleIdentity m,
                           ModuleIdentity(id,
                                          absl::StrCat("TCB info tdxModuleIdentities[",
                                                       t.tdx_module_identities.size(), "]"),
                                          true));
      t.tdx_module_identities.push_back(std::move(m));
    }
  }
  KBS_ASSIGN_OR_RETURN(const Json* levels, Member(o, "tcbLevels", kWhere));
  if (!levels->is_array() || levels->empty()) {
    return Bad(kWhere, "\"tcbLevels\" is not a non-empty array");
  }
  const bool tdx = t.id == "TDX";
  for (const Json& l : *levels) {
    const std::string lw = absl::StrCat("TCB info tcbLevels[", t.levels.size(), "]");
    if (!l.is_object()) return Bad(lw, "not an object");
    KBS_ASSIGN_OR_RETURN(const Json* tcb, Member(l, "tcb", lw));
    if (!tcb->is_object()) return Bad(lw, "\"tcb\" is not an object");
    TcbLevel level;
    if (t.version == 2) {
      for (int i = 0; i < 16; ++i) {
        KBS_ASSIGN_OR_RETURN(
            int64_t svn,
            Int(*tcb, absl::StrCat("sgxtcbcomp", i + 1 < 10 ? "0" : "", i + 1, "svn"), lw, 255));
        level.sgx_components[i] = static_cast<uint8_t>(svn);
      }
    } else {
      KBS_ASSIGN_OR_RETURN(level.sgx_components, Components(*tcb, "sgxtcbcomponents", lw));
      if (tdx) {
        KBS_ASSIGN_OR_RETURN(level.tdx_components, Components(*tcb, "tdxtcbcomponents", lw));
      }
    }
    KBS_ASSIGN_OR_RETURN(int64_t pcesvn, Int(*tcb, "pcesvn", lw, 65535));
    level.pce_svn = static_cast<uint16_t>(pcesvn);
    KBS_ASSIGN_OR_RETURN(level.tcb_date, String(l, "tcbDate", lw));
    KBS_ASSIGN_OR_RETURN(level.status, String(l, "tcbStatus", lw));
    KBS_ASSIGN_OR_RETURN(level.advisory_ids, Advisories(l, lw));
    t.levels.push_back(std::move(level));
  }
  return t;
}

absl::StatusOr<EnclaveIdentity> ParseEnclaveIdentity(absl::string_view json) {
  constexpr absl::string_view kWhere = "QE identity";
  KBS_ASSIGN_OR_RETURN(Json o, common::ParseJson(json));
  if (!o.is_object()) return Bad(kWhere, "not a JSON object");
  EnclaveIdentity e;
  KBS_ASSIGN_OR_RETURN(e.id, String(o, "id", kWhere));
  KBS_ASSIGN_OR_RETURN(int64_t version, Int(o, "version", kWhere, 100));
  e.version = static_cast<int>(version);
  if (e.version != 2) {
    return Bad(kWhere, absl::StrCat("version ", e.version, " is not supported (2 is)"));
  }
  KBS_ASSIGN_OR_RETURN(e.issue_date, Date(o, "issueDate", kWhere));
  KBS_ASSIGN_OR_RETURN(e.next_update, Date(o, "nextUpdate", kWhere));
  KBS_ASSIGN_OR_RETURN(e.tcb_evaluation_data_number,
                       Int(o, "tcbEvaluationDataNumber", kWhere, INT32_MAX));
  KBS_ASSIGN_OR_RETURN(e.miscselect, HexU32(o, "miscselect", kWhere));
  KBS_ASSIGN_OR_RETURN(e.miscselect_mask, HexU32(o, "miscselectMask", kWhere));
  KBS_ASSIGN_OR_RETURN(e.attributes, HexBytes(o, "attributes", 16, kWhere));
  KBS_ASSIGN_OR_RETURN(e.attributes_mask, HexBytes(o, "attributesMask", 16, kWhere));
  KBS_ASSIGN_OR_RETURN(e.mr_signer, HexBytes(o, "mrsigner", 32, kWhere));
  KBS_ASSIGN_OR_RETURN(int64_t prodid, Int(o, "isvprodid", kWhere, 65535));
  e.isv_prod_id = static_cast<uint16_t>(prodid);
  KBS_ASSIGN_OR_RETURN(e.levels, IdentityLevels(o, kWhere));
  return e;
}

absl::StatusOr<SignedObject> SplitPcsBody(absl::string_view body, absl::string_view member) {
  const std::string where = absl::StrCat("PCS ", member, " body");
  KBS_ASSIGN_OR_RETURN(Json o, common::ParseJson(body));
  if (!o.is_object()) return Bad(where, "not a JSON object");
  KBS_ASSIGN_OR_RETURN(const Json* inner, Member(o, member, where));
  if (!inner->is_object()) return Bad(where, absl::StrCat("\"", member, "\" is not an object"));
  SignedObject out;
  KBS_ASSIGN_OR_RETURN(out.signature, HexBytes(o, "signature", 64, where));
  auto span = MemberSpan(body, member);
  if (!span.has_value()) return Bad(where, absl::StrCat("cannot locate \"", member, "\""));
  out.text = std::string(body.substr(span->first, span->second));
  return out;
}

absl::StatusOr<Collateral> ParseCollateralBundle(absl::string_view json) {
  constexpr absl::string_view kWhere = "collateral bundle";
  KBS_ASSIGN_OR_RETURN(Json o, common::ParseJson(json));
  if (!o.is_object()) return Bad(kWhere, "not a JSON object");
  Collateral c;
  KBS_ASSIGN_OR_RETURN(c.tcb_info, String(o, "tcb_info", kWhere));
  KBS_ASSIGN_OR_RETURN(c.tcb_info_signature, HexBytes(o, "tcb_info_signature", 64, kWhere));
  KBS_ASSIGN_OR_RETURN(c.tcb_info_issuer_chain, String(o, "tcb_info_issuer_chain", kWhere));
  KBS_ASSIGN_OR_RETURN(c.qe_identity, String(o, "qe_identity", kWhere));
  KBS_ASSIGN_OR_RETURN(c.qe_identity_signature, HexBytes(o, "qe_identity_signature", 64, kWhere));
  KBS_ASSIGN_OR_RETURN(c.qe_identity_issuer_chain, String(o, "qe_identity_issuer_chain", kWhere));
  KBS_ASSIGN_OR_RETURN(c.pck_crl, Hex(o, "pck_crl", kWhere, true));
  KBS_ASSIGN_OR_RETURN(c.root_ca_crl, Hex(o, "root_ca_crl", kWhere, true));
  return c;
}

absl::StatusOr<std::shared_ptr<const VerifiedCollateral>> VerifyCollateral(
    const Collateral& c, DcapTee tee, const RootAnchors& anchors, absl::Time at) {
  auto v = std::make_shared<VerifiedCollateral>();
  // Verify before parsing what the signatures cover.
  KBS_ASSIGN_OR_RETURN(ChainWindow tcb_chain,
                       VerifySigned("TCB info", c.tcb_info, c.tcb_info_signature,
                                    c.tcb_info_issuer_chain, anchors, at));
  KBS_ASSIGN_OR_RETURN(ChainWindow qe_chain,
                       VerifySigned("QE identity", c.qe_identity, c.qe_identity_signature,
                                    c.qe_identity_issuer_chain, anchors, at));
  KBS_ASSIGN_OR_RETURN(v->tcb_info, ParseTcbInfo(c.tcb_info));
  KBS_ASSIGN_OR_RETURN(v->qe_identity, ParseEnclaveIdentity(c.qe_identity));
  const TcbInfo& t = v->tcb_info;
  const EnclaveIdentity& q = v->qe_identity;
  const char* want_tcb = tee == DcapTee::kTdx ? "TDX" : "SGX";
  const char* want_qe = tee == DcapTee::kTdx ? "TD_QE" : "QE";
  if (t.id != want_tcb) {
    return absl::UnauthenticatedError(
        absl::StrCat("TCB info is for ", t.id.substr(0, 16), ", not ", want_tcb));
  }
  if (tee == DcapTee::kTdx && t.version < 3) {
    return absl::UnauthenticatedError("TDX needs TCB info version 3");
  }
  if (q.id != want_qe) {
    return absl::UnauthenticatedError(
        absl::StrCat("QE identity is for ", q.id.substr(0, 16), ", not ", want_qe));
  }
  KBS_RETURN_IF_ERROR(CheckWindow("TCB info", t.issue_date, t.next_update, at));
  KBS_RETURN_IF_ERROR(CheckWindow("QE identity", q.issue_date, q.next_update, at));
  v->not_before = std::max({t.issue_date, q.issue_date, tcb_chain.not_before, qe_chain.not_before});
  v->not_after = std::min({t.next_update, q.next_update, tcb_chain.not_after, qe_chain.not_after});
  v->earliest_issue_date = std::min(t.issue_date, q.issue_date);

  auto certs = common::ParsePemCertificates(c.tcb_info_issuer_chain);
  const X509* root = certs.ok() ? certs->back().get() : nullptr;
  if (!c.root_ca_crl.empty()) {
    KBS_ASSIGN_OR_RETURN(v->root_crl, Crl(c.root_ca_crl, "root CA CRL"));
    KBS_RETURN_IF_ERROR(CheckCrl(v->root_crl.get(), root, at, "the root CA CRL"));
    v->not_before = std::max(v->not_before, CrlThisUpdate(v->root_crl.get()));
    v->not_after = std::min(v->not_after, CrlNextUpdate(v->root_crl.get()));
    v->root_crl_number = CrlNumber(v->root_crl.get());
    for (const std::string* chain : {&c.tcb_info_issuer_chain, &c.qe_identity_issuer_chain}) {
      auto signer = common::ParsePemCertificates(*chain);
      if (signer.ok() && common::IsRevoked(v->root_crl.get(), signer->front().get())) {
        return absl::UnauthenticatedError(
            "the TCB Signing certificate is revoked by the root CA CRL");
      }
    }
  }
  if (!c.pck_crl.empty()) {
    KBS_ASSIGN_OR_RETURN(v->pck_crl, Crl(c.pck_crl, "PCK CRL"));
    v->not_before = std::max(v->not_before, CrlThisUpdate(v->pck_crl.get()));
    v->not_after = std::min(v->not_after, CrlNextUpdate(v->pck_crl.get()));
    v->pck_crl_number = CrlNumber(v->pck_crl.get());
  }
  return std::shared_ptr<const VerifiedCollateral>(std::move(v));
}

absl::StatusOr<Collateral> DirectoryCollateral::Get(const CollateralRequest& request,
                                                    absl::Duration) {
  namespace fs = std::filesystem;
  const fs::path dir(dir_);
  const std::string tee = TeeDir(request.tee);
  const std::string fmspc = common::HexEncode(request.fmspc);
  const fs::path tcb_path = dir / tee / "tcb_info" / (fmspc + ".json");
  std::error_code ec;
  if (!fs::exists(tcb_path, ec)) {
    return absl::NotFoundError(absl::StrCat("no ", tcb_path.string()));
  }
  auto read = [](const fs::path& p) -> absl::StatusOr<std::string> {
    auto s = common::ReadFile(p.string(), 16 << 20);
    if (!s.ok()) {
      return absl::UnavailableError(
          absl::StrCat("collateral ", p.string(), ": ", s.status().message()));
    }
    return s;
  };
  Collateral c;
  KBS_ASSIGN_OR_RETURN(std::string tcb_body, read(tcb_path));
  auto tcb = SplitPcsBody(tcb_body, "tcbInfo");
  if (!tcb.ok()) {
    return absl::UnavailableError(absl::StrCat(tcb_path.string(), ": ", tcb.status().message()));
  }
  c.tcb_info = std::move(tcb->text);
  c.tcb_info_signature = std::move(tcb->signature);
  const fs::path qe_path = dir / tee / "qe_identity.json";
  KBS_ASSIGN_OR_RETURN(std::string qe_body, read(qe_path));
  auto qe = SplitPcsBody(qe_body, "enclaveIdentity");
  if (!qe.ok()) {
    return absl::UnavailableError(absl::StrCat(qe_path.string(), ": ", qe.status().message()));
  }
  c.qe_identity = std::move(qe->text);
  c.qe_identity_signature = std::move(qe->signature);
  KBS_ASSIGN_OR_RETURN(c.tcb_info_issuer_chain, read(dir / "tcb_signing_chain.pem"));
  c.qe_identity_issuer_chain = c.tcb_info_issuer_chain;
  const fs::path pck_crl = dir / "pck_crl" / (std::string(PckCaName(request.ca)) + ".der");
  if (fs::exists(pck_crl, ec)) {
    KBS_ASSIGN_OR_RETURN(c.pck_crl, read(pck_crl));
  }
  const fs::path root_crl = dir / "root_ca_crl.der";
  if (fs::exists(root_crl, ec)) {
    KBS_ASSIGN_OR_RETURN(c.root_ca_crl, read(root_crl));
  }
  return c;
}

absl::Status DirectoryCollateral::Store(const CollateralRequest& request, const Collateral& c) {
  namespace fs = std::filesystem;
  const fs::path dir(dir_);
  const std::string tee = TeeDir(request.tee);
  std::error_code ec;
  fs::create_directories(dir / tee / "tcb_info", ec);
  fs::create_directories(dir / "pck_crl", ec);
  if (ec) return absl::UnavailableError(absl::StrCat("cannot create ", dir_, ": ", ec.message()));
  auto body = [](absl::string_view member, absl::string_view text, absl::string_view sig) {
    return absl::StrCat("{\"", member, "\":", text, ",\"signature\":\"", common::HexEncode(sig),
                        "\"}");
  };
  KBS_RETURN_IF_ERROR(common::WriteFileAtomic(
      (dir / tee / "tcb_info" / (common::HexEncode(request.fmspc) + ".json")).string(),
      body("tcbInfo", c.tcb_info, c.tcb_info_signature), 0644));
  KBS_RETURN_IF_ERROR(common::WriteFileAtomic(
      (dir / tee / "qe_identity.json").string(),
      body("enclaveIdentity", c.qe_identity, c.qe_identity_signature), 0644));
  KBS_RETURN_IF_ERROR(common::WriteFileAtomic((dir / "tcb_signing_chain.pem").string(),
                                              c.tcb_info_issuer_chain, 0644));
  if (!c.pck_crl.empty()) {
    KBS_RETURN_IF_ERROR(common::WriteFileAtomic(
        (dir / "pck_crl" / (std::string(PckCaName(request.ca)) + ".der")).string(), c.pck_crl,
        0644));
  }
  if (!c.root_ca_crl.empty()) {
    KBS_RETURN_IF_ERROR(
        common::WriteFileAtomic((dir / "root_ca_crl.der").string(), c.root_ca_crl, 0644));
  }
  return absl::OkStatus();
}

absl::StatusOr<Collateral> ChainedCollateral::Get(const CollateralRequest& request,
                                                  absl::Duration timeout) {
  absl::Status first_error;
  for (CollateralSource* s : sources_) {
    auto c = s->Get(request, timeout);
    if (c.ok()) return c;
    // A fetcher that cannot be reached falls back to what is on disk; its
    // error is reported if nothing else answers.
    if (c.status().code() != absl::StatusCode::kNotFound && first_error.ok()) {
      first_error = c.status();
    }
  }
  if (!first_error.ok()) return first_error;
  absl::Status last = absl::NotFoundError(
      absl::StrCat("no collateral source has FMSPC ", common::HexEncode(request.fmspc)));
  return last;
}

}  // namespace kbs::verifier::dcap
