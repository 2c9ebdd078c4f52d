#include "verifier/verifier_set.h"

#include <array>

#include "absl/strings/str_cat.h"

namespace kbs::verifier {

bool IsKnownTee(absl::string_view tee) {
  static constexpr std::array<absl::string_view, 15> kTees = {
      "az-snp-vtpm", "az-tdx-vtpm", "nvidia", "sgx",    "snp",          "tdx", "cca",       "csv",
      "se",          "hygondcu",    "tpm",    "sample", "sampledevice", "dpu", "nvidia-dpu"};
  for (absl::string_view known : kTees) {
    if (known == tee) return true;
  }
  return false;
}

absl::Status VerifierSet::Add(std::unique_ptr<Verifier> verifier) {
  std::string tee(verifier->tee());
  if (verifiers_.count(tee) != 0) {
    return absl::AlreadyExistsError(absl::StrCat("a verifier for ", tee, " is already registered"));
  }
  verifiers_.emplace(std::move(tee), std::move(verifier));
  return absl::OkStatus();
}

const Verifier* VerifierSet::Find(absl::string_view tee) const {
  auto it = verifiers_.find(std::string_view(tee.data(), tee.size()));
  return it == verifiers_.end() ? nullptr : it->second.get();
}

std::vector<std::string> VerifierSet::Tees() const {
  std::vector<std::string> out;
  for (const auto& [tee, unused] : verifiers_) out.push_back(tee);
  return out;
}

}  // namespace kbs::verifier
