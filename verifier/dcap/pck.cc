#include "verifier/dcap/pck.h"

#include <openssl/asn1.h>
#include <openssl/err.h>
#include <openssl/objects.h>
#include <openssl/x509_vfy.h>
#include <openssl/x509v3.h>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/encoding.h"
#include "common/status_macros.h"

namespace kbs::verifier::dcap {
namespace {

constexpr absl::string_view kSgxExtensionOid = "1.2.840.113741.1.13.1";

struct SeqDeleter {
  void operator()(ASN1_SEQUENCE_ANY* s) const { sk_ASN1_TYPE_pop_free(s, ASN1_TYPE_free); }
};
using SeqPtr = std::unique_ptr<ASN1_SEQUENCE_ANY, SeqDeleter>;
struct StackDeleter {
  void operator()(STACK_OF(X509) * s) const { sk_X509_free(s); }  // not the certificates
};
using StackPtr = std::unique_ptr<STACK_OF(X509), StackDeleter>;
using StorePtr = std::unique_ptr<X509_STORE, common::OpenSslDeleter<X509_STORE, X509_STORE_free>>;
using StoreCtxPtr =
    std::unique_ptr<X509_STORE_CTX, common::OpenSslDeleter<X509_STORE_CTX, X509_STORE_CTX_free>>;

absl::Status Bad(absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("PCK SGX extension: ", what));
}

// Decodes DER that must be exactly one SEQUENCE.
absl::StatusOr<SeqPtr> DecodeSequence(absl::string_view der, absl::string_view what) {
  const unsigned char* p = reinterpret_cast<const unsigned char*>(der.data());
  SeqPtr seq(d2i_ASN1_SEQUENCE_ANY(nullptr, &p, static_cast<long>(der.size())));
  ERR_clear_error();
  if (!seq || p != reinterpret_cast<const unsigned char*>(der.data()) + der.size()) {
    return Bad(absl::StrCat(what, " is not a DER SEQUENCE"));
  }
  return seq;
}

std::string Oid(const ASN1_OBJECT* obj) {
  char buf[128];
  int n = OBJ_obj2txt(buf, sizeof(buf), obj, 1);
  if (n <= 0 || n >= static_cast<int>(sizeof(buf))) return "";
  return std::string(buf, static_cast<size_t>(n));
}

// One {OID, value} member of the extension.
struct Member {
  std::string oid;
  const ASN1_TYPE* value;
};

// The members of a SEQUENCE OF SEQUENCE {OID, value}. `holder` keeps the
// decoded inner sequences alive.
absl::StatusOr<std::vector<Member>> Members(const ASN1_SEQUENCE_ANY* seq,
                                            std::vector<SeqPtr>& holder, absl::string_view what) {
  std::vector<Member> out;
  for (int i = 0; i < sk_ASN1_TYPE_num(seq); ++i) {
    const ASN1_TYPE* item = sk_ASN1_TYPE_value(seq, i);
    if (item->type != V_ASN1_SEQUENCE) {
      return Bad(absl::StrCat(what, " member ", i, " is not a SEQUENCE"));
    }
    const ASN1_STRING* s = item->value.sequence;
    KBS_ASSIGN_OR_RETURN(
        SeqPtr inner,
        DecodeSequence(absl::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                         static_cast<size_t>(ASN1_STRING_length(s))),
                       absl::StrCat(what, " member ", i)));
    if (sk_ASN1_TYPE_num(inner.get()) != 2 ||
        sk_ASN1_TYPE_value(inner.get(), 0)->type != V_ASN1_OBJECT) {
      return Bad(absl::StrCat(what, " member ", i, " is not {OID, value}"));
    }
    out.push_back(Member{Oid(sk_ASN1_TYPE_value(inner.get(), 0)->value.object),
                         sk_ASN1_TYPE_value(inner.get(), 1)});
    holder.push_back(std::move(inner));
  }
  return out;
}

absl::StatusOr<std::string> Octets(const Member& m, size_t size, absl::string_view name) {
  if (m.value->type != V_ASN1_OCTET_STRING ||
      static_cast<size_t>(ASN1_STRING_length(m.value->value.octet_string)) != size) {
    return Bad(absl::StrCat(name, " is not an OCTET STRING of ", size, " bytes"));
  }
  const ASN1_STRING* s = m.value->value.octet_string;
  return std::string(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)), size);
}

absl::StatusOr<int64_t> Integer(const Member& m, int64_t max, absl::string_view name) {
  int64_t v = -1;
  bool ok = false;
  if (m.value->type == V_ASN1_INTEGER) {
    ok = ASN1_INTEGER_get_int64(&v, m.value->value.integer) == 1;
  } else if (m.value->type == V_ASN1_ENUMERATED) {
    ok = ASN1_ENUMERATED_get_int64(&v, m.value->value.enumerated) == 1;
  }
  ERR_clear_error();
  if (!ok || v < 0 || v > max)
    return Bad(absl::StrCat(name, " is not an integer in [0, ", max, "]"));
  return v;
}

absl::StatusOr<bool> Boolean(const Member& m, absl::string_view name) {
  if (m.value->type != V_ASN1_BOOLEAN) return Bad(absl::StrCat(name, " is not a BOOLEAN"));
  return m.value->value.boolean != 0;
}

absl::StatusOr<SeqPtr> InnerSequence(const Member& m, absl::string_view name) {
  if (m.value->type != V_ASN1_SEQUENCE) return Bad(absl::StrCat(name, " is not a SEQUENCE"));
  const ASN1_STRING* s = m.value->value.sequence;
  return DecodeSequence(absl::string_view(reinterpret_cast<const char*>(ASN1_STRING_get0_data(s)),
                                          static_cast<size_t>(ASN1_STRING_length(s))),
                        name);
}

std::string Subject(const X509* cert) { return common::CommonName(cert); }

}  // namespace

RootAnchors RootAnchors::IntelDefault() {
  RootAnchors a;
  (void)a.Add(kIntelSgxRootCaSha256);
  return a;
}

absl::Status RootAnchors::Add(absl::string_view sha256_hex) {
  auto raw = common::HexDecode(sha256_hex);
  if (!raw.ok() || raw->size() != 32) {
    return absl::InvalidArgumentError(absl::StrCat(
        "root fingerprint must be 64 hex digits (SHA-256 of the DER certificate), got '",
        sha256_hex.substr(0, 80), "'"));
  }
  pinned_.insert(*std::move(raw));
  return absl::OkStatus();
}

bool RootAnchors::IsTrusted(const X509* root) const {
  auto fp = common::CertificateSha256(root);
  if (!fp.ok()) return false;
  for (const std::string& pin : pinned_) {
    if (common::ConstantTimeEquals(pin, *fp)) return true;
  }
  return false;
}

absl::string_view PckCaName(PckCa ca) { return ca == PckCa::kPlatform ? "platform" : "processor"; }

absl::StatusOr<PckExtensions> ParsePckExtensions(absl::string_view der) {
  KBS_ASSIGN_OR_RETURN(SeqPtr top, DecodeSequence(der, "the extension value"));
  std::vector<SeqPtr> holder;
  KBS_ASSIGN_OR_RETURN(std::vector<Member> members, Members(top.get(), holder, "extension"));
  PckExtensions x;
  bool have_ppid = false, have_tcb = false, have_pceid = false, have_fmspc = false,
       have_type = false;
  const std::string base = std::string(kSgxExtensionOid);
  for (const Member& m : members) {
    if (m.oid == base + ".1") {
      KBS_ASSIGN_OR_RETURN(x.ppid, Octets(m, 16, "PPID"));
      have_ppid = true;
    } else if (m.oid == base + ".2") {
      KBS_ASSIGN_OR_RETURN(SeqPtr tcb, InnerSequence(m, "TCB"));
      KBS_ASSIGN_OR_RETURN(std::vector<Member> comps, Members(tcb.get(), holder, "TCB"));
      uint32_t seen = 0;
      for (const Member& c : comps) {
        const std::string prefix = base + ".2.";
        if (!absl::StartsWith(c.oid, prefix)) continue;
        int n = 0;
        if (!absl::SimpleAtoi(absl::string_view(c.oid).substr(prefix.size()), &n)) continue;
        if (n >= 1 && n <= 16) {
          KBS_ASSIGN_OR_RETURN(int64_t v, Integer(c, 255, absl::StrCat("TCB component ", n)));
          x.comp_svn[n - 1] = static_cast<uint8_t>(v);
          seen |= 1u << (n - 1);
        } else if (n == 17) {
          KBS_ASSIGN_OR_RETURN(int64_t v, Integer(c, 65535, "PCESVN"));
          x.pce_svn = static_cast<uint16_t>(v);
          seen |= 1u << 16;
        } else if (n == 18) {
          KBS_ASSIGN_OR_RETURN(x.cpu_svn, Octets(c, 16, "CPUSVN"));
          seen |= 1u << 17;
        }
      }
      if (seen != (1u << 18) - 1) return Bad("TCB lacks some of its 18 members");
      have_tcb = true;
    } else if (m.oid == base + ".3") {
      KBS_ASSIGN_OR_RETURN(x.pce_id, Octets(m, 2, "PCE-ID"));
      have_pceid = true;
    } else if (m.oid == base + ".4") {
      KBS_ASSIGN_OR_RETURN(x.fmspc, Octets(m, 6, "FMSPC"));
      have_fmspc = true;
    } else if (m.oid == base + ".5") {
      KBS_ASSIGN_OR_RETURN(int64_t v, Integer(m, 2, "SGX Type"));
      x.sgx_type = static_cast<int>(v);
      have_type = true;
    } else if (m.oid == base + ".6") {
      KBS_ASSIGN_OR_RETURN(x.platform_instance_id, Octets(m, 16, "PlatformInstanceID"));
    } else if (m.oid == base + ".7") {
      KBS_ASSIGN_OR_RETURN(SeqPtr config, InnerSequence(m, "Configuration"));
      KBS_ASSIGN_OR_RETURN(std::vector<Member> flags,
                           Members(config.get(), holder, "Configuration"));
      for (const Member& f : flags) {
        if (f.oid == base + ".7.1") {
          KBS_ASSIGN_OR_RETURN(x.dynamic_platform, Boolean(f, "dynamicPlatform"));
        } else if (f.oid == base + ".7.2") {
          KBS_ASSIGN_OR_RETURN(x.cached_keys, Boolean(f, "cachedKeys"));
        } else if (f.oid == base + ".7.3") {
          KBS_ASSIGN_OR_RETURN(x.smt_enabled, Boolean(f, "SMTEnabled"));
        }
      }
    }
  }
  if (!have_ppid) return Bad("no PPID");
  if (!have_tcb) return Bad("no TCB");
  if (!have_pceid) return Bad("no PCE-ID");
  if (!have_fmspc) return Bad("no FMSPC");
  if (!have_type) return Bad("no SGX Type");
  return x;
}

absl::StatusOr<PckChain> ParsePckChain(absl::string_view pem) {
  auto certs = common::ParsePemCertificates(pem);
  if (!certs.ok()) {
    return absl::InvalidArgumentError(
        absl::StrCat("quote PCK certificate chain: ", certs.status().message()));
  }
  if (certs->size() != 3) {
    return absl::InvalidArgumentError(absl::StrCat("quote PCK certificate chain has ",
                                                   certs->size(),
                                                   " certificates; expected PCK, CA and root"));
  }
  PckChain chain;
  chain.pck = std::move((*certs)[0]);
  chain.intermediate = std::move((*certs)[1]);
  chain.root = std::move((*certs)[2]);
  if (X509_check_issued(chain.intermediate.get(), chain.pck.get()) != X509_V_OK ||
      X509_check_issued(chain.root.get(), chain.intermediate.get()) != X509_V_OK) {
    return absl::InvalidArgumentError(
        "quote PCK certificate chain is not in the order PCK, CA, root (issuer names differ)");
  }
  if (!absl::StrContains(Subject(chain.pck.get()), "SGX PCK Certificate")) {
    return absl::InvalidArgumentError(absl::StrCat("the quote's leaf certificate '",
                                                   Subject(chain.pck.get()).substr(0, 64),
                                                   "' is not an SGX PCK Certificate"));
  }
  const std::string ca = Subject(chain.intermediate.get());
  if (absl::StrContains(ca, "Platform CA")) {
    chain.ca = PckCa::kPlatform;
  } else if (absl::StrContains(ca, "Processor CA")) {
    chain.ca = PckCa::kProcessor;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("quote PCK certificate chain: the PCK's issuer '", ca.substr(0, 64),
                     "' is neither a PCK Platform CA nor a PCK Processor CA"));
  }
  std::optional<std::string> ext = common::ExtensionValue(chain.pck.get(), kSgxExtensionOid);
  if (!ext.has_value()) {
    return absl::InvalidArgumentError("the PCK certificate has no SGX extension");
  }
  KBS_ASSIGN_OR_RETURN(chain.extensions, ParsePckExtensions(*ext));
  return chain;
}

absl::StatusOr<ChainWindow> VerifyChain(const X509* leaf,
                                        const std::vector<const X509*>& intermediates,
                                        const X509* root, const RootAnchors& anchors, absl::Time at,
                                        absl::string_view what) {
  if (!anchors.IsTrusted(root)) {
    auto fp = common::CertificateSha256(root);
    return absl::UnauthenticatedError(
        absl::StrCat(what, ": the root '", common::CommonName(root).substr(0, 64), "' (sha256 ",
                     fp.ok() ? common::HexEncode(*fp) : "?", ") is not a pinned Intel SGX root"));
  }
  StorePtr store(X509_STORE_new());
  StoreCtxPtr ctx(X509_STORE_CTX_new());
  StackPtr untrusted(sk_X509_new_null());
  if (!store || !ctx || !untrusted ||
      X509_STORE_add_cert(store.get(), const_cast<X509*>(root)) != 1) {
    ERR_clear_error();
    return absl::InternalError(absl::StrCat(what, ": cannot set up chain verification"));
  }
  for (const X509* c : intermediates) {
    if (sk_X509_push(untrusted.get(), const_cast<X509*>(c)) <= 0) {
      return absl::InternalError(absl::StrCat(what, ": cannot set up chain verification"));
    }
  }
  if (X509_STORE_CTX_init(ctx.get(), store.get(), const_cast<X509*>(leaf), untrusted.get()) != 1) {
    ERR_clear_error();
    return absl::InternalError(absl::StrCat(what, ": cannot set up chain verification"));
  }
  X509_VERIFY_PARAM* param = X509_STORE_CTX_get0_param(ctx.get());
  X509_VERIFY_PARAM_set_time(param, absl::ToTimeT(at));
  // Intel's certificates carry no EKU; any purpose is fine.
  const int ok = X509_verify_cert(ctx.get());
  if (ok != 1) {
    const int err = X509_STORE_CTX_get_error(ctx.get());
    const X509* bad = X509_STORE_CTX_get_current_cert(ctx.get());
    ERR_clear_error();
    return absl::UnauthenticatedError(absl::StrCat(
        what, ": ", X509_verify_cert_error_string(err),
        bad != nullptr ? absl::StrCat(" (at '", common::CommonName(bad).substr(0, 64), "')") : ""));
  }
  ChainWindow w{common::NotBefore(leaf), common::NotAfter(leaf)};
  std::vector<const X509*> all = intermediates;
  all.push_back(root);
  for (const X509* c : all) {
    w.not_before = std::max(w.not_before, common::NotBefore(c));
    w.not_after = std::min(w.not_after, common::NotAfter(c));
  }
  return w;
}

absl::Time CrlThisUpdate(const X509_CRL* crl) {
  return common::FromAsn1Time(X509_CRL_get0_lastUpdate(crl));
}

absl::Time CrlNextUpdate(const X509_CRL* crl) {
  const ASN1_TIME* t = X509_CRL_get0_nextUpdate(crl);
  return t == nullptr ? absl::InfiniteFuture() : common::FromAsn1Time(t);
}

absl::Status CheckCrl(const X509_CRL* crl, const X509* issuer, absl::Time at,
                      absl::string_view what) {
  if (X509_NAME_cmp(X509_CRL_get_issuer(crl), X509_get_subject_name(issuer)) != 0 ||
      !common::IsCrlSignedBy(crl, issuer)) {
    return absl::UnauthenticatedError(
        absl::StrCat(what, " is not signed by '", common::CommonName(issuer).substr(0, 64), "'"));
  }
  const absl::Time this_update = CrlThisUpdate(crl);
  const absl::Time next_update = CrlNextUpdate(crl);
  if (at < this_update || at > next_update) {
    return absl::UnauthenticatedError(absl::StrCat(
        what, " is not valid at ", absl::FormatTime(absl::RFC3339_sec, at, absl::UTCTimeZone()),
        " (thisUpdate ", absl::FormatTime(absl::RFC3339_sec, this_update, absl::UTCTimeZone()),
        ", nextUpdate ", absl::FormatTime(absl::RFC3339_sec, next_update, absl::UTCTimeZone()),
        ")"));
  }
  return absl::OkStatus();
}

}  // namespace kbs::verifier::dcap
