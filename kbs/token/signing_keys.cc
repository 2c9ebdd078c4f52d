#include "kbs/token/signing_keys.h"

#include <openssl/crypto.h>
#include <openssl/evp.h>

#include <algorithm>
#include <cerrno>
#include <cstdio>
#include <cstring>
#include <set>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kbs::token {
namespace {

using common::Json;

constexpr absl::string_view kFormat = "kbs-token-keys/1";
// A ring never needs more: one current, one next, and the retired keys of
// the rotations of the last token lifetime.
constexpr size_t kMaxKeys = 64;

absl::StatusOr<common::EvpPkeyPtr> NewP256() {
  return common::GenerateEcKey(common::EcCurve::kP256);
}

// Wipes a string that held private key PEM.
void Wipe(std::string& s) {
  if (!s.empty()) OPENSSL_cleanse(s.data(), s.size());
  s.clear();
}

absl::StatusOr<SigningKeyState> ParseState(absl::string_view name) {
  if (name == "next") return SigningKeyState::kNext;
  if (name == "current") return SigningKeyState::kCurrent;
  if (name == "retired") return SigningKeyState::kRetired;
  return absl::InvalidArgumentError(absl::StrCat("unknown key state \"", name, "\""));
}

std::string Rfc3339(absl::Time t) {
  return absl::FormatTime(absl::RFC3339_sec, t, absl::UTCTimeZone());
}

}  // namespace

absl::string_view SigningKeyStateName(SigningKeyState state) {
  switch (state) {
    case SigningKeyState::kNext:
      return "next";
    case SigningKeyState::kCurrent:
      return "current";
    case SigningKeyState::kRetired:
      return "retired";
  }
  return "unknown";
}

Json SigningKeyInfo::ToJson() const {
  Json j = {{"kid", kid},
            {"state", std::string(SigningKeyStateName(state))},
            {"created", Rfc3339(created)}};
  if (activated.has_value()) j["activated"] = Rfc3339(*activated);
  if (retired.has_value()) j["retired"] = Rfc3339(*retired);
  if (published_until.has_value()) j["published_until"] = Rfc3339(*published_until);
  return j;
}

absl::StatusOr<SigningKeyRing::Entry> SigningKeyRing::NewEntry(common::EvpPkeyPtr key,
                                                               SigningKeyState state,
                                                               absl::Time now,
                                                               absl::Duration lifetime) {
  auto curve = common::GetEcCurve(key.get());
  if (!curve.ok() || *curve != common::EcCurve::kP256) {
    return absl::InvalidArgumentError("a token signing key must be EC P-256 (ES256)");
  }
  Entry e;
  KBS_ASSIGN_OR_RETURN(e.info.kid, jose::JwkThumbprint(key.get()));
  e.info.state = state;
  e.info.created = now;
  if (state == SigningKeyState::kCurrent) e.info.activated = now;
  e.max_token_lifetime = lifetime;
  e.key = std::move(key);
  return e;
}

absl::StatusOr<std::unique_ptr<SigningKeyRing>> SigningKeyRing::FromKey(common::EvpPkeyPtr current,
                                                                        Options options,
                                                                        absl::Time now) {
  std::unique_ptr<SigningKeyRing> ring(new SigningKeyRing(std::move(options)));
  KBS_ASSIGN_OR_RETURN(Entry cur, NewEntry(std::move(current), SigningKeyState::kCurrent, now,
                                           ring->options_.token_lifetime));
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr next_key, NewP256());
  KBS_ASSIGN_OR_RETURN(Entry next, NewEntry(std::move(next_key), SigningKeyState::kNext, now,
                                            ring->options_.token_lifetime));
  ring->entries_.push_back(std::move(cur));
  ring->entries_.push_back(std::move(next));
  if (!ring->options_.path.empty()) KBS_RETURN_IF_ERROR(ring->Save(ring->entries_));
  return ring;
}

absl::StatusOr<std::unique_ptr<SigningKeyRing>> SigningKeyRing::Open(
    Options options, absl::Time now, const std::string& legacy_pem_path) {
  const std::string path = options.path;
  if (path.empty()) {
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, NewP256());
    return FromKey(std::move(key), std::move(options), now);
  }
  auto text = common::ReadPrivateFile(path);
  if (absl::IsNotFound(text.status())) {
    common::EvpPkeyPtr first;
    bool imported = false;
    if (!legacy_pem_path.empty() && common::FileExists(legacy_pem_path)) {
      auto legacy = common::ReadPrivateFile(legacy_pem_path);
      if (!legacy.ok()) return legacy.status();
      auto key = common::PrivateKeyFromPem(*legacy);
      Wipe(*legacy);
      if (!key.ok()) {
        return absl::InvalidArgumentError(
            absl::StrCat(legacy_pem_path, ": not a private key: ", key.status().message()));
      }
      first = *std::move(key);
      imported = true;
    } else {
      KBS_ASSIGN_OR_RETURN(first, NewP256());
    }
    auto ring = FromKey(std::move(first), std::move(options), now);
    if (!ring.ok()) return ring.status();
    if (imported) {
      if (std::remove(legacy_pem_path.c_str()) != 0) {
        KBS_LOG(kWarning, "token signing keys: imported ", legacy_pem_path,
                " into the key ring but could not remove it: ", std::strerror(errno));
      } else {
        KBS_LOG(kInfo, "token signing keys: imported ", legacy_pem_path, " into ", path);
      }
    }
    return ring;
  }
  if (!text.ok()) return text.status();
  std::unique_ptr<SigningKeyRing> ring(new SigningKeyRing(std::move(options)));
  absl::Status parsed = ring->Parse(*text);
  Wipe(*text);
  if (!parsed.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", parsed.message()));
  }
  // Tokens signed from now on may live longer than the recorded lifetime;
  // the current key's publication after retirement must cover them. And
  // keys whose publication ended have nothing left to verify.
  bool changed = false;
  for (Entry& e : ring->entries_) {
    if (e.info.state == SigningKeyState::kCurrent &&
        ring->options_.token_lifetime > e.max_token_lifetime) {
      e.max_token_lifetime = ring->options_.token_lifetime;
      changed = true;
    }
  }
  size_t before = ring->entries_.size();
  std::erase_if(ring->entries_, [&](const Entry& e) {
    auto until = ring->PublishedUntil(e);
    return until.has_value() && *until <= now;
  });
  changed |= ring->entries_.size() != before;
  if (std::none_of(ring->entries_.begin(), ring->entries_.end(),
                   [](const Entry& e) { return e.info.state == SigningKeyState::kNext; })) {
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr next_key, NewP256());
    KBS_ASSIGN_OR_RETURN(Entry next, NewEntry(std::move(next_key), SigningKeyState::kNext, now,
                                              ring->options_.token_lifetime));
    ring->entries_.push_back(std::move(next));
    changed = true;
  }
  if (changed) KBS_RETURN_IF_ERROR(ring->Save(ring->entries_));
  return ring;
}

absl::Status SigningKeyRing::Parse(absl::string_view text) {
  auto json = common::ParseJson(text);
  if (!json.ok()) return absl::InvalidArgumentError("not JSON");
  const Json* format = common::FindMember(*json, "format");
  if (format == nullptr || !format->is_string() || format->get<std::string>() != kFormat) {
    return absl::InvalidArgumentError(absl::StrCat("\"format\" is not \"", kFormat, "\""));
  }
  const Json* keys = common::FindMember(*json, "keys");
  if (keys == nullptr || !keys->is_array() || keys->empty() || keys->size() > kMaxKeys) {
    return absl::InvalidArgumentError("\"keys\" must be an array of 1 to 64 keys");
  }
  for (size_t i = 0; i < keys->size(); ++i) {
    const Json& k = (*keys)[i];
    auto where = [&](absl::string_view what) {
      return absl::InvalidArgumentError(absl::StrCat("keys[", i, "]: ", what));
    };
    if (!k.is_object()) return where("not an object");
    auto str = [&](const char* name) -> const Json* {
      const Json* v = common::FindMember(k, name);
      return v != nullptr && v->is_string() ? v : nullptr;
    };
    auto time = [&](const char* name) -> std::optional<absl::Time> {
      const Json* v = common::FindMember(k, name);
      if (v == nullptr || !v->is_number_integer()) return std::nullopt;
      return absl::FromUnixSeconds(v->get<int64_t>());
    };
    const Json* kid = str("kid");
    const Json* state_name = str("state");
    const Json* pem = str("private_key");
    std::optional<absl::Time> created = time("created");
    const Json* lifetime = common::FindMember(k, "max_token_lifetime");
    if (kid == nullptr || state_name == nullptr || pem == nullptr || !created.has_value() ||
        lifetime == nullptr || !lifetime->is_number_integer() || lifetime->get<int64_t>() < 0) {
      return where(
          "needs string kid, state and private_key, integer created and max_token_lifetime");
    }
    auto state = ParseState(state_name->get<std::string>());
    if (!state.ok()) return where(state.status().message());
    auto key = common::PrivateKeyFromPem(pem->get<std::string>());
    if (!key.ok()) return where("private_key is not a PEM private key");
    auto entry =
        NewEntry(*std::move(key), *state, *created, absl::Seconds(lifetime->get<int64_t>()));
    if (!entry.ok()) return where(entry.status().message());
    if (entry->info.kid != kid->get<std::string>()) {
      return where("kid is not the key's RFC 7638 thumbprint");
    }
    entry->info.activated = time("activated");
    entry->info.retired = time("retired");
    if (*state != SigningKeyState::kNext && !entry->info.activated.has_value()) {
      return where("a current or retired key needs \"activated\"");
    }
    if (*state == SigningKeyState::kRetired && !entry->info.retired.has_value()) {
      return where("a retired key needs \"retired\"");
    }
    entries_.push_back(*std::move(entry));
  }
  for (Entry& e : entries_) e.info.published_until = PublishedUntil(e);
  return Validate();
}

absl::Status SigningKeyRing::Validate() const {
  int current = 0, next = 0;
  std::set<std::string> kids;
  for (const Entry& e : entries_) {
    if (!kids.insert(e.info.kid).second) {
      return absl::InvalidArgumentError(absl::StrCat("key ", e.info.kid, " appears twice"));
    }
    current += e.info.state == SigningKeyState::kCurrent;
    next += e.info.state == SigningKeyState::kNext;
  }
  if (current != 1 || next > 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("a ring has exactly one current key and at most one next key (found ", current,
                     " current, ", next, " next)"));
  }
  return absl::OkStatus();
}

absl::Status SigningKeyRing::Save(const std::vector<Entry>& entries) const {
  Json doc = Json::object();
  doc["format"] = std::string(kFormat);
  Json& keys = doc["keys"] = Json::array();
  for (const Entry& e : entries) {
    KBS_ASSIGN_OR_RETURN(std::string pem, common::PrivateKeyToPem(e.key.get()));
    Json k = {{"kid", e.info.kid},
              {"state", std::string(SigningKeyStateName(e.info.state))},
              {"created", absl::ToUnixSeconds(e.info.created)},
              {"max_token_lifetime", absl::ToInt64Seconds(e.max_token_lifetime)},
              {"private_key", pem}};
    Wipe(pem);
    if (e.info.activated.has_value()) k["activated"] = absl::ToUnixSeconds(*e.info.activated);
    if (e.info.retired.has_value()) k["retired"] = absl::ToUnixSeconds(*e.info.retired);
    keys.push_back(std::move(k));
  }
  std::string text = doc.dump(1);
  text.push_back('\n');
  // The Json copies of the PEM strings are wiped with the document.
  for (Json& k : doc["keys"]) Wipe(k["private_key"].get_ref<std::string&>());
  absl::Status written = common::WriteFileAtomic(options_.path, text, 0600);
  Wipe(text);
  if (!written.ok()) {
    return absl::UnavailableError(
        absl::StrCat("token signing keys: cannot write ", options_.path, ": ", written.message()));
  }
  return absl::OkStatus();
}

std::optional<absl::Time> SigningKeyRing::PublishedUntil(const Entry& e) const {
  if (e.info.state != SigningKeyState::kRetired || !e.info.retired.has_value()) {
    return std::nullopt;
  }
  return *e.info.retired + e.max_token_lifetime + options_.clock_skew;
}

const SigningKeyRing::Entry& SigningKeyRing::Current() const {
  for (const Entry& e : entries_) {
    if (e.info.state == SigningKeyState::kCurrent) return e;
  }
  // Validate() and every mutation keep exactly one current key.
  std::abort();
}

absl::StatusOr<SigningKeyRotation> SigningKeyRing::Rotate(absl::Time now) {
  std::vector<Entry> rotated;
  SigningKeyRotation result;
  bool promoted = false;
  for (const Entry& e : entries_) {
    Entry copy{e.info, e.max_token_lifetime, common::ShareKey(e.key.get())};
    if (copy.key == nullptr)
      return absl::InternalError("token signing keys: EVP_PKEY_up_ref failed");
    switch (e.info.state) {
      case SigningKeyState::kCurrent:
        copy.info.state = SigningKeyState::kRetired;
        copy.info.retired = now;
        copy.max_token_lifetime = std::max(copy.max_token_lifetime, options_.token_lifetime);
        result.retired = copy.info.kid;
        break;
      case SigningKeyState::kNext:
        copy.info.state = SigningKeyState::kCurrent;
        copy.info.activated = now;
        copy.max_token_lifetime = options_.token_lifetime;
        result.current = copy.info.kid;
        promoted = true;
        break;
      case SigningKeyState::kRetired:
        break;
    }
    copy.info.published_until = PublishedUntil(copy);
    if (copy.info.published_until.has_value() && *copy.info.published_until <= now) continue;
    rotated.push_back(std::move(copy));
  }
  if (!promoted) {
    KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr key, NewP256());
    KBS_ASSIGN_OR_RETURN(Entry cur, NewEntry(std::move(key), SigningKeyState::kCurrent, now,
                                             options_.token_lifetime));
    result.current = cur.info.kid;
    rotated.push_back(std::move(cur));
  }
  KBS_ASSIGN_OR_RETURN(common::EvpPkeyPtr next_key, NewP256());
  KBS_ASSIGN_OR_RETURN(Entry next, NewEntry(std::move(next_key), SigningKeyState::kNext, now,
                                            options_.token_lifetime));
  rotated.push_back(std::move(next));
  if (rotated.size() > kMaxKeys) {
    return absl::ResourceExhaustedError(absl::StrCat(
        "token signing keys: ", kMaxKeys,
        " keys would be published; wait for retired keys to expire before rotating again"));
  }
  if (!options_.path.empty()) KBS_RETURN_IF_ERROR(Save(rotated));
  entries_ = std::move(rotated);
  return result;
}

EVP_PKEY* SigningKeyRing::current_key() const { return Current().key.get(); }

absl::Time SigningKeyRing::current_since() const {
  const Entry& cur = Current();
  return cur.info.activated.value_or(cur.info.created);
}

std::vector<const EVP_PKEY*> SigningKeyRing::VerificationKeys(absl::Time now) const {
  std::vector<const EVP_PKEY*> out;
  for (const Entry& e : entries_) {
    if (e.info.state == SigningKeyState::kNext) continue;
    if (e.info.published_until.has_value() && *e.info.published_until <= now) continue;
    out.push_back(e.key.get());
  }
  return out;
}

std::vector<const EVP_PKEY*> SigningKeyRing::PublishedKeys(absl::Time now) const {
  std::vector<const EVP_PKEY*> out;
  // Current first: relying parties that take the first key get the right one.
  out.push_back(Current().key.get());
  for (const Entry& e : entries_) {
    if (e.info.state == SigningKeyState::kCurrent) continue;
    if (e.info.published_until.has_value() && *e.info.published_until <= now) continue;
    out.push_back(e.key.get());
  }
  return out;
}

std::vector<SigningKeyInfo> SigningKeyRing::Keys() const {
  std::vector<SigningKeyInfo> out;
  for (const Entry& e : entries_) out.push_back(e.info);
  return out;
}

}  // namespace kbs::token
