#include "tests/testing/dcap_generator.h"

#include <openssl/asn1.h>
#include <openssl/asn1t.h>
#include <openssl/ecdsa.h>
#include <openssl/objects.h>
#include <openssl/pem.h>
#include <openssl/x509v3.h>

#include <algorithm>
#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "common/x509.h"
#include "verifier/tdx/tdx_verifier.h"

namespace kbs::testing {
namespace {

using common::Json;
using common::OpenSslDeleter;
using Asn1ObjectPtr = std::unique_ptr<ASN1_OBJECT, OpenSslDeleter<ASN1_OBJECT, ASN1_OBJECT_free>>;
using Asn1OctetStringPtr =
    std::unique_ptr<ASN1_OCTET_STRING, OpenSslDeleter<ASN1_OCTET_STRING, ASN1_OCTET_STRING_free>>;
using Asn1IntegerPtr =
    std::unique_ptr<ASN1_INTEGER, OpenSslDeleter<ASN1_INTEGER, ASN1_INTEGER_free>>;
using Asn1TimePtr = std::unique_ptr<ASN1_TIME, OpenSslDeleter<ASN1_TIME, ASN1_TIME_free>>;
using Asn1TypePtr = std::unique_ptr<ASN1_TYPE, OpenSslDeleter<ASN1_TYPE, ASN1_TYPE_free>>;
using X509ExtensionPtr =
    std::unique_ptr<X509_EXTENSION, OpenSslDeleter<X509_EXTENSION, X509_EXTENSION_free>>;
using X509RevokedPtr =
    std::unique_ptr<X509_REVOKED, OpenSslDeleter<X509_REVOKED, X509_REVOKED_free>>;
struct Asn1SequenceAnyFree {
  void operator()(ASN1_SEQUENCE_ANY* s) const { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); }
};
using Asn1SequenceAnyPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, Asn1SequenceAnyFree>;

constexpr char kSgxExtensionOid[] = "1.2.840.113741.1.13.1";
// Intel's distribution points (evidence-formats.md §2.4); nothing fetches
// them in tests, but collateral sources read the PCK CRL's `ca=` from them.
constexpr char kRootCrlUrl[] = "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";
constexpr char kPlatformCrlUrl[] =
    "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=platform&encoding=der";
constexpr char kProcessorCrlUrl[] =
    "https://api.trustedservices.intel.com/sgx/certification/v4/pckcrl?ca=processor&encoding=der";

std::string Fit(absl::string_view v, size_t n) {
  std::string out(v.substr(0, n));
  out.resize(n, '\0');
  return out;
}

void PutLe(std::string* out, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) out->push_back(static_cast<char>(v >> (8 * i)));
}

// ---- ASN.1 for the SGX extension (§2.4): SEQUENCE OF SEQUENCE {OID, value}.
// Builders return null on allocation failure; Sequence() propagates it.

Asn1TypePtr ObjectValue(const std::string& oid) {
  Asn1TypePtr t(ASN1_TYPE_new());
  ASN1_OBJECT* obj = OBJ_txt2obj(oid.c_str(), /*no_name=*/1);
  if (!t || obj == nullptr) {
    ASN1_OBJECT_free(obj);
    return nullptr;
  }
  ASN1_TYPE_set(t.get(), V_ASN1_OBJECT, obj);
  return t;
}

Asn1TypePtr IntegerValue(int64_t v) {
  Asn1TypePtr t(ASN1_TYPE_new());
  ASN1_INTEGER* i = ASN1_INTEGER_new();
  if (!t || i == nullptr || ASN1_INTEGER_set_int64(i, v) != 1) {
    ASN1_INTEGER_free(i);
    return nullptr;
  }
  ASN1_TYPE_set(t.get(), V_ASN1_INTEGER, i);
  return t;
}

Asn1TypePtr EnumeratedValue(int64_t v) {
  Asn1TypePtr t(ASN1_TYPE_new());
  ASN1_ENUMERATED* e = ASN1_ENUMERATED_new();
  if (!t || e == nullptr || ASN1_ENUMERATED_set_int64(e, v) != 1) {
    ASN1_ENUMERATED_free(e);
    return nullptr;
  }
  ASN1_TYPE_set(t.get(), V_ASN1_ENUMERATED, e);
  return t;
}

Asn1TypePtr OctetsValue(absl::string_view v) {
  Asn1TypePtr t(ASN1_TYPE_new());
  ASN1_OCTET_STRING* o = ASN1_OCTET_STRING_new();
  if (!t || o == nullptr ||
      ASN1_OCTET_STRING_set(o, reinterpret_cast<const unsigned char*>(v.data()),
                            static_cast<int>(v.size())) != 1) {
    ASN1_OCTET_STRING_free(o);
    return nullptr;
  }
  ASN1_TYPE_set(t.get(), V_ASN1_OCTET_STRING, o);
  return t;
}

Asn1TypePtr BooleanValue(bool v) {
  static const int kTrue = 0xff;  // DER TRUE; ASN1_TYPE only tests the pointer
  Asn1TypePtr t(ASN1_TYPE_new());
  if (t && ASN1_TYPE_set1(t.get(), V_ASN1_BOOLEAN, v ? &kTrue : nullptr) != 1) return nullptr;
  return t;
}

// SEQUENCE { items... }, held as an ANY whose value is the DER encoding.
Asn1TypePtr Sequence(std::vector<Asn1TypePtr> items) {
  Asn1SequenceAnyPtr seq(sk_ASN1_TYPE_new_null());
  if (!seq) return nullptr;
  for (Asn1TypePtr& item : items) {
    if (!item || sk_ASN1_TYPE_push(seq.get(), item.get()) <= 0) return nullptr;
    item.release();
  }
  return Asn1TypePtr(
      ASN1_TYPE_pack_sequence(ASN1_ITEM_rptr(ASN1_SEQUENCE_ANY), seq.get(), nullptr));
}

Asn1TypePtr Entry(const std::string& oid, Asn1TypePtr value) {
  std::vector<Asn1TypePtr> items;
  items.push_back(ObjectValue(oid));
  items.push_back(std::move(value));
  return Sequence(std::move(items));
}

absl::StatusOr<std::string> SgxExtensionDer(const PckOptions& o) {
  const std::string base = kSgxExtensionOid;
  std::vector<Asn1TypePtr> tcb;
  for (size_t i = 0; i < o.comp_svn.size(); ++i) {
    tcb.push_back(Entry(absl::StrCat(base, ".2.", i + 1), IntegerValue(o.comp_svn[i])));
  }
  tcb.push_back(Entry(base + ".2.17", IntegerValue(o.pce_svn)));
  tcb.push_back(Entry(base + ".2.18", OctetsValue(o.cpu_svn)));

  std::vector<Asn1TypePtr> top;
  top.push_back(Entry(base + ".1", OctetsValue(o.ppid)));
  top.push_back(Entry(base + ".2", Sequence(std::move(tcb))));
  top.push_back(Entry(base + ".3", OctetsValue(o.pce_id)));
  top.push_back(Entry(base + ".4", OctetsValue(o.fmspc)));
  top.push_back(Entry(base + ".5", EnumeratedValue(o.sgx_type)));
  if (o.platform_ca && o.platform_instance_id.has_value()) {
    top.push_back(Entry(base + ".6", OctetsValue(*o.platform_instance_id)));
  }
  if (o.platform_ca && o.configuration.has_value()) {
    std::vector<Asn1TypePtr> config;
    config.push_back(Entry(base + ".7.1", BooleanValue(o.configuration->dynamic_platform)));
    config.push_back(Entry(base + ".7.2", BooleanValue(o.configuration->cached_keys)));
    config.push_back(Entry(base + ".7.3", BooleanValue(o.configuration->smt_enabled)));
    top.push_back(Entry(base + ".7", Sequence(std::move(config))));
  }
  Asn1TypePtr ext = Sequence(std::move(top));
  if (!ext || ext->type != V_ASN1_SEQUENCE) return common::OpenSslError("encoding SGX extension");
  const ASN1_STRING* der = ext->value.sequence;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(der)),
                     static_cast<size_t>(ASN1_STRING_length(der)));
}

// ---- Certificates and signatures.

void SetName(X509_NAME* name, absl::string_view cn) {
  std::string cn_str(cn);
  for (auto [field, value] : {std::pair<const char*, const char*>{"CN", cn_str.c_str()},
                              {"O", "Intel Corporation"},
                              {"L", "Santa Clara"},
                              {"ST", "CA"},
                              {"C", "US"}}) {
    X509_NAME_add_entry_by_txt(name, field, MBSTRING_ASC,
                               reinterpret_cast<const unsigned char*>(value), -1, -1, 0);
  }
}

enum class CertRole { kRoot, kIntermediate, kLeaf };

absl::Status AddConfExtension(X509V3_CTX* ctx, X509* cert, int nid, const char* value) {
  X509ExtensionPtr ext(X509V3_EXT_conf_nid(nullptr, ctx, nid, value));
  if (!ext || X509_add_ext(cert, ext.get(), -1) != 1) {
    return common::OpenSslError(absl::StrCat("adding extension ", OBJ_nid2sn(nid)));
  }
  return absl::OkStatus();
}

// A certificate shaped like Intel's (SKI, AKI, CRL DP, key usage, basic
// constraints; ECDSA-SHA256). `issuer` null means self-signed.
absl::StatusOr<common::X509Ptr> MakeCert(absl::string_view cn, EVP_PKEY* subject_key, X509* issuer,
                                         EVP_PKEY* issuer_key, long serial, absl::Time not_before,
                                         absl::Time not_after, CertRole role, const char* crl_url,
                                         absl::string_view sgx_extension_der = "") {
  common::X509Ptr cert(X509_new());
  if (!cert || X509_set_version(cert.get(), 2) != 1 ||
      ASN1_INTEGER_set(X509_get_serialNumber(cert.get()), serial) != 1 ||
      ASN1_TIME_set(X509_getm_notBefore(cert.get()), absl::ToTimeT(not_before)) == nullptr ||
      ASN1_TIME_set(X509_getm_notAfter(cert.get()), absl::ToTimeT(not_after)) == nullptr) {
    return common::OpenSslError("making test certificate");
  }
  SetName(X509_get_subject_name(cert.get()), cn);
  X509* signer = issuer != nullptr ? issuer : cert.get();
  X509_set_issuer_name(cert.get(), X509_get_subject_name(signer));
  if (X509_set_pubkey(cert.get(), subject_key) != 1) {
    return common::OpenSslError("setting test certificate key");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, signer, cert.get(), nullptr, nullptr, 0);
  // SKI first: a self-signed AKI refers to it.
  KBS_RETURN_IF_ERROR(AddConfExtension(&ctx, cert.get(), NID_subject_key_identifier, "hash"));
  KBS_RETURN_IF_ERROR(
      AddConfExtension(&ctx, cert.get(), NID_authority_key_identifier, "keyid:always"));
  KBS_RETURN_IF_ERROR(AddConfExtension(&ctx, cert.get(), NID_crl_distribution_points,
                                       absl::StrCat("URI:", crl_url).c_str()));
  const bool ca = role != CertRole::kLeaf;
  KBS_RETURN_IF_ERROR(AddConfExtension(
      &ctx, cert.get(), NID_key_usage,
      ca ? "critical,keyCertSign,cRLSign" : "critical,digitalSignature,nonRepudiation"));
  KBS_RETURN_IF_ERROR(AddConfExtension(&ctx, cert.get(), NID_basic_constraints,
                                       role == CertRole::kRoot ? "critical,CA:TRUE,pathlen:1"
                                       : role == CertRole::kIntermediate
                                           ? "critical,CA:TRUE,pathlen:0"
                                           : "critical,CA:FALSE"));
  if (!sgx_extension_der.empty()) {
    Asn1ObjectPtr obj(OBJ_txt2obj(kSgxExtensionOid, 1));
    Asn1OctetStringPtr data(ASN1_OCTET_STRING_new());
    if (!obj || !data ||
        ASN1_OCTET_STRING_set(data.get(),
                              reinterpret_cast<const unsigned char*>(sgx_extension_der.data()),
                              static_cast<int>(sgx_extension_der.size())) != 1) {
      return common::OpenSslError("encoding SGX extension");
    }
    X509ExtensionPtr ext(X509_EXTENSION_create_by_OBJ(nullptr, obj.get(), 0, data.get()));
    if (!ext || X509_add_ext(cert.get(), ext.get(), -1) != 1) {
      return common::OpenSslError("adding SGX extension");
    }
  }
  if (X509_sign(cert.get(), issuer_key, EVP_sha256()) <= 0) {
    return common::OpenSslError("signing test certificate");
  }
  return cert;
}

std::string Pem(const X509* cert) {
  common::BioPtr bio(BIO_new(BIO_s_mem()));
  PEM_write_bio_X509(bio.get(), cert);
  char* data = nullptr;
  long len = BIO_get_mem_data(bio.get(), &data);
  return std::string(data, static_cast<size_t>(len));
}

// ECDSA P-256/SHA-256 over `data` as Intel writes it: r || s, 32 bytes each,
// big-endian (quotes, QE reports and PCS collateral alike).
absl::StatusOr<std::string> SignRaw(EVP_PKEY* key, absl::string_view data) {
  common::EvpMdCtxPtr ctx(EVP_MD_CTX_new());
  size_t len = 0;
  const auto* in = reinterpret_cast<const unsigned char*>(data.data());
  if (!ctx || EVP_DigestSignInit(ctx.get(), nullptr, EVP_sha256(), nullptr, key) != 1 ||
      EVP_DigestSign(ctx.get(), nullptr, &len, in, data.size()) != 1) {
    return common::OpenSslError("ECDSA signing");
  }
  std::string der(len, '\0');
  if (EVP_DigestSign(ctx.get(), reinterpret_cast<unsigned char*>(der.data()), &len, in,
                     data.size()) != 1) {
    return common::OpenSslError("ECDSA signing");
  }
  const auto* p = reinterpret_cast<const unsigned char*>(der.data());
  common::EcdsaSigPtr sig(d2i_ECDSA_SIG(nullptr, &p, static_cast<long>(len)));
  if (!sig) return common::OpenSslError("decoding ECDSA signature");
  const BIGNUM* r = nullptr;
  const BIGNUM* s = nullptr;
  ECDSA_SIG_get0(sig.get(), &r, &s);
  std::string out(64, '\0');
  auto* o = reinterpret_cast<unsigned char*>(out.data());
  if (BN_bn2binpad(r, o, 32) != 32 || BN_bn2binpad(s, o + 32, 32) != 32) {
    return common::OpenSslError("encoding ECDSA signature");
  }
  return out;
}

// ---- Report bodies.

// SGX enclave report body, 384 bytes (evidence-formats.md §4.2).
std::string EnclaveReportBody(const EnclaveReportFields& f) {
  std::string b;
  b.reserve(384);
  b += Fit(f.cpu_svn, 16);
  PutLe(&b, f.miscselect, 4);
  b += std::string(12, '\0');
  b += Fit(f.isv_ext_prod_id, 16);
  b += Fit(f.attributes, 16);
  b += Fit(f.mr_enclave, 32);
  b += std::string(32, '\0');
  b += Fit(f.mr_signer, 32);
  b += std::string(32, '\0');
  b += Fit(f.config_id, 64);
  PutLe(&b, f.isv_prod_id, 2);
  PutLe(&b, f.isv_svn, 2);
  PutLe(&b, f.config_svn, 2);
  b += std::string(42, '\0');
  b += Fit(f.isv_family_id, 16);
  b += Fit(f.report_data, 64);
  return b;
}

// TD report body, 584 bytes (TD 1.0) or 648 (TD 1.5) (§2.2).
std::string TdReportBody(const TdReportFields& f, bool td15) {
  std::string b;
  b.reserve(648);
  b += Fit(f.tee_tcb_svn, 16);
  b += Fit(f.mr_seam, 48);
  b += Fit(f.mr_signer_seam, 48);
  PutLe(&b, f.seam_attributes, 8);
  PutLe(&b, f.td_attributes, 8);
  PutLe(&b, f.xfam, 8);
  b += Fit(f.mr_td, 48);
  b += Fit(f.mr_config_id, 48);
  b += Fit(f.mr_owner, 48);
  b += Fit(f.mr_owner_config, 48);
  for (const std::string& r : f.rtmr) b += Fit(r, 48);
  b += Fit(f.report_data, 64);
  if (td15) {
    b += Fit(f.tee_tcb_svn2, 16);
    b += Fit(f.mr_servicetd, 48);
  }
  return b;
}

// ---- Collateral JSON.

// Intel's member order in PCS bodies (checked against the real collateral in
// shared/testdata). Enclave identities order their members differently
// from TCB info, so they have their own list.
int MemberRank(absl::string_view key, const Json& object) {
  static constexpr absl::string_view kTcbInfoOrder[] = {"id",
                                                        "version",
                                                        "issueDate",
                                                        "nextUpdate",
                                                        "fmspc",
                                                        "pceId",
                                                        "tcbType",
                                                        "tcbEvaluationDataNumber",
                                                        "mrsigner",
                                                        "attributes",
                                                        "attributesMask",
                                                        "tdxModule",
                                                        "tdxModuleIdentities",
                                                        "tcbLevels",
                                                        "tcb",
                                                        "sgxtcbcomponents",
                                                        "pcesvn",
                                                        "tdxtcbcomponents",
                                                        "isvsvn",
                                                        "svn",
                                                        "category",
                                                        "type",
                                                        "tcbDate",
                                                        "tcbStatus",
                                                        "advisoryIDs"};
  static constexpr absl::string_view kIdentityOrder[] = {
      "id",         "version",        "issueDate",  "nextUpdate",     "tcbEvaluationDataNumber",
      "miscselect", "miscselectMask", "attributes", "attributesMask", "mrsigner",
      "isvprodid",  "tcbLevels"};
  const bool identity = object.contains("isvprodid") || object.contains("miscselect");
  absl::Span<const absl::string_view> order =
      identity ? absl::Span<const absl::string_view>(kIdentityOrder)
               : absl::Span<const absl::string_view>(kTcbInfoOrder);
  auto it = std::find(order.begin(), order.end(), key);
  return it == order.end() ? static_cast<int>(order.size()) : static_cast<int>(it - order.begin());
}

void AppendCollateralText(const Json& v, std::string* out) {
  if (v.is_object()) {
    std::vector<std::string> keys;
    for (auto it = v.begin(); it != v.end(); ++it) keys.push_back(it.key());
    std::stable_sort(keys.begin(), keys.end(), [&v](const std::string& a, const std::string& b) {
      return MemberRank(a, v) < MemberRank(b, v);  // ties keep nlohmann's sorted order
    });
    out->push_back('{');
    for (size_t i = 0; i < keys.size(); ++i) {
      if (i > 0) out->push_back(',');
      out->append(common::DumpJson(Json(keys[i])));
      out->push_back(':');
      AppendCollateralText(v.at(keys[i]), out);
    }
    out->push_back('}');
  } else if (v.is_array()) {
    out->push_back('[');
    for (size_t i = 0; i < v.size(); ++i) {
      if (i > 0) out->push_back(',');
      AppendCollateralText(v[i], out);
    }
    out->push_back(']');
  } else {
    out->append(common::DumpJson(v));
  }
}

std::string UpperHex(absl::string_view raw) {
  return absl::AsciiStrToUpper(common::HexEncode(raw));
}

Json TcbLevel(Json tcb, absl::string_view date, absl::string_view status,
              std::vector<std::string> advisories = {}) {
  Json level = Json::object();
  level["tcb"] = std::move(tcb);
  level["tcbDate"] = std::string(date);
  level["tcbStatus"] = std::string(status);
  if (!advisories.empty()) level["advisoryIDs"] = advisories;
  return level;
}

Json IsvSvnLevel(int isvsvn, absl::string_view date, absl::string_view status,
                 std::vector<std::string> advisories = {}) {
  return TcbLevel(Json{{"isvsvn", isvsvn}}, date, status, std::move(advisories));
}

// sgxtcbcomponents / tdxtcbcomponents: 16 entries, the first ones labelled
// as on a real Sapphire Rapids TDX platform (gotdx tcbInfo 2026-02).
Json Components(std::array<int, 16> svn, bool tdx_components, bool labels) {
  static const std::pair<int, std::pair<const char*, const char*>> kSgxLabels[] = {
      {0, {"BIOS", "Early Microcode Update"}},
      {1, {"OS/VMM", "SGX Late Microcode Update"}},
      {2, {"OS/VMM", "TXT SINIT"}},
      {3, {"BIOS", nullptr}},
      {4, {"BIOS", nullptr}},
      {5, {"BIOS", nullptr}},
      {7, {"OS/VMM", "SEAMLDR ACM"}}};
  static const std::pair<int, std::pair<const char*, const char*>> kTdxLabels[] = {
      {0, {"OS/VMM", "TDX Module"}},
      {1, {"OS/VMM", "TDX Module"}},
      {2, {"OS/VMM", "TDX Late Microcode Update"}}};
  Json out = Json::array();
  for (size_t i = 0; i < svn.size(); ++i) {
    Json c = Json::object();
    c["svn"] = svn[i];
    if (labels) {
      for (const auto& [index, label] :
           tdx_components ? absl::MakeConstSpan(kTdxLabels) : absl::MakeConstSpan(kSgxLabels)) {
        if (static_cast<size_t>(index) != i) continue;
        c["category"] = label.first;
        if (label.second != nullptr) c["type"] = label.second;
      }
    }
    out.push_back(std::move(c));
  }
  return out;
}

Json PlatformTcb(std::array<int, 16> sgx, int pcesvn, std::optional<std::array<int, 16>> tdx) {
  Json tcb = Json::object();
  tcb["sgxtcbcomponents"] = Components(sgx, /*tdx_components=*/false, tdx.has_value());
  tcb["pcesvn"] = pcesvn;
  if (tdx.has_value()) tcb["tdxtcbcomponents"] = Components(*tdx, /*tdx_components=*/true, true);
  return tcb;
}

Json TcbInfoHeader(absl::string_view id, absl::Time issue_date, absl::Time next_update,
                   absl::string_view fmspc_hex) {
  Json info = Json::object();
  info["id"] = std::string(id);
  info["version"] = 3;
  info["issueDate"] = DcapTestPki::IntelTime(issue_date);
  info["nextUpdate"] = DcapTestPki::IntelTime(next_update);
  info["fmspc"] = std::string(fmspc_hex);
  info["pceId"] = "0000";
  info["tcbType"] = 0;
  info["tcbEvaluationDataNumber"] = 17;
  return info;
}

constexpr std::array<int, 16> kSgxSvnCurrent = {3, 3, 2, 2, 4, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};
constexpr std::array<int, 16> kSgxSvnPrevious = {2, 2, 2, 2, 3, 1, 0, 5, 0, 0, 0, 0, 0, 0, 0, 0};

}  // namespace

// ---- Options defaults.

PckOptions PckOptions::ProcessorCa() {
  PckOptions o;
  o.platform_ca = false;
  o.sgx_type = 0;
  o.platform_instance_id.reset();
  o.configuration.reset();
  return o;
}

std::string QeFields::DefaultAuthData() {
  std::string out;
  for (int i = 0; i < 32; ++i) out.push_back(static_cast<char>(i));
  return out;
}

QeFields QeFields::ForSgx() {
  QeFields qe;
  qe.mr_enclave = std::string(32, '\x96');
  qe.mr_signer = std::string(
      "\x8c\x4f\x57\x75\xd7\x96\x50\x3e\x96\x13\x7f\x77\xc6\x8a\x82\x9a"
      "\x00\x56\xac\x8d\xed\x70\x14\x0b\x08\x1b\x09\x44\x90\xc5\x7b\xff",
      32);
  qe.isv_prod_id = 1;
  return qe;
}

// ---- QuoteSigner.

QuoteSigner::QuoteSigner(common::EvpPkeyPtr key, std::string public_key,
                         std::string qe_certification_data, uint16_t pce_svn)
    : key_(std::move(key)),
      public_key_(std::move(public_key)),
      qe_certification_data_(std::move(qe_certification_data)),
      pce_svn_(pce_svn) {}

absl::StatusOr<std::string> QuoteSigner::Assemble(QuoteKind kind, absl::string_view body,
                                                  const QuoteOptions& o) const {
  const bool sgx = kind == QuoteKind::kSgxV3;
  const uint16_t version = o.version.value_or(kind == QuoteKind::kTdxV4 ? 4 : sgx ? 3 : 5);
  std::string q;
  q.reserve(1024 + qe_certification_data_.size() + o.trailing_padding);
  PutLe(&q, version, 2);
  PutLe(&q, o.att_key_type, 2);
  PutLe(&q, o.tee_type.value_or(sgx ? 0 : 0x81), 4);
  if (sgx) {
    // sgx_quote_3.h: qe_svn then pce_svn; the QE's ISVSVN is at 258 of its report.
    const uint16_t qe_svn =
        static_cast<uint8_t>(qe_certification_data_[258]) |
        static_cast<uint16_t>(static_cast<uint8_t>(qe_certification_data_[259]) << 8);
    PutLe(&q, o.qe_svn.value_or(qe_svn), 2);
    PutLe(&q, o.pce_svn.value_or(pce_svn_), 2);
  } else {
    PutLe(&q, 0, 4);
  }
  q += Fit(o.qe_vendor_id, 16);
  q += Fit(o.user_data, 20);
  if (kind == QuoteKind::kTdxV5Td10 || kind == QuoteKind::kTdxV5Td15) {
    PutLe(&q, kind == QuoteKind::kTdxV5Td10 ? 2 : 3, 2);
    PutLe(&q, body.size(), 4);
  }
  q.append(body.data(), body.size());
  // The attestation key signs header || body (v5: with the type and size).
  KBS_ASSIGN_OR_RETURN(std::string signature, SignRaw(key_.get(), q));
  std::string data = signature + public_key_;
  if (!sgx) {
    PutLe(&data, 6, 2);  // QE report certification data
    PutLe(&data, qe_certification_data_.size(), 4);
  }
  data += qe_certification_data_;
  PutLe(&q, data.size(), 4);
  q += data;
  q.append(o.trailing_padding, '\0');
  return q;
}

absl::StatusOr<std::string> QuoteSigner::Sign(QuoteKind kind, const TdReportFields& td,
                                              const QuoteOptions& options) const {
  if (kind == QuoteKind::kSgxV3) {
    return absl::InvalidArgumentError("an SGX quote signs an enclave report: use SignEnclave");
  }
  return Assemble(kind, TdReportBody(td, kind == QuoteKind::kTdxV5Td15), options);
}

absl::StatusOr<std::string> QuoteSigner::SignEnclave(const EnclaveReportFields& enclave,
                                                     const QuoteOptions& options) const {
  return Assemble(QuoteKind::kSgxV3, EnclaveReportBody(enclave), options);
}

absl::StatusOr<std::string> QuoteSigner::Export() const {
  KBS_ASSIGN_OR_RETURN(std::string pem, common::PrivateKeyToPem(key_.get()));
  Json out = Json::object();
  out["attestation_key"] = pem;
  out["qe_certification_data"] = common::HexEncode(qe_certification_data_);
  out["pce_svn"] = pce_svn_;
  return common::DumpJson(out);
}

absl::StatusOr<QuoteSigner> QuoteSigner::Import(absl::string_view exported) {
  KBS_ASSIGN_OR_RETURN(Json in, common::ParseJson(exported));
  if (!in.is_object()) return absl::InvalidArgumentError("quote signer: not a JSON object");
  KBS_ASSIGN_OR_RETURN(std::string pem, common::GetStringMember(in, "attestation_key", "signer"));
  KBS_ASSIGN_OR_RETURN(std::string hex,
                       common::GetStringMember(in, "qe_certification_data", "signer"));
  KBS_ASSIGN_OR_RETURN(std::string tail, common::HexDecode(hex));
  const Json* pce_svn = common::FindMember(in, "pce_svn");
  if (pce_svn == nullptr || !pce_svn->is_number_unsigned() || pce_svn->get<uint64_t>() > 0xffff) {
    return absl::InvalidArgumentError("quote signer: pce_svn must be a u16");
  }
  if (tail.size() < 384 + 64 + 2) {
    return absl::InvalidArgumentError("quote signer: QE certification data too short");
  }
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, common::PrivateKeyFromPem(pem));
  KBS_ASSIGN_OR_RETURN(common::EcCurve curve, common::GetEcCurve(key.get()));
  if (curve != common::EcCurve::kP256) {
    return absl::InvalidArgumentError("quote signer: attestation key is not P-256");
  }
  KBS_ASSIGN_OR_RETURN(common::EcPoint point, common::GetEcPublicPoint(key.get()));
  return QuoteSigner(std::move(key), point.x + point.y, std::move(tail),
                     static_cast<uint16_t>(pce_svn->get<uint64_t>()));
}

// ---- DcapTestPki.

absl::StatusOr<std::unique_ptr<DcapTestPki>> DcapTestPki::Create(absl::Time not_before,
                                                                 absl::Time not_after) {
  auto pki = std::unique_ptr<DcapTestPki>(new DcapTestPki());
  for (common::EvpPkeyPtr* key :
       {&pki->root_key_, &pki->platform_ca_key_, &pki->processor_ca_key_, &pki->tcb_key_}) {
    KBS_ASSIGN_OR_RETURN(*key, common::GenerateEcKey(common::EcCurve::kP256));
  }
  KBS_ASSIGN_OR_RETURN(
      pki->root_, MakeCert(kDcapTestRootCn, pki->root_key_.get(), nullptr, pki->root_key_.get(),
                           kDcapRootSerial, not_before, not_after, CertRole::kRoot, kRootCrlUrl));
  KBS_ASSIGN_OR_RETURN(pki->platform_ca_,
                       MakeCert(kDcapPckPlatformCaCn, pki->platform_ca_key_.get(), pki->root_.get(),
                                pki->root_key_.get(), kDcapPlatformCaSerial, not_before, not_after,
                                CertRole::kIntermediate, kRootCrlUrl));
  KBS_ASSIGN_OR_RETURN(pki->processor_ca_,
                       MakeCert(kDcapPckProcessorCaCn, pki->processor_ca_key_.get(),
                                pki->root_.get(), pki->root_key_.get(), kDcapProcessorCaSerial,
                                not_before, not_after, CertRole::kIntermediate, kRootCrlUrl));
  KBS_ASSIGN_OR_RETURN(
      pki->tcb_,
      MakeCert(kDcapTestTcbSigningCn, pki->tcb_key_.get(), pki->root_.get(), pki->root_key_.get(),
               kDcapTcbSigningSerial, not_before, not_after, CertRole::kLeaf, kRootCrlUrl));
  return pki;
}

std::string DcapTestPki::RootFingerprintHex() const {
  return common::HexEncode(*common::CertificateSha256(root_.get()));
}
std::string DcapTestPki::RootPem() const { return Pem(root_.get()); }
std::string DcapTestPki::RootDer() const { return *common::CertificateDer(root_.get()); }
std::string DcapTestPki::TcbSigningChainPem() const { return Pem(tcb_.get()) + Pem(root_.get()); }
std::string DcapTestPki::PckCrlIssuerChainPem(bool platform) const {
  return Pem(PckCa(platform)) + Pem(root_.get());
}

X509* DcapTestPki::PckCa(bool platform) const {
  return platform ? platform_ca_.get() : processor_ca_.get();
}
EVP_PKEY* DcapTestPki::PckCaKey(bool platform) const {
  return platform ? platform_ca_key_.get() : processor_ca_key_.get();
}

absl::StatusOr<std::string> DcapTestPki::IssuePck(const PckOptions& o) {
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, common::GenerateEcKey(common::EcCurve::kP256));
  KBS_ASSIGN_OR_RETURN(std::string extension, SgxExtensionDer(o));
  const long serial = o.serial != 0 ? o.serial : next_serial_++;
  X509* ca = PckCa(o.platform_ca);
  KBS_ASSIGN_OR_RETURN(common::X509Ptr pck,
                       MakeCert(kDcapPckCn, key.get(), ca, PckCaKey(o.platform_ca), serial,
                                o.not_before, o.not_after, CertRole::kLeaf,
                                o.platform_ca ? kPlatformCrlUrl : kProcessorCrlUrl, extension));
  pck_chain_pem_ = Pem(pck.get()) + Pem(ca) + Pem(root_.get());
  pck_key_ = std::move(key);
  pck_pce_svn_ = o.pce_svn;
  last_pck_serial_ = serial;
  return pck_chain_pem_;
}

absl::StatusOr<std::string> DcapTestPki::PckKeyPem() const {
  if (!pck_key_) return absl::FailedPreconditionError("issue a PCK first");
  return common::PrivateKeyToPem(pck_key_.get());
}

absl::StatusOr<QuoteSigner> DcapTestPki::MakeQuoteSigner(
    const QeFields& qe, absl::string_view attestation_key_pem) const {
  if (!pck_key_) return absl::FailedPreconditionError("issue a PCK first");
  common::EvpPkeyPtr key;
  if (attestation_key_pem.empty()) {
    KBS_ASSIGN_OR_RETURN(key, common::GenerateEcKey(common::EcCurve::kP256));
  } else {
    KBS_ASSIGN_OR_RETURN(key, common::PrivateKeyFromPem(attestation_key_pem));
    KBS_ASSIGN_OR_RETURN(common::EcCurve curve, common::GetEcCurve(key.get()));
    if (curve != common::EcCurve::kP256) {
      return absl::InvalidArgumentError("attestation key must be P-256");
    }
  }
  KBS_ASSIGN_OR_RETURN(common::EcPoint point, common::GetEcPublicPoint(key.get()));
  const std::string public_key = point.x + point.y;
  if (qe.auth_data.size() > 0xffff) return absl::InvalidArgumentError("QE auth data too long");

  EnclaveReportFields report;
  report.cpu_svn = qe.cpu_svn;
  report.miscselect = qe.miscselect;
  report.attributes = qe.attributes;
  report.mr_enclave = qe.mr_enclave;
  report.mr_signer = qe.mr_signer;
  report.isv_prod_id = qe.isv_prod_id;
  report.isv_svn = qe.isv_svn;
  report.config_svn = qe.config_svn;
  // QVL 4.1.2.4.13: REPORTDATA = SHA-256(attestation key || auth data) || 0^32.
  report.report_data =
      qe.report_data.value_or(common::Sha256(public_key + qe.auth_data) + std::string(32, '\0'));
  const std::string qe_report = EnclaveReportBody(report);
  KBS_ASSIGN_OR_RETURN(std::string qe_signature, SignRaw(pck_key_.get(), qe_report));

  std::string chain = qe.pck_chain_pem.value_or(pck_chain_pem_);
  if (qe.nul_terminated_chain) chain.push_back('\0');
  std::string tail = qe_report + qe_signature;
  PutLe(&tail, qe.auth_data.size(), 2);
  tail += qe.auth_data;
  PutLe(&tail, 5, 2);  // PCK_CERT_CHAIN
  PutLe(&tail, chain.size(), 4);
  tail += chain;
  return QuoteSigner(std::move(key), public_key, std::move(tail), pck_pce_svn_);
}

absl::StatusOr<std::string> DcapTestPki::MakeQuote(QuoteKind kind, const TdReportFields& td,
                                                   const EnclaveReportFields& enclave,
                                                   const QeFields& qe,
                                                   const QuoteOptions& options) const {
  KBS_ASSIGN_OR_RETURN(QuoteSigner signer, MakeQuoteSigner(qe));
  if (kind == QuoteKind::kSgxV3) return signer.SignEnclave(enclave, options);
  return signer.Sign(kind, td, options);
}

std::string DcapTestPki::CollateralText(const Json& value) {
  std::string out;
  AppendCollateralText(value, &out);
  return out;
}

absl::StatusOr<std::string> DcapTestPki::SignCollateralText(absl::string_view text) const {
  KBS_ASSIGN_OR_RETURN(std::string signature, SignRaw(tcb_key_.get(), text));
  return common::HexEncode(signature);
}

absl::StatusOr<std::string> DcapTestPki::SignTcbInfoText(absl::string_view text) const {
  KBS_ASSIGN_OR_RETURN(std::string signature, SignCollateralText(text));
  return absl::StrCat("{\"tcbInfo\":", text, ",\"signature\":\"", signature, "\"}");
}

absl::StatusOr<std::string> DcapTestPki::SignQeIdentityText(absl::string_view text) const {
  KBS_ASSIGN_OR_RETURN(std::string signature, SignCollateralText(text));
  return absl::StrCat("{\"enclaveIdentity\":", text, ",\"signature\":\"", signature, "\"}");
}

absl::StatusOr<std::string> DcapTestPki::SignTcbInfo(const Json& tcb_info) const {
  return SignTcbInfoText(CollateralText(tcb_info));
}

absl::StatusOr<std::string> DcapTestPki::SignQeIdentity(const Json& identity) const {
  return SignQeIdentityText(CollateralText(identity));
}

absl::StatusOr<std::string> DcapTestPki::MakeCrl(X509* issuer, EVP_PKEY* key,
                                                 const std::vector<long>& revoked,
                                                 absl::Time this_update,
                                                 absl::Time next_update) const {
  common::X509CrlPtr crl(X509_CRL_new());
  Asn1TimePtr last(ASN1_TIME_set(nullptr, absl::ToTimeT(this_update)));
  Asn1TimePtr next(ASN1_TIME_set(nullptr, absl::ToTimeT(next_update)));
  if (!crl || !last || !next || X509_CRL_set_version(crl.get(), 1) != 1 ||
      X509_CRL_set_issuer_name(crl.get(), X509_get_subject_name(issuer)) != 1 ||
      X509_CRL_set1_lastUpdate(crl.get(), last.get()) != 1 ||
      X509_CRL_set1_nextUpdate(crl.get(), next.get()) != 1) {
    return common::OpenSslError("making test CRL");
  }
  for (long serial : revoked) {
    X509RevokedPtr entry(X509_REVOKED_new());
    Asn1IntegerPtr sn(ASN1_INTEGER_new());
    if (!entry || !sn || ASN1_INTEGER_set(sn.get(), serial) != 1 ||
        X509_REVOKED_set_serialNumber(entry.get(), sn.get()) != 1 ||
        X509_REVOKED_set_revocationDate(entry.get(), last.get()) != 1 ||
        X509_CRL_add0_revoked(crl.get(), entry.get()) != 1) {
      return common::OpenSslError("adding CRL entry");
    }
    entry.release();  // owned by the CRL
  }
  // As Intel's CRLs: CRL number and the issuer's key identifier.
  Asn1IntegerPtr number(ASN1_INTEGER_new());
  if (!number || ASN1_INTEGER_set(number.get(), 1) != 1 ||
      X509_CRL_add1_ext_i2d(crl.get(), NID_crl_number, number.get(), 0, 0) != 1) {
    return common::OpenSslError("adding CRL number");
  }
  X509V3_CTX ctx;
  X509V3_set_ctx(&ctx, issuer, nullptr, nullptr, crl.get(), 0);
  X509ExtensionPtr aki(
      X509V3_EXT_conf_nid(nullptr, &ctx, NID_authority_key_identifier, "keyid:always"));
  if (!aki || X509_CRL_add_ext(crl.get(), aki.get(), -1) != 1) {
    return common::OpenSslError("adding CRL authority key identifier");
  }
  if (X509_CRL_sort(crl.get()) != 1 || X509_CRL_sign(crl.get(), key, EVP_sha256()) <= 0) {
    return common::OpenSslError("signing test CRL");
  }
  unsigned char* der = nullptr;
  int len = i2d_X509_CRL(crl.get(), &der);
  if (len <= 0) return common::OpenSslError("encoding test CRL");
  std::string out(reinterpret_cast<char*>(der), static_cast<size_t>(len));
  OPENSSL_free(der);
  return out;
}

absl::StatusOr<std::string> DcapTestPki::MakePckCrl(bool platform, const std::vector<long>& revoked,
                                                    absl::Time this_update,
                                                    absl::Time next_update) const {
  return MakeCrl(PckCa(platform), PckCaKey(platform), revoked, this_update, next_update);
}

absl::StatusOr<std::string> DcapTestPki::MakeRootCrl(const std::vector<long>& revoked,
                                                     absl::Time this_update,
                                                     absl::Time next_update) const {
  return MakeCrl(root_.get(), root_key_.get(), revoked, this_update, next_update);
}

absl::StatusOr<Json> DcapTestPki::CollateralBundle(const Json& tcb_info, const Json& qe_identity,
                                                   bool platform, absl::string_view pck_crl_der,
                                                   absl::string_view root_crl_der) const {
  const std::string tcb_text = CollateralText(tcb_info);
  const std::string qe_text = CollateralText(qe_identity);
  KBS_ASSIGN_OR_RETURN(std::string tcb_signature, SignCollateralText(tcb_text));
  KBS_ASSIGN_OR_RETURN(std::string qe_signature, SignCollateralText(qe_text));
  Json out = Json::object();
  out["pck_crl_issuer_chain"] = PckCrlIssuerChainPem(platform);
  out["root_ca_crl"] = common::HexEncode(root_crl_der);
  out["pck_crl"] = common::HexEncode(pck_crl_der);
  out["tcb_info_issuer_chain"] = TcbSigningChainPem();
  out["tcb_info"] = tcb_text;
  out["tcb_info_signature"] = tcb_signature;
  out["qe_identity_issuer_chain"] = TcbSigningChainPem();
  out["qe_identity"] = qe_text;
  out["qe_identity_signature"] = qe_signature;
  return out;
}

std::string DcapTestPki::IntelTime(absl::Time t) {
  return absl::FormatTime("%Y-%m-%dT%H:%M:%SZ", t, absl::UTCTimeZone());
}

Json DcapTestPki::DefaultTdxTcbInfo(absl::Time issue_date, absl::Time next_update,
                                    absl::string_view fmspc_hex) {
  Json info = TcbInfoHeader("TDX", issue_date, next_update, fmspc_hex);
  const std::string zeros96(96, '0');
  info["tdxModule"] = Json{{"mrsigner", zeros96},
                           {"attributes", "0000000000000000"},
                           {"attributesMask", "FFFFFFFFFFFFFFFF"}};
  Json identities = Json::array();
  for (const char* id : {"TDX_03", "TDX_01"}) {
    Json identity = Json::object();
    identity["id"] = id;
    identity["mrsigner"] = zeros96;
    identity["attributes"] = "0000000000000000";
    identity["attributesMask"] = "FFFFFFFFFFFFFFFF";
    identity["tcbLevels"] = Json::array();
    if (std::string(id) == "TDX_03") {
      identity["tcbLevels"].push_back(IsvSvnLevel(3, "2024-11-13T00:00:00Z", "UpToDate"));
    } else {
      identity["tcbLevels"].push_back(IsvSvnLevel(6, "2024-11-13T00:00:00Z", "UpToDate"));
      identity["tcbLevels"].push_back(IsvSvnLevel(4, "2024-03-13T00:00:00Z", "OutOfDate",
                                                  {"INTEL-SA-01036", "INTEL-SA-01099"}));
    }
    identities.push_back(std::move(identity));
  }
  info["tdxModuleIdentities"] = std::move(identities);
  Json levels = Json::array();
  levels.push_back(
      TcbLevel(PlatformTcb(kSgxSvnCurrent, 11,
                           std::array<int, 16>{5, 0, 3, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
               "2024-11-13T00:00:00Z", "UpToDate"));
  levels.push_back(
      TcbLevel(PlatformTcb(kSgxSvnPrevious, 11,
                           std::array<int, 16>{5, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
               "2024-03-13T00:00:00Z", "OutOfDate", {"INTEL-SA-01036", "INTEL-SA-01099"}));
  levels.push_back(TcbLevel(
      PlatformTcb(kSgxSvnPrevious, 5,
                  std::array<int, 16>{3, 0, 2, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0}),
      "2018-01-04T00:00:00Z", "OutOfDate", {"INTEL-SA-00106", "INTEL-SA-01036", "INTEL-SA-01099"}));
  info["tcbLevels"] = std::move(levels);
  return info;
}

Json DcapTestPki::DefaultSgxTcbInfo(absl::Time issue_date, absl::Time next_update,
                                    absl::string_view fmspc_hex) {
  Json info = TcbInfoHeader("SGX", issue_date, next_update, fmspc_hex);
  Json levels = Json::array();
  levels.push_back(
      TcbLevel(PlatformTcb(kSgxSvnCurrent, 11, std::nullopt), "2024-11-13T00:00:00Z", "UpToDate"));
  levels.push_back(TcbLevel(PlatformTcb(kSgxSvnPrevious, 11, std::nullopt), "2024-03-13T00:00:00Z",
                            "SWHardeningNeeded", {"INTEL-SA-00615"}));
  levels.push_back(TcbLevel(PlatformTcb(kSgxSvnPrevious, 5, std::nullopt), "2023-02-15T00:00:00Z",
                            "OutOfDate", {"INTEL-SA-00615", "INTEL-SA-00828"}));
  info["tcbLevels"] = std::move(levels);
  return info;
}

Json DcapTestPki::DefaultQeIdentity(bool tdx, absl::Time issue_date, absl::Time next_update) {
  const QeFields qe = tdx ? QeFields() : QeFields::ForSgx();
  Json id = Json::object();
  id["id"] = tdx ? "TD_QE" : "QE";
  id["version"] = 2;
  id["issueDate"] = IntelTime(issue_date);
  id["nextUpdate"] = IntelTime(next_update);
  id["tcbEvaluationDataNumber"] = 17;
  id["miscselect"] = "00000000";
  id["miscselectMask"] = "FFFFFFFF";
  id["attributes"] = "11000000000000000000000000000000";
  id["attributesMask"] = "FBFFFFFFFFFFFFFF0000000000000000";
  id["mrsigner"] = UpperHex(qe.mr_signer);
  id["isvprodid"] = qe.isv_prod_id;
  Json levels = Json::array();
  if (tdx) {
    levels.push_back(IsvSvnLevel(4, "2024-03-13T00:00:00Z", "UpToDate"));
    levels.push_back(IsvSvnLevel(2, "2023-02-15T00:00:00Z", "OutOfDate", {"INTEL-SA-00837"}));
  } else {
    levels.push_back(IsvSvnLevel(8, "2024-03-13T00:00:00Z", "UpToDate"));
    levels.push_back(IsvSvnLevel(6, "2021-11-10T00:00:00Z", "OutOfDate", {"INTEL-SA-00615"}));
  }
  id["tcbLevels"] = std::move(levels);
  return id;
}

Json DcapTestPki::TdxEvidenceJson(absl::string_view quote,
                                  std::optional<absl::string_view> cc_eventlog) {
  verifier::tdx::TdxEvidence evidence{std::string(quote), std::nullopt};
  if (cc_eventlog.has_value()) evidence.cc_eventlog = std::string(*cc_eventlog);
  return verifier::tdx::TdxEvidenceToJson(evidence);
}

Json DcapTestPki::SgxEvidenceJson(absl::string_view quote) {
  Json out = Json::object();
  out["quote"] = common::Base64Encode(quote);
  return out;
}

}  // namespace kbs::testing
