#include "kbs/client/tsm_attester.h"

#include <fcntl.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cerrno>
#include <cstring>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "common/bytes.h"
#include "common/crypto.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/status_macros.h"
#include "verifier/tdx/tdx_verifier.h"

namespace kbs::client {
namespace {

using common::Json;

constexpr size_t kReportDataSize = 64;
constexpr size_t kMaxBlob = 16 << 20;  // the kernel's TSM_REPORT_OUTBLOB_MAX
constexpr size_t kMaxCcel = 16 << 20;  // CCEL log areas are at most a few MiB
constexpr size_t kMaxCertEntries = 64;

absl::Status ErrnoStatus(absl::string_view what, const std::string& path) {
  const int err = errno;
  return absl::FailedPreconditionError(
      absl::StrCat("configfs-tsm: ", what, " ", path, ": ", std::strerror(err)));
}

absl::Status WriteAll(const std::string& path, absl::string_view data) {
  int fd = ::open(path.c_str(), O_WRONLY | O_CLOEXEC);
  if (fd < 0) return ErrnoStatus("cannot open", path);
  size_t done = 0;
  while (done < data.size()) {
    ssize_t n = ::write(fd, data.data() + done, data.size() - done);
    if (n < 0 && errno == EINTR) continue;
    if (n == 0) errno = EIO;
    if (n <= 0) {
      absl::Status s = ErrnoStatus("cannot write", path);
      ::close(fd);
      return s;
    }
    done += static_cast<size_t>(n);
  }
  ::close(fd);
  return absl::OkStatus();
}

absl::StatusOr<uint64_t> ReadGeneration(const std::string& entry) {
  KBS_ASSIGN_OR_RETURN(std::string text, common::ReadFile(entry + "/generation", 64));
  uint64_t generation = 0;
  if (!absl::SimpleAtoi(absl::StripAsciiWhitespace(text), &generation)) {
    return absl::FailedPreconditionError(
        absl::StrCat("configfs-tsm: ", entry, "/generation is not a number"));
  }
  return generation;
}

// An EFI GUID as text: the first three fields are little-endian.
std::string GuidText(absl::Span<const uint8_t> g) {
  return absl::StrFormat("%02x%02x%02x%02x-%02x%02x-%02x%02x-%02x%02x-%02x%02x%02x%02x%02x%02x",
                         g[3], g[2], g[1], g[0], g[5], g[4], g[7], g[6], g[8], g[9], g[10], g[11],
                         g[12], g[13], g[14], g[15]);
}

std::string CertTypeForGuid(const std::string& guid) {
  // GHCB spec / the virtee sev crate's CertType (evidence-formats.md §1.1).
  if (guid == "63da758d-e664-4564-adc5-f4b93be8accd") return "VCEK";
  if (guid == "a8074bc2-a25a-483e-aae6-39c045a0b8a1") return "VLEK";
  if (guid == "4ab7b379-bbac-4fe4-a02f-05aef327c782") return "ASK";
  if (guid == "c0b406a4-a803-4952-9743-3fb6014cd0ae") return "ARK";
  return absl::StrCat("OTHER:", guid);
}

}  // namespace

absl::StatusOr<TsmReport> RequestTsmReport(absl::string_view report_data,
                                           const TsmOptions& options) {
  if (report_data.size() > kReportDataSize) {
    return absl::InvalidArgumentError("report data is longer than 64 bytes");
  }
  struct stat st;
  if (::stat(options.report_dir.c_str(), &st) != 0 || !S_ISDIR(st.st_mode)) {
    return absl::FailedPreconditionError(
        absl::StrCat("configfs-tsm is not available at ", options.report_dir,
                     " (Linux 6.7 or later in a SEV-SNP or TDX guest, with configfs mounted)"));
  }
  KBS_ASSIGN_OR_RETURN(std::string suffix, common::RandomString(8));
  const std::string entry = absl::StrCat(options.report_dir, "/kbs-", common::HexEncode(suffix));
  if (::mkdir(entry.c_str(), 0700) != 0) return ErrnoStatus("cannot create", entry);
  // The entry is private to this request; removed whatever happens.
  struct Remove {
    const std::string& path;
    ~Remove() { ::rmdir(path.c_str()); }
  } remove{entry};

  std::string inblob(report_data);
  inblob.resize(kReportDataSize, '\0');
  KBS_ASSIGN_OR_RETURN(uint64_t before, ReadGeneration(entry));
  KBS_RETURN_IF_ERROR(WriteAll(entry + "/inblob", inblob));
  TsmReport report;
  KBS_ASSIGN_OR_RETURN(std::string provider, common::ReadFile(entry + "/provider", 256));
  report.provider = std::string(absl::StripAsciiWhitespace(provider));
  KBS_ASSIGN_OR_RETURN(report.outblob, common::ReadFile(entry + "/outblob", kMaxBlob));
  auto aux = common::ReadFile(entry + "/auxblob", kMaxBlob);
  if (aux.ok()) {
    report.auxblob = *std::move(aux);
  } else if (!absl::IsNotFound(aux.status())) {
    return aux.status();
  }
  // Another writer on the same entry between our write and reads would have
  // bumped the generation (configfs-tsm ABI).
  KBS_ASSIGN_OR_RETURN(uint64_t after, ReadGeneration(entry));
  if (after == before) {
    return absl::FailedPreconditionError(
        absl::StrCat("configfs-tsm: ", entry, "/inblob was not accepted"));
  }
  if (after != before + 1) {
    return absl::AbortedError(
        absl::StrCat("configfs-tsm: ", entry, " was written concurrently; retry"));
  }
  if (report.outblob.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("configfs-tsm: ", entry, "/outblob is empty"));
  }
  return report;
}

absl::StatusOr<std::vector<verifier::snp::CertTableEntry>> ParseSnpCertTable(
    absl::string_view table) {
  // First the entries up to the zero terminator, then their data, which
  // must lie after the terminator.
  struct Entry {
    std::string type;
    uint32_t offset, length;
  };
  std::vector<Entry> entries;
  common::ByteReader r(common::AsSpan(table));
  while (true) {
    const std::string what = absl::StrCat("SNP certificate table entry ", entries.size());
    KBS_ASSIGN_OR_RETURN(absl::Span<const uint8_t> guid, r.Bytes(16, what));
    KBS_ASSIGN_OR_RETURN(uint32_t offset, r.U32(what));
    KBS_ASSIGN_OR_RETURN(uint32_t length, r.U32(what));
    if (common::AllZero(guid)) break;
    if (entries.size() == kMaxCertEntries) {
      return absl::InvalidArgumentError(
          absl::StrCat("SNP certificate table: more than ", kMaxCertEntries, " entries"));
    }
    entries.push_back({CertTypeForGuid(GuidText(guid)), offset, length});
  }
  const size_t data_start = r.offset();
  std::vector<verifier::snp::CertTableEntry> out;
  for (size_t i = 0; i < entries.size(); ++i) {
    const Entry& e = entries[i];
    if (e.offset < data_start || e.offset > table.size() || e.length > table.size() - e.offset) {
      return absl::InvalidArgumentError(absl::StrCat(
          "SNP certificate table entry ", i, ": certificate at offset ", e.offset, " length ",
          e.length, " is outside the data of the ", table.size(), "-byte table"));
    }
    out.push_back({e.type, std::string(table.substr(e.offset, e.length))});
  }
  return out;
}

absl::StatusOr<EvidenceMaker> TsmEvidenceMaker(absl::string_view tee, TsmOptions options) {
  std::string provider;
  if (tee == "snp") {
    provider = "sev_guest";
  } else if (tee == "tdx") {
    provider = "tdx_guest";
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("configfs-tsm evidence is for snp or tdx, not \"", tee, "\""));
  }
  return EvidenceMaker([tee = std::string(tee), provider, options](
                           absl::string_view report_data,
                           const std::optional<std::string>&) -> absl::StatusOr<Json> {
    KBS_ASSIGN_OR_RETURN(TsmReport report, RequestTsmReport(report_data, options));
    if (report.provider != provider) {
      return absl::FailedPreconditionError(absl::StrCat("configfs-tsm provider is \"",
                                                        report.provider, "\", not ", provider,
                                                        ": this guest is not a ", tee, " guest"));
    }
    if (tee == "snp") {
      verifier::snp::SnpEvidence evidence;
      evidence.report = std::move(report.outblob);
      if (!report.auxblob.empty()) {
        KBS_ASSIGN_OR_RETURN(evidence.cert_chain, ParseSnpCertTable(report.auxblob));
      }
      return verifier::snp::SnpEvidenceToJson(evidence);
    }
    verifier::tdx::TdxEvidence evidence;
    evidence.quote = std::move(report.outblob);
    auto log = common::ReadFile(options.ccel_path, kMaxCcel);
    if (log.ok()) {
      evidence.cc_eventlog = *std::move(log);
    } else if (!absl::IsNotFound(log.status())) {
      return log.status();
    }
    return verifier::tdx::TdxEvidenceToJson(evidence);
  });
}

}  // namespace kbs::client
