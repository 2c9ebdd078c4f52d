#include "verifier/snp/evidence.h"

#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "common/bytes.h"
#include "common/status_macros.h"
#include "verifier/snp/report.h"

namespace kbs::verifier::snp {
namespace {

using common::Json;

constexpr size_t kMaxCerts = kMaxCertChainEntries;
constexpr size_t kMaxCertBytes = kMaxCertDerBytes;

absl::Status Bad(absl::string_view field, absl::string_view what) {
  return absl::InvalidArgumentError(absl::StrCat("snp evidence: `", field, "` ", what));
}

absl::StatusOr<const Json*> Member(const Json& obj, absl::string_view field) {
  const Json* m = common::FindMember(obj, field);
  if (m == nullptr) return Bad(field, "is missing");
  return m;
}

absl::StatusOr<uint64_t> Unsigned(const Json& obj, absl::string_view field, uint64_t max) {
  KBS_ASSIGN_OR_RETURN(const Json* m, Member(obj, field));
  if (!m->is_number_unsigned() && !(m->is_number_integer() && m->get<int64_t>() >= 0)) {
    return Bad(field, "must be a non-negative integer");
  }
  uint64_t v = m->get<uint64_t>();
  if (v > max) return Bad(field, absl::StrCat("exceeds ", max));
  return v;
}

// A JSON array of exactly `n` integers 0..255.
absl::StatusOr<std::string> ByteArray(const Json& obj, absl::string_view field, size_t n) {
  KBS_ASSIGN_OR_RETURN(const Json* m, Member(obj, field));
  if (!m->is_array() || m->size() != n) {
    return Bad(field, absl::StrCat("must be an array of ", n, " bytes"));
  }
  std::string out(n, '\0');
  for (size_t i = 0; i < n; ++i) {
    const Json& e = (*m)[i];
    if (!e.is_number_integer() || e.get<int64_t>() < 0 || e.get<int64_t>() > 255) {
      return Bad(field, absl::StrCat("element ", i, " is not a byte"));
    }
    out[i] = static_cast<char>(e.get<int64_t>());
  }
  return out;
}

absl::StatusOr<TcbVersion> Tcb(const Json& obj, absl::string_view field) {
  KBS_ASSIGN_OR_RETURN(const Json* m, Member(obj, field));
  if (!m->is_object()) return Bad(field, "must be an object");
  TcbVersion t;
  const Json* fmc = common::FindMember(*m, "fmc");
  if (fmc != nullptr && !fmc->is_null()) {
    KBS_ASSIGN_OR_RETURN(uint64_t v, Unsigned(*m, "fmc", 255));
    t.fmc = static_cast<uint8_t>(v);
  }
  KBS_ASSIGN_OR_RETURN(uint64_t bl, Unsigned(*m, "bootloader", 255));
  KBS_ASSIGN_OR_RETURN(uint64_t tee, Unsigned(*m, "tee", 255));
  KBS_ASSIGN_OR_RETURN(uint64_t snp, Unsigned(*m, "snp", 255));
  KBS_ASSIGN_OR_RETURN(uint64_t ucode, Unsigned(*m, "microcode", 255));
  t.bootloader = static_cast<uint8_t>(bl);
  t.tee = static_cast<uint8_t>(tee);
  t.snp = static_cast<uint8_t>(snp);
  t.microcode = static_cast<uint8_t>(ucode);
  return t;
}

absl::Status Firmware(const Json& obj, absl::string_view field, uint8_t* out) {
  KBS_ASSIGN_OR_RETURN(const Json* m, Member(obj, field));
  if (!m->is_object()) return Bad(field, "must be an object");
  KBS_ASSIGN_OR_RETURN(uint64_t build, Unsigned(*m, "build", 255));
  KBS_ASSIGN_OR_RETURN(uint64_t minor, Unsigned(*m, "minor", 255));
  KBS_ASSIGN_OR_RETURN(uint64_t major, Unsigned(*m, "major", 255));
  out[0] = static_cast<uint8_t>(build);
  out[1] = static_cast<uint8_t>(minor);
  out[2] = static_cast<uint8_t>(major);
  return absl::OkStatus();
}

void PutLe(std::string& buf, size_t offset, uint64_t v, size_t width) {
  for (size_t i = 0; i < width; ++i) buf[offset + i] = static_cast<char>(v >> (8 * i));
}

void Put(std::string& buf, size_t offset, const std::string& bytes) {
  std::memcpy(buf.data() + offset, bytes.data(), bytes.size());
}

absl::StatusOr<std::string> RebuildReport(const Json& r) {
  if (!r.is_object()) return Bad("attestation_report", "must be an object");
  std::string b(kReportSize, '\0');
  KBS_ASSIGN_OR_RETURN(uint64_t version, Unsigned(r, "version", 0xFFFFFFFF));
  PutLe(b, 0x000, version, 4);
  KBS_ASSIGN_OR_RETURN(uint64_t guest_svn, Unsigned(r, "guest_svn", 0xFFFFFFFF));
  PutLe(b, 0x004, guest_svn, 4);
  KBS_ASSIGN_OR_RETURN(uint64_t policy, Unsigned(r, "policy", UINT64_MAX));
  PutLe(b, 0x008, policy, 8);
  KBS_ASSIGN_OR_RETURN(std::string family_id, ByteArray(r, "family_id", 16));
  Put(b, 0x010, family_id);
  KBS_ASSIGN_OR_RETURN(std::string image_id, ByteArray(r, "image_id", 16));
  Put(b, 0x020, image_id);
  KBS_ASSIGN_OR_RETURN(uint64_t vmpl, Unsigned(r, "vmpl", 0xFFFFFFFF));
  PutLe(b, 0x030, vmpl, 4);
  KBS_ASSIGN_OR_RETURN(uint64_t sig_algo, Unsigned(r, "sig_algo", 0xFFFFFFFF));
  PutLe(b, 0x034, sig_algo, 4);

  // CPUID decides the TCB layout on v3+; an `fmc` member means Turin too.
  uint8_t family = 0, model = 0, stepping = 0;
  if (version >= 3) {
    KBS_ASSIGN_OR_RETURN(uint64_t f, Unsigned(r, "cpuid_fam_id", 255));
    KBS_ASSIGN_OR_RETURN(uint64_t m, Unsigned(r, "cpuid_mod_id", 255));
    KBS_ASSIGN_OR_RETURN(uint64_t s, Unsigned(r, "cpuid_step", 255));
    family = static_cast<uint8_t>(f);
    model = static_cast<uint8_t>(m);
    stepping = static_cast<uint8_t>(s);
  }
  KBS_ASSIGN_OR_RETURN(TcbVersion current_tcb, Tcb(r, "current_tcb"));
  const bool turin =
      ProductFromCpuid(family, model) == Product::kTurin || current_tcb.fmc.has_value();
  PutLe(b, 0x038, current_tcb.Encode(turin), 8);
  KBS_ASSIGN_OR_RETURN(uint64_t plat_info, Unsigned(r, "plat_info", UINT64_MAX));
  PutLe(b, 0x040, plat_info, 8);
  KBS_ASSIGN_OR_RETURN(uint64_t key_info, Unsigned(r, "key_info", 0xFFFFFFFF));
  PutLe(b, 0x048, key_info, 4);
  KBS_ASSIGN_OR_RETURN(std::string report_data, ByteArray(r, "report_data", 64));
  Put(b, 0x050, report_data);
  KBS_ASSIGN_OR_RETURN(std::string measurement, ByteArray(r, "measurement", 48));
  Put(b, 0x090, measurement);
  KBS_ASSIGN_OR_RETURN(std::string host_data, ByteArray(r, "host_data", 32));
  Put(b, 0x0C0, host_data);
  KBS_ASSIGN_OR_RETURN(std::string id_key_digest, ByteArray(r, "id_key_digest", 48));
  Put(b, 0x0E0, id_key_digest);
  KBS_ASSIGN_OR_RETURN(std::string author_key_digest, ByteArray(r, "author_key_digest", 48));
  Put(b, 0x110, author_key_digest);
  KBS_ASSIGN_OR_RETURN(std::string report_id, ByteArray(r, "report_id", 32));
  Put(b, 0x140, report_id);
  KBS_ASSIGN_OR_RETURN(std::string report_id_ma, ByteArray(r, "report_id_ma", 32));
  Put(b, 0x160, report_id_ma);
  KBS_ASSIGN_OR_RETURN(TcbVersion reported_tcb, Tcb(r, "reported_tcb"));
  PutLe(b, 0x180, reported_tcb.Encode(turin), 8);
  if (version >= 3) {
    b[0x188] = static_cast<char>(family);
    b[0x189] = static_cast<char>(model);
    b[0x18A] = static_cast<char>(stepping);
  }
  KBS_ASSIGN_OR_RETURN(std::string chip_id, ByteArray(r, "chip_id", 64));
  Put(b, 0x1A0, chip_id);
  KBS_ASSIGN_OR_RETURN(TcbVersion committed_tcb, Tcb(r, "committed_tcb"));
  PutLe(b, 0x1E0, committed_tcb.Encode(turin), 8);
  uint8_t fw[3];
  KBS_RETURN_IF_ERROR(Firmware(r, "current", fw));
  std::memcpy(b.data() + 0x1E8, fw, 3);
  KBS_RETURN_IF_ERROR(Firmware(r, "committed", fw));
  std::memcpy(b.data() + 0x1EC, fw, 3);
  KBS_ASSIGN_OR_RETURN(TcbVersion launch_tcb, Tcb(r, "launch_tcb"));
  PutLe(b, 0x1F0, launch_tcb.Encode(turin), 8);
  if (version >= 5) {
    for (auto [field, offset] : {std::pair<const char*, size_t>{"launch_mit_vector", 0x1F8},
                                 {"current_mit_vector", 0x200}}) {
      const Json* m = common::FindMember(r, field);
      if (m != nullptr && !m->is_null()) {
        KBS_ASSIGN_OR_RETURN(uint64_t v, Unsigned(r, field, UINT64_MAX));
        PutLe(b, offset, v, 8);
      }
    }
  }
  KBS_ASSIGN_OR_RETURN(const Json* sig, Member(r, "signature"));
  if (!sig->is_object()) return Bad("signature", "must be an object");
  KBS_ASSIGN_OR_RETURN(std::string sig_r, ByteArray(*sig, "r", 72));
  KBS_ASSIGN_OR_RETURN(std::string sig_s, ByteArray(*sig, "s", 72));
  Put(b, 0x2A0, sig_r);
  Put(b, 0x2E8, sig_s);
  return b;
}

}  // namespace

absl::StatusOr<SnpEvidence> ParseSnpEvidence(const Json& evidence) {
  if (!evidence.is_object()) {
    return absl::InvalidArgumentError("snp evidence must be a JSON object");
  }
  SnpEvidence out;
  KBS_ASSIGN_OR_RETURN(const Json* report, Member(evidence, "attestation_report"));
  KBS_ASSIGN_OR_RETURN(out.report, RebuildReport(*report));
  const Json* chain = common::FindMember(evidence, "cert_chain");
  if (chain != nullptr && !chain->is_null()) {
    if (!chain->is_array()) return Bad("cert_chain", "must be an array or null");
    if (chain->size() > kMaxCerts) {
      return Bad("cert_chain", absl::StrCat("has more than ", kMaxCerts, " entries"));
    }
    for (const Json& entry : *chain) {
      if (!entry.is_object()) return Bad("cert_chain[]", "entries must be objects");
      CertTableEntry e;
      KBS_ASSIGN_OR_RETURN(const Json* type, Member(entry, "cert_type"));
      if (type->is_string()) {
        e.type = type->get<std::string>();
      } else if (type->is_object() && type->contains("OTHER") && (*type)["OTHER"].is_string()) {
        e.type = absl::StrCat("OTHER:", (*type)["OTHER"].get<std::string>().substr(0, 64));
      } else {
        return Bad("cert_chain[].cert_type", "must be a string or {\"OTHER\": uuid}");
      }
      KBS_ASSIGN_OR_RETURN(const Json* data, Member(entry, "data"));
      if (!data->is_array() || data->size() > kMaxCertBytes) {
        return Bad("cert_chain[].data",
                   absl::StrCat("must be an array of at most ", kMaxCertBytes, " bytes"));
      }
      KBS_ASSIGN_OR_RETURN(e.der, ByteArray(entry, "data", data->size()));
      out.cert_chain.push_back(std::move(e));
    }
  }
  return out;
}

absl::StatusOr<Json> ReportToSerdeJson(absl::string_view report_bytes) {
  KBS_ASSIGN_OR_RETURN(SnpReport r, ParseSnpReport(common::AsSpan(report_bytes)));
  const bool turin = r.cpuid_product() == Product::kTurin;
  auto bytes = [](auto& arr) {
    Json a = Json::array();
    for (uint8_t v : arr) a.push_back(v);
    return a;
  };
  auto tcb = [turin](uint64_t raw) {
    TcbVersion t = TcbVersion::Decode(raw, turin);
    return Json{{"fmc", t.fmc.has_value() ? Json(*t.fmc) : Json(nullptr)},
                {"bootloader", t.bootloader},
                {"tee", t.tee},
                {"snp", t.snp},
                {"microcode", t.microcode}};
  };
  auto fw = [](const FirmwareVersion& v) {
    return Json{{"major", v.major}, {"minor", v.minor}, {"build", v.build}};
  };
  // Member by member: initializer lists would copy every byte array.
  Json j = Json::object();
  j["version"] = r.version;
  j["guest_svn"] = r.guest_svn;
  j["policy"] = r.policy;
  j["family_id"] = bytes(r.family_id);
  j["image_id"] = bytes(r.image_id);
  j["vmpl"] = r.vmpl;
  j["sig_algo"] = r.signature_algo;
  j["current_tcb"] = tcb(r.current_tcb);
  j["plat_info"] = r.platform_info;
  j["key_info"] = r.key_info;
  j["report_data"] = bytes(r.report_data);
  j["measurement"] = bytes(r.measurement);
  j["host_data"] = bytes(r.host_data);
  j["id_key_digest"] = bytes(r.id_key_digest);
  j["author_key_digest"] = bytes(r.author_key_digest);
  j["report_id"] = bytes(r.report_id);
  j["report_id_ma"] = bytes(r.report_id_ma);
  j["reported_tcb"] = tcb(r.reported_tcb);
  j["chip_id"] = bytes(r.chip_id);
  j["committed_tcb"] = tcb(r.committed_tcb);
  j["current"] = fw(r.current);
  j["committed"] = fw(r.committed);
  j["launch_tcb"] = tcb(r.launch_tcb);
  Json signature = Json::object();
  signature["r"] = bytes(r.signature_r);
  signature["s"] = bytes(r.signature_s);
  j["signature"] = std::move(signature);
  if (r.version >= 3) {
    j["cpuid_fam_id"] = r.cpuid_family;
    j["cpuid_mod_id"] = r.cpuid_model;
    j["cpuid_step"] = r.cpuid_stepping;
  }
  j["launch_mit_vector"] = r.launch_mit_vector ? Json(*r.launch_mit_vector) : Json(nullptr);
  j["current_mit_vector"] = r.current_mit_vector ? Json(*r.current_mit_vector) : Json(nullptr);
  return j;
}

absl::StatusOr<common::Json> SnpEvidenceToJson(const SnpEvidence& evidence) {
  KBS_ASSIGN_OR_RETURN(common::Json serde, ReportToSerdeJson(evidence.report));
  // Assigned member by member: nlohmann initializer lists copy their
  // elements, and the report is a thousand-node tree.
  common::Json out = common::Json::object();
  out["attestation_report"] = std::move(serde);
  if (evidence.cert_chain.empty()) {
    out["cert_chain"] = nullptr;
    return out;
  }
  if (evidence.cert_chain.size() > kMaxCerts) {
    return absl::InvalidArgumentError(absl::StrCat("SNP evidence: ", evidence.cert_chain.size(),
                                                   " certificates; at most ", kMaxCerts));
  }
  common::Json chain = common::Json::array();
  for (const CertTableEntry& cert : evidence.cert_chain) {
    if (cert.der.size() > kMaxCertBytes) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SNP evidence: the ", cert.type, " certificate is over ", kMaxCertBytes, " bytes"));
    }
    common::Json data = common::Json::array();
    for (unsigned char c : cert.der) data.push_back(c);
    common::Json entry = common::Json::object();
    // The sev crate's serde form: unknown types as {"OTHER": "<uuid>"}.
    if (absl::StartsWith(cert.type, "OTHER:")) {
      entry["cert_type"] = common::Json{{"OTHER", cert.type.substr(6)}};
    } else {
      entry["cert_type"] = cert.type;
    }
    entry["data"] = std::move(data);
    chain.push_back(std::move(entry));
  }
  out["cert_chain"] = std::move(chain);
  return out;
}

}  // namespace kbs::verifier::snp
