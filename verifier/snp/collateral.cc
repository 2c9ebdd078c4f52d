#include "verifier/snp/collateral.h"

#include <filesystem>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kbs::verifier::snp {
namespace {

constexpr size_t kMaxFileBytes = 1 << 20;

// The PEM certificates of a file as DER, or nothing if it does not exist.
absl::StatusOr<std::vector<std::string>> ReadPemDer(const std::string& path) {
  auto pem = common::ReadFile(path, kMaxFileBytes);
  if (!pem.ok()) {
    if (pem.status().code() == absl::StatusCode::kNotFound) return std::vector<std::string>();
    return pem.status();
  }
  auto certs = common::ParsePemCertificates(*pem);
  if (!certs.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", certs.status().message()));
  }
  std::vector<std::string> out;
  for (const common::X509Ptr& c : *certs) {
    KBS_ASSIGN_OR_RETURN(std::string der, common::CertificateDer(c.get()));
    out.push_back(std::move(der));
  }
  return out;
}

}  // namespace

std::string DirectoryCollateral::VcekRelativePath(const VcekRequest& request) {
  const bool turin = request.product == Product::kTurin;
  return absl::StrCat(ProductName(request.product), "/vcek/", common::HexEncode(request.hwid), "/",
                      absl::Hex(request.tcb.Encode(turin), absl::kZeroPad16), ".der");
}

absl::StatusOr<std::string> DirectoryCollateral::GetVcek(const VcekRequest& request,
                                                         absl::Duration) {
  std::string path = absl::StrCat(dir_, "/", VcekRelativePath(request));
  auto der = common::ReadFile(path, kMaxFileBytes);
  if (!der.ok() && der.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("no VCEK at ", path));
  }
  return der;
}

absl::StatusOr<ChainCollateral> DirectoryCollateral::GetChain(Product product, SignerType signer,
                                                              absl::Duration) {
  const std::string base = absl::StrCat(dir_, "/", ProductName(product), "/");
  ChainCollateral out;
  for (const char* name : {"cert_chain.pem", "vlek_cert_chain.pem"}) {
    KBS_ASSIGN_OR_RETURN(std::vector<std::string> certs, ReadPemDer(base + name));
    for (std::string& der : certs) out.certs_der.push_back(std::move(der));
  }
  auto crl = common::ReadFile(base + "crl.der", kMaxFileBytes);
  if (crl.ok()) out.crls_der.push_back(*std::move(crl));
  if (out.certs_der.empty()) {
    return absl::NotFoundError(absl::StrCat("no AMD certificate chain under ", base));
  }
  return out;
}

absl::Status DirectoryCollateral::StoreVcek(const VcekRequest& request, absl::string_view der) {
  std::filesystem::path path = std::filesystem::path(dir_) / VcekRelativePath(request);
  KBS_RETURN_IF_ERROR(common::EnsureDirectory(path.parent_path().string(), 0755));
  return common::WriteFileAtomic(path.string(), der, 0644);
}

absl::Status DirectoryCollateral::StoreChain(Product product, SignerType signer,
                                             absl::string_view pem) {
  std::filesystem::path dir = std::filesystem::path(dir_) / std::string(ProductName(product));
  KBS_RETURN_IF_ERROR(common::EnsureDirectory(dir.string(), 0755));
  const char* name = signer == SignerType::kVlek ? "vlek_cert_chain.pem" : "cert_chain.pem";
  return common::WriteFileAtomic((dir / name).string(), pem, 0644);
}

absl::Status DirectoryCollateral::StoreCrl(Product product, absl::string_view der) {
  std::filesystem::path dir = std::filesystem::path(dir_) / std::string(ProductName(product));
  KBS_RETURN_IF_ERROR(common::EnsureDirectory(dir.string(), 0755));
  return common::WriteFileAtomic((dir / "crl.der").string(), der, 0644);
}

absl::StatusOr<std::string> ChainedCollateral::GetVcek(const VcekRequest& request,
                                                       absl::Duration timeout) {
  absl::Status last = absl::NotFoundError("no collateral source has this VCEK");
  for (CollateralSource* source : sources_) {
    auto der = source->GetVcek(request, timeout);
    if (der.ok() || der.status().code() != absl::StatusCode::kNotFound) return der;
    last = der.status();
  }
  return last;
}

absl::StatusOr<ChainCollateral> ChainedCollateral::GetChain(Product product, SignerType signer,
                                                            absl::Duration timeout) {
  absl::Status last = absl::NotFoundError("no collateral source has the AMD certificate chain");
  for (CollateralSource* source : sources_) {
    auto chain = source->GetChain(product, signer, timeout);
    if (chain.ok() || chain.status().code() != absl::StatusCode::kNotFound) return chain;
    last = chain.status();
  }
  return last;
}

}  // namespace kbs::verifier::snp
