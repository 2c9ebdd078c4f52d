#include "kbs/keystore/local_kek.h"

#include "absl/status/status.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/strip.h"
#include "common/crypto.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kbs::keystore {
namespace {

constexpr int kMaxVersions = 1000;

std::string VersionPath(const std::string& master, int version) {
  return version == 1 ? master : absl::StrCat(master, ".", version);
}

std::string Id(int version) { return absl::StrCat("local:", version); }

std::string Aad(absl::string_view context, absl::string_view kek_id) {
  return absl::StrCat(kek_id, "\n", context);
}

}  // namespace

absl::StatusOr<common::SecretBytes> LoadOrCreateMasterKey(const std::string& path) {
  if (!common::FileExists(path)) {
    KBS_ASSIGN_OR_RETURN(common::SecretBytes key, common::RandomBytes(32));
    KBS_RETURN_IF_ERROR(common::WriteFileAtomic(path, common::AsStringView(key.span()), 0600));
    return key;
  }
  KBS_ASSIGN_OR_RETURN(std::string raw, common::ReadPrivateFile(path));
  common::SecretBytes key(common::AsSpan(raw));
  std::fill(raw.begin(), raw.end(), '\0');
  if (key.size() != 32) {
    return absl::FailedPreconditionError(
        absl::StrCat("key file ", path, " must be exactly 32 bytes, found ", key.size()));
  }
  return key;
}

absl::StatusOr<std::unique_ptr<LocalKek>> LocalKek::Open(const std::string& master_path) {
  std::unique_ptr<LocalKek> kek(new LocalKek(master_path));
  KBS_ASSIGN_OR_RETURN(common::SecretBytes master, LoadOrCreateMasterKey(master_path));
  kek->keys_.emplace(1, std::move(master));
  for (int v = 2; v <= kMaxVersions && common::FileExists(VersionPath(master_path, v)); ++v) {
    KBS_ASSIGN_OR_RETURN(common::SecretBytes key,
                         LoadOrCreateMasterKey(VersionPath(master_path, v)));
    kek->keys_.emplace(v, std::move(key));
  }
  return kek;
}

std::string LocalKek::current_id() const {
  std::lock_guard<std::mutex> lock(mu_);
  return Id(keys_.rbegin()->first);
}

absl::Span<const uint8_t> LocalKek::master_key() const {
  std::lock_guard<std::mutex> lock(mu_);
  return keys_.at(1).span();
}

absl::StatusOr<WrappedKey> LocalKek::Wrap(absl::Span<const uint8_t> data_key,
                                          absl::string_view context) {
  if (data_key.size() < 16 || data_key.size() > 64) {
    return absl::InvalidArgumentError("data keys are 16 to 64 bytes");
  }
  WrappedKey out;
  KBS_ASSIGN_OR_RETURN(std::string nonce, common::RandomString(12));
  std::lock_guard<std::mutex> lock(mu_);
  const auto& [version, key] = *keys_.rbegin();
  out.kek_id = Id(version);
  const std::string aad = Aad(context, out.kek_id);
  KBS_ASSIGN_OR_RETURN(
      common::AesGcmSealed sealed,
      common::AesGcmSeal(key.span(), common::AsSpan(nonce), common::AsSpan(aad), data_key));
  out.wrapped = absl::StrCat(nonce, sealed.ciphertext, sealed.tag);
  return out;
}

absl::StatusOr<common::SecretBytes> LocalKek::Unwrap(const WrappedKey& key,
                                                     absl::string_view context) {
  absl::string_view id = key.kek_id;
  int version = 0;
  if (!absl::ConsumePrefix(&id, "local:") || !absl::SimpleAtoi(id, &version)) {
    return absl::NotFoundError(
        absl::StrCat("KEK version '", key.kek_id.substr(0, 64), "' is not a local KEK"));
  }
  if (key.wrapped.size() < 12 + 16) return absl::DataLossError("wrapped data key is truncated");
  std::lock_guard<std::mutex> lock(mu_);
  auto it = keys_.find(version);
  if (it == keys_.end()) {
    return absl::NotFoundError(absl::StrCat("KEK version ", key.kek_id, " is not on this KBS"));
  }
  absl::string_view w = key.wrapped;
  const std::string aad = Aad(context, key.kek_id);
  auto plain = common::AesGcmOpen(
      it->second.span(), common::AsSpan(w.substr(0, 12)), common::AsSpan(aad),
      common::AsSpan(w.substr(12, w.size() - 12 - 16)), common::AsSpan(w.substr(w.size() - 16)));
  if (!plain.ok()) {
    return absl::DataLossError(absl::StrCat("wrapped data key failed authentication under ",
                                            key.kek_id, " (tampered or moved)"));
  }
  return plain;
}

absl::StatusOr<std::string> LocalKek::Rotate() {
  std::lock_guard<std::mutex> lock(mu_);
  const int next = keys_.rbegin()->first + 1;
  if (next > kMaxVersions) return absl::ResourceExhaustedError("too many local KEK versions");
  KBS_ASSIGN_OR_RETURN(common::SecretBytes key, common::RandomBytes(32));
  KBS_RETURN_IF_ERROR(common::WriteFileAtomic(VersionPath(master_path_, next),
                                              common::AsStringView(key.span()), 0600));
  keys_.emplace(next, std::move(key));
  return Id(next);
}

}  // namespace kbs::keystore
