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

// From the PEM bundle at `path`, the certificates a `signer` chain needs
// (intermediates of its role and ARKs), as DER; empty when the file does
// not exist or holds no intermediate of that role.
absl::StatusOr<std::vector<std::string>> ReadChainFile(const std::string& path, SignerType signer) {
  auto pem = common::ReadFile(path, kMaxFileBytes);
  if (!pem.ok()) {
    if (pem.status().code() == absl::StatusCode::kNotFound) return std::vector<std::string>();
    return pem.status();
  }
  auto certs = common::ParsePemCertificates(*pem);
  if (!certs.ok()) {
    return absl::FailedPreconditionError(absl::StrCat(path, ": ", certs.status().message()));
  }
  const AmdCaRole wanted = IntermediateRole(signer);
  std::vector<std::string> out;
  bool has_intermediate = false;
  for (const common::X509Ptr& c : *certs) {
    AmdCaRole role = CaRoleOf(c.get());
    if (role != wanted && role != AmdCaRole::kArk) continue;
    has_intermediate = has_intermediate || role == wanted;
    KBS_ASSIGN_OR_RETURN(std::string der, common::CertificateDer(c.get()));
    out.push_back(std::move(der));
  }
  if (!has_intermediate) out.clear();
  return out;
}

const char* ChainFileName(SignerType signer) {
  return signer == SignerType::kVlek ? "vlek_cert_chain.pem" : "cert_chain.pem";
}

}  // namespace

std::string DirectoryCollateral::VcekRelativePath(const VcekRequest& request) {
  const bool turin = request.product == Product::kTurin;
  return absl::StrCat(ProductName(request.product), "/vcek/", common::HexEncode(request.hwid), "/",
                      absl::Hex(request.tcb.Encode(turin), absl::kZeroPad16), ".der");
}

absl::StatusOr<std::string> DirectoryCollateral::GetVcek(const VcekRequest& request, absl::Time) {
  std::string path = absl::StrCat(dir_, "/", VcekRelativePath(request));
  auto der = common::ReadFile(path, kMaxFileBytes);
  if (!der.ok() && der.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("no VCEK at ", path));
  }
  return der;
}

absl::StatusOr<ChainCollateral> DirectoryCollateral::GetChain(Product product, SignerType signer,
                                                              absl::Time) {
  const std::string base = absl::StrCat(dir_, "/", ProductName(product), "/");
  const SignerType other = signer == SignerType::kVlek ? SignerType::kVcek : SignerType::kVlek;
  for (SignerType file : {signer, other}) {
    KBS_ASSIGN_OR_RETURN(std::vector<std::string> certs,
                         ReadChainFile(base + ChainFileName(file), signer));
    if (!certs.empty()) return ChainCollateral{std::move(certs)};
  }
  return absl::NotFoundError(absl::StrCat("no AMD ", SignerName(signer), " certificate chain (",
                                          signer == SignerType::kVlek ? "ASVK" : "ASK",
                                          " and ARK) under ", base));
}

absl::StatusOr<std::string> DirectoryCollateral::GetCrl(Product product, absl::Time, absl::Time) {
  std::string path = absl::StrCat(dir_, "/", ProductName(product), "/crl.der");
  auto der = common::ReadFile(path, kMaxFileBytes);
  if (!der.ok() && der.status().code() == absl::StatusCode::kNotFound) {
    return absl::NotFoundError(absl::StrCat("no ARK CRL at ", path));
  }
  return der;
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
  return common::WriteFileAtomic((dir / ChainFileName(signer)).string(), pem, 0644);
}

absl::Status DirectoryCollateral::StoreCrl(Product product, absl::string_view der) {
  std::filesystem::path dir = std::filesystem::path(dir_) / std::string(ProductName(product));
  KBS_RETURN_IF_ERROR(common::EnsureDirectory(dir.string(), 0755));
  return common::WriteFileAtomic((dir / "crl.der").string(), der, 0644);
}

absl::StatusOr<std::string> ChainedCollateral::GetVcek(const VcekRequest& request,
                                                       absl::Time deadline) {
  absl::Status last = absl::NotFoundError("no collateral source has this VCEK");
  for (CollateralSource* source : sources_) {
    auto der = source->GetVcek(request, deadline);
    if (der.ok() || der.status().code() != absl::StatusCode::kNotFound) return der;
    last = der.status();
  }
  return last;
}

absl::StatusOr<ChainCollateral> ChainedCollateral::GetChain(Product product, SignerType signer,
                                                            absl::Time deadline) {
  absl::Status last = absl::NotFoundError("no collateral source has the AMD certificate chain");
  for (CollateralSource* source : sources_) {
    auto chain = source->GetChain(product, signer, deadline);
    if (chain.ok() || chain.status().code() != absl::StatusCode::kNotFound) return chain;
    last = chain.status();
  }
  return last;
}

absl::StatusOr<std::string> ChainedCollateral::GetCrl(Product product, absl::Time at,
                                                      absl::Time deadline) {
  absl::Status last = absl::NotFoundError("no collateral source has the ARK CRL");
  std::optional<std::string> stale;
  absl::Time stale_this_update = absl::InfinitePast();
  for (CollateralSource* source : sources_) {
    auto der = source->GetCrl(product, at, deadline);
    if (!der.ok()) {
      if (der.status().code() != absl::StatusCode::kNotFound ||
          last.code() == absl::StatusCode::kNotFound) {
        last = der.status();
      }
      continue;
    }
    auto times = CrlUpdateTimes(*der);
    if (!times.ok()) {
      last = absl::FailedPreconditionError("a collateral source has an ARK CRL that is not a CRL");
      continue;
    }
    if (at < times->second) return der;
    if (!stale.has_value() || times->first > stale_this_update) {
      stale = *std::move(der);
      stale_this_update = times->first;
    }
  }
  if (stale.has_value()) return *std::move(stale);
  return last;
}

}  // namespace kbs::verifier::snp
