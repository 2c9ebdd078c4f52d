#include "kbs/keystore/pkcs11_kek.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>

#include <algorithm>
#include <atomic>
#include <iterator>
#include <map>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/crypto.h"
#include "common/log.h"
#include "common/status_macros.h"

namespace kbs::keystore {
namespace {

constexpr size_t kIvSize = 12;
constexpr size_t kTagSize = 16;
constexpr size_t kKekSize = 32;
constexpr size_t kMinDataKey = 16;
constexpr size_t kMaxDataKey = 64;
constexpr int kMaxVersion = 1'000'000;
constexpr int kMaxSessions = 64;
constexpr size_t kMaxTokenLabel = 32;  // CK_TOKEN_INFO.label
constexpr size_t kMaxKeyLabel = 64;
constexpr size_t kMaxObjectsScanned = 100'000;
constexpr absl::string_view kIdPrefix = "pkcs11:";
// PKCS#11 v3.0 §5.1 adds CKR_AEAD_DECRYPT_FAILED; p11-kit 0.24's v2.40
// header does not define it.
constexpr CK_RV kCkrAeadDecryptFailed = 0x35;

std::string CkrName(CK_RV rv) {
  switch (rv) {
#define KBS_CKR_NAME(name) \
  case name:               \
    return #name;
    KBS_CKR_NAME(CKR_OK)
    KBS_CKR_NAME(CKR_CANCEL)
    KBS_CKR_NAME(CKR_HOST_MEMORY)
    KBS_CKR_NAME(CKR_SLOT_ID_INVALID)
    KBS_CKR_NAME(CKR_GENERAL_ERROR)
    KBS_CKR_NAME(CKR_FUNCTION_FAILED)
    KBS_CKR_NAME(CKR_ARGUMENTS_BAD)
    KBS_CKR_NAME(CKR_CANT_LOCK)
    KBS_CKR_NAME(CKR_ATTRIBUTE_READ_ONLY)
    KBS_CKR_NAME(CKR_ATTRIBUTE_SENSITIVE)
    KBS_CKR_NAME(CKR_ATTRIBUTE_TYPE_INVALID)
    KBS_CKR_NAME(CKR_ATTRIBUTE_VALUE_INVALID)
    KBS_CKR_NAME(CKR_ACTION_PROHIBITED)
    KBS_CKR_NAME(CKR_DATA_INVALID)
    KBS_CKR_NAME(CKR_DATA_LEN_RANGE)
    KBS_CKR_NAME(CKR_DEVICE_ERROR)
    KBS_CKR_NAME(CKR_DEVICE_MEMORY)
    KBS_CKR_NAME(CKR_DEVICE_REMOVED)
    KBS_CKR_NAME(CKR_ENCRYPTED_DATA_INVALID)
    KBS_CKR_NAME(CKR_ENCRYPTED_DATA_LEN_RANGE)
    KBS_CKR_NAME(CKR_FUNCTION_CANCELED)
    KBS_CKR_NAME(CKR_FUNCTION_NOT_SUPPORTED)
    KBS_CKR_NAME(CKR_KEY_HANDLE_INVALID)
    KBS_CKR_NAME(CKR_KEY_SIZE_RANGE)
    KBS_CKR_NAME(CKR_KEY_TYPE_INCONSISTENT)
    KBS_CKR_NAME(CKR_KEY_FUNCTION_NOT_PERMITTED)
    KBS_CKR_NAME(CKR_MECHANISM_INVALID)
    KBS_CKR_NAME(CKR_MECHANISM_PARAM_INVALID)
    KBS_CKR_NAME(CKR_OBJECT_HANDLE_INVALID)
    KBS_CKR_NAME(CKR_OPERATION_ACTIVE)
    KBS_CKR_NAME(CKR_OPERATION_NOT_INITIALIZED)
    KBS_CKR_NAME(CKR_PIN_INCORRECT)
    KBS_CKR_NAME(CKR_PIN_INVALID)
    KBS_CKR_NAME(CKR_PIN_LEN_RANGE)
    KBS_CKR_NAME(CKR_PIN_EXPIRED)
    KBS_CKR_NAME(CKR_PIN_LOCKED)
    KBS_CKR_NAME(CKR_SESSION_CLOSED)
    KBS_CKR_NAME(CKR_SESSION_COUNT)
    KBS_CKR_NAME(CKR_SESSION_HANDLE_INVALID)
    KBS_CKR_NAME(CKR_SESSION_READ_ONLY)
    KBS_CKR_NAME(CKR_TEMPLATE_INCOMPLETE)
    KBS_CKR_NAME(CKR_TEMPLATE_INCONSISTENT)
    KBS_CKR_NAME(CKR_TOKEN_NOT_PRESENT)
    KBS_CKR_NAME(CKR_TOKEN_NOT_RECOGNIZED)
    KBS_CKR_NAME(CKR_TOKEN_WRITE_PROTECTED)
    KBS_CKR_NAME(CKR_USER_ALREADY_LOGGED_IN)
    KBS_CKR_NAME(CKR_USER_NOT_LOGGED_IN)
    KBS_CKR_NAME(CKR_USER_PIN_NOT_INITIALIZED)
    KBS_CKR_NAME(CKR_USER_TYPE_INVALID)
    KBS_CKR_NAME(CKR_USER_ANOTHER_ALREADY_LOGGED_IN)
    KBS_CKR_NAME(CKR_BUFFER_TOO_SMALL)
    KBS_CKR_NAME(CKR_CRYPTOKI_NOT_INITIALIZED)
    KBS_CKR_NAME(CKR_CRYPTOKI_ALREADY_INITIALIZED)
    KBS_CKR_NAME(CKR_FIPS_SELF_TEST_FAILED)
    KBS_CKR_NAME(CKR_LIBRARY_LOAD_FAILED)
    KBS_CKR_NAME(CKR_FUNCTION_REJECTED)
#undef KBS_CKR_NAME
    case kCkrAeadDecryptFailed:
      return "CKR_AEAD_DECRYPT_FAILED";
  }
  return absl::StrFormat("CKR_0x%08X", rv);
}

// Return values that mean the token, the session or the login is gone (or
// the module is in a state we cannot trust): the pool must be rebuilt.
bool HsmDown(CK_RV rv) {
  switch (rv) {
    case CKR_HOST_MEMORY:
    case CKR_SLOT_ID_INVALID:
    case CKR_GENERAL_ERROR:
    case CKR_FUNCTION_FAILED:
    case CKR_DEVICE_ERROR:
    case CKR_DEVICE_MEMORY:
    case CKR_DEVICE_REMOVED:
    case CKR_FUNCTION_CANCELED:
    case CKR_SESSION_CLOSED:
    case CKR_SESSION_COUNT:
    case CKR_SESSION_HANDLE_INVALID:
    case CKR_TOKEN_NOT_PRESENT:
    case CKR_TOKEN_NOT_RECOGNIZED:
    case CKR_USER_NOT_LOGGED_IN:
    case CKR_CRYPTOKI_NOT_INITIALIZED:
    case CKR_PIN_INCORRECT:
    case CKR_PIN_EXPIRED:
    case CKR_PIN_LOCKED:
      return true;
    default:
      return false;
  }
}

// Login failures that retrying with the same PIN cannot fix, and that count
// towards the token's PIN lockout.
bool PinRejected(CK_RV rv) {
  return rv == CKR_PIN_INCORRECT || rv == CKR_PIN_INVALID || rv == CKR_PIN_LEN_RANGE ||
         rv == CKR_PIN_EXPIRED || rv == CKR_PIN_LOCKED || rv == CKR_USER_PIN_NOT_INITIALIZED;
}

absl::Status HsmUnavailable(CK_RV rv, absl::string_view call) {
  return absl::UnavailableError(absl::StrCat("HSM unavailable: ", CkrName(rv), " from ", call));
}

// CK_TOKEN_INFO.label is 32 bytes padded with blanks (PKCS#11 v2.40 §3.2).
std::string TokenLabel(const CK_TOKEN_INFO& info) {
  absl::string_view label(reinterpret_cast<const char*>(info.label), sizeof(info.label));
  while (!label.empty() && (label.back() == ' ' || label.back() == '\0')) label.remove_suffix(1);
  return std::string(label);
}

bool ValidKeyLabel(absl::string_view label) {
  if (label.empty() || label.size() > kMaxKeyLabel) return false;
  return std::all_of(label.begin(), label.end(), [](char c) {
    return absl::ascii_isalnum(static_cast<unsigned char>(c)) || c == '.' || c == '_' || c == '-';
  });
}

// "<n>" with 1 <= n <= kMaxVersion and no sign or leading zero, so each
// version has exactly one spelling.
int ParseVersionNumber(absl::string_view s) {
  if (s.empty() || s.size() > 7 || s[0] == '0') return 0;
  if (!std::all_of(s.begin(), s.end(), [](char c) { return c >= '0' && c <= '9'; })) return 0;
  int v = 0;
  if (!absl::SimpleAtoi(s, &v) || v < 1 || v > kMaxVersion) return 0;
  return v;
}

CK_BBOOL kTrue = CK_TRUE;
CK_BBOOL kFalse = CK_FALSE;

CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, void* value, CK_ULONG size) {
  CK_ATTRIBUTE a;
  a.type = type;
  a.pValue = value;
  a.ulValueLen = size;
  return a;
}
CK_ATTRIBUTE Attr(CK_ATTRIBUTE_TYPE type, const std::string& value) {
  return Attr(type, const_cast<char*>(value.data()), value.size());
}

}  // namespace

class Pkcs11Kek::Impl {
 public:
  explicit Impl(Pkcs11KekOptions options)
      : options_(std::move(options)),
        clock_(options_.clock != nullptr ? options_.clock : &system_clock_),
        backoff_(options_.retry_backoff_min) {}

  ~Impl() {
    absl::WriterMutexLock module_lock(&module_mu_);
    if (fn_ != nullptr && initialized_) {
      absl::MutexLock pool_lock(&pool_mu_);
      for (CK_SESSION_HANDLE h : idle_) fn_->C_CloseSession(h);
      idle_.clear();
      if (owns_init_) fn_->C_Finalize(nullptr);
    }
    if (dl_ != nullptr) dlclose(dl_);
  }

  absl::Status Load() {
    dl_ = dlopen(options_.module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl_ == nullptr) {
      const char* err = dlerror();
      return absl::FailedPreconditionError(absl::StrCat("cannot load PKCS#11 module ",
                                                        options_.module_path, ": ",
                                                        err != nullptr ? err : "dlopen failed"));
    }
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl_, "C_GetFunctionList"));
    if (get_list == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat(options_.module_path, " has no C_GetFunctionList"));
    }
    CK_FUNCTION_LIST_PTR list = nullptr;
    const CK_RV rv = get_list(&list);
    if (rv != CKR_OK || list == nullptr) {
      return absl::FailedPreconditionError(
          absl::StrCat("C_GetFunctionList of ", options_.module_path, " failed: ", CkrName(rv)));
    }
    fn_ = list;
    return absl::OkStatus();
  }

  // Start() once: until it has succeeded (the token was unreachable or
  // refused the PIN when the KBS started), every operation tries it again
  // (within the reconnection backoff) and fails Unavailable meanwhile.
  absl::Status EnsureStarted() {
    if (started_.load(std::memory_order_acquire)) return absl::OkStatus();
    // One thread starts; the others fail fast rather than queue behind a
    // token that may take its time to answer.
    if (!start_mu_.TryLock()) {
      return absl::UnavailableError(
          absl::StrCat("HSM unavailable: still connecting to token '", options_.token_label, "'"));
    }
    absl::Status status = absl::OkStatus();
    if (!started_.load(std::memory_order_relaxed)) {
      status = Start();
      if (status.ok()) started_.store(true, std::memory_order_release);
      absl::MutexLock lock(&pool_mu_);
      start_error_ = status;
    }
    start_mu_.Unlock();
    return status;
  }

  absl::Status Probe() {
    KBS_RETURN_IF_ERROR(EnsureStarted());
    return Run([&](Session& s) ABSL_NO_THREAD_SAFETY_ANALYSIS -> absl::Status {
      CK_TOKEN_INFO info;
      const CK_RV rv = fn_->C_GetTokenInfo(slot_, &info);
      if (rv != CKR_OK) return s.Fail(rv, "C_GetTokenInfo");
      if (TokenLabel(info) != options_.token_label) {
        s.fate = Fate::kBroken;
        s.broken = absl::UnavailableError("HSM unavailable: another token is in the slot");
        return s.broken;
      }
      return absl::OkStatus();
    });
  }

  // Connects, checks the mechanisms and loads (or creates) the versions.
  absl::Status Start() {
    return Run([&](Session& s) -> absl::Status {
      KBS_RETURN_IF_ERROR(CheckMechanisms());
      KBS_ASSIGN_OR_RETURN(auto versions, ScanVersions(s));
      if (versions.empty()) {
        if (!options_.create_if_missing) {
          return absl::FailedPreconditionError(
              absl::StrCat("token '", options_.token_label, "' holds no KEK labelled ",
                           options_.key_label, ".<n> and create_if_missing is off"));
        }
        KBS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE h, Generate(s, 1));
        absl::MutexLock lock(&keys_mu_);
        handles_[1] = h;
        current_ = 1;
        return absl::OkStatus();
      }
      const int newest = versions.rbegin()->first;
      // Checks the policy of the current version now rather than at the
      // first wrap; older versions are checked when first used.
      KBS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE h, FindKey(s, newest));
      absl::MutexLock lock(&keys_mu_);
      handles_[newest] = h;
      current_ = newest;
      return absl::OkStatus();
    });
  }

  std::string current_id() const {
    absl::MutexLock lock(&keys_mu_);
    return Id(current_);
  }

  absl::Status Health() const {
    absl::MutexLock lock(&pool_mu_);
    const bool started = started_.load(std::memory_order_acquire);
    if (healthy_ && started) return absl::OkStatus();
    if (!last_error_.ok()) return last_error_;
    if (!started && !start_error_.ok()) return start_error_;
    return absl::UnavailableError(
        absl::StrCat("HSM unavailable: reconnecting to token '", options_.token_label, "'"));
  }

  absl::StatusOr<WrappedKey> Wrap(absl::Span<const uint8_t> data_key, absl::string_view context) {
    if (data_key.size() < kMinDataKey || data_key.size() > kMaxDataKey) {
      return absl::InvalidArgumentError("data keys are 16 to 64 bytes");
    }
    KBS_RETURN_IF_ERROR(EnsureStarted());
    KBS_ASSIGN_OR_RETURN(std::string iv, common::RandomString(kIvSize));
    int version;
    {
      absl::MutexLock lock(&keys_mu_);
      version = current_;
    }
    WrappedKey out;
    out.kek_id = Id(version);
    const std::string aad = Aad(out.kek_id, context);
    CK_GCM_PARAMS gcm = GcmParams(iv, aad);
    CK_MECHANISM mech{CKM_AES_GCM, &gcm, sizeof(gcm)};
    absl::StatusOr<std::string> sealed = Run([&](Session& s) -> absl::StatusOr<std::string> {
      absl::Status init = InitCipher(s, version, &mech, /*encrypt=*/true);
      if (absl::IsNotFound(init)) {
        return absl::FailedPreconditionError(
            absl::StrCat("current KEK ", out.kek_id, " is no longer in the token"));
      }
      KBS_RETURN_IF_ERROR(init);
      // Room for a module that reports a block-rounded maximum.
      std::string ct(data_key.size() + kTagSize + 16, '\0');
      CK_ULONG ct_len = ct.size();
      const CK_RV rv =
          fn_->C_Encrypt(s.handle, const_cast<CK_BYTE_PTR>(data_key.data()), data_key.size(),
                         reinterpret_cast<CK_BYTE_PTR>(ct.data()), &ct_len);
      if (rv != CKR_OK) return s.Fail(rv, "C_Encrypt");
      if (ct_len != data_key.size() + kTagSize) {
        s.fate = Fate::kClose;
        return absl::InternalError(
            absl::StrCat("C_Encrypt (AES-GCM) returned ", ct_len, " bytes for ", data_key.size()));
      }
      ct.resize(ct_len);
      return ct;
    });
    if (!sealed.ok()) return sealed.status();
    out.wrapped = absl::StrCat(iv, *sealed);
    return out;
  }

  absl::StatusOr<common::SecretBytes> Unwrap(const WrappedKey& key, absl::string_view context) {
    KBS_RETURN_IF_ERROR(EnsureStarted());
    const int version = ParseId(key.kek_id);
    if (version == 0) {
      return absl::NotFoundError(absl::StrCat("KEK version '", key.kek_id.substr(0, 96),
                                              "' is not a version of pkcs11:", options_.key_label));
    }
    absl::string_view w = key.wrapped;
    if (w.size() < kIvSize + kMinDataKey + kTagSize ||
        w.size() > kIvSize + kMaxDataKey + kTagSize) {
      return absl::DataLossError(
          absl::StrCat("wrapped data key under ", key.kek_id, " has ", w.size(), " bytes"));
    }
    const absl::string_view iv = w.substr(0, kIvSize);
    const absl::string_view ct = w.substr(kIvSize);
    const std::string aad = Aad(key.kek_id, context);
    CK_GCM_PARAMS gcm = GcmParams(iv, aad);
    CK_MECHANISM mech{CKM_AES_GCM, &gcm, sizeof(gcm)};
    return Run([&](Session& s) -> absl::StatusOr<common::SecretBytes> {
      KBS_RETURN_IF_ERROR(InitCipher(s, version, &mech, /*encrypt=*/false));
      // SoftHSM 2.6 wants room for the whole input (tag included).
      common::SecretBytes plain(ct.size());
      CK_ULONG plain_len = plain.size();
      const CK_RV rv =
          fn_->C_Decrypt(s.handle, reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(ct.data())),
                         ct.size(), plain.data(), &plain_len);
      if (rv == CKR_OK) {
        if (plain_len < kMinDataKey || plain_len > kMaxDataKey) {
          return absl::DataLossError(
              absl::StrCat("data key unwrapped under ", key.kek_id, " has ", plain_len, " bytes"));
        }
        plain.Truncate(plain_len);
        return plain;
      }
      // A failed tag check: CKR_ENCRYPTED_DATA_INVALID (SoftHSM >= 2.7, most
      // HSMs), CKR_AEAD_DECRYPT_FAILED (v3.0), CKR_FUNCTION_FAILED, or
      // CKR_GENERAL_ERROR (SoftHSM 2.6). The last two also mean a broken
      // device, so the token must still answer before we call it DataLoss.
      if (rv == CKR_ENCRYPTED_DATA_INVALID || rv == CKR_ENCRYPTED_DATA_LEN_RANGE ||
          rv == kCkrAeadDecryptFailed || rv == CKR_FUNCTION_FAILED || rv == CKR_GENERAL_ERROR) {
        KBS_RETURN_IF_ERROR(CheckToken(s));
        return absl::DataLossError(absl::StrCat("wrapped data key failed authentication under ",
                                                key.kek_id, " (tampered or moved)"));
      }
      return s.Fail(rv, "C_Decrypt");
    });
  }

  absl::StatusOr<std::string> Rotate() {
    KBS_RETURN_IF_ERROR(EnsureStarted());
    absl::MutexLock rotate_lock(&rotate_mu_);
    absl::StatusOr<int> next = Run([&](Session& s) -> absl::StatusOr<int> {
      KBS_ASSIGN_OR_RETURN(auto versions, ScanVersions(s));
      int newest;
      {
        absl::MutexLock lock(&keys_mu_);
        newest = current_;
      }
      if (!versions.empty()) newest = std::max(newest, versions.rbegin()->first);
      if (newest >= kMaxVersion) return absl::ResourceExhaustedError("too many KEK versions");
      KBS_ASSIGN_OR_RETURN(CK_OBJECT_HANDLE h, Generate(s, newest + 1));
      absl::MutexLock lock(&keys_mu_);
      handles_[newest + 1] = h;
      current_ = newest + 1;
      return newest + 1;
    });
    if (!next.ok()) return next.status();
    KBS_LOG(kInfo, "PKCS#11 KEK rotated: ", Id(*next), " is current");
    return Id(*next);
  }

 private:
  enum class Fate { kReuse, kClose, kBroken };

  // A session checked out of the pool for one operation.
  struct Session {
    explicit Session(CK_SESSION_HANDLE h) : handle(h) {}

    const CK_SESSION_HANDLE handle;
    Fate fate = Fate::kReuse;
    absl::Status broken;

    // Turns a failed call into a status and decides what becomes of the
    // session: HSM-level failures break the pool; anything else closes the
    // session, since it may be left with an active operation.
    absl::Status Fail(CK_RV rv, absl::string_view call) {
      if (HsmDown(rv)) {
        fate = Fate::kBroken;
        broken = HsmUnavailable(rv, call);
        return broken;
      }
      if (fate == Fate::kReuse) fate = Fate::kClose;
      return absl::InternalError(absl::StrCat("PKCS#11 ", call, " failed: ", CkrName(rv)));
    }
  };

  std::string Label(int version) const { return absl::StrCat(options_.key_label, ".", version); }
  std::string Id(int version) const { return absl::StrCat(kIdPrefix, Label(version)); }

  // Binds the KEK id as well as the context, as LocalKek does.
  static std::string Aad(absl::string_view kek_id, absl::string_view context) {
    return absl::StrCat(kek_id, "\n", context);
  }

  static CK_GCM_PARAMS GcmParams(absl::string_view iv, const std::string& aad) {
    CK_GCM_PARAMS gcm{};
    gcm.pIv = reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(iv.data()));
    gcm.ulIvLen = iv.size();
    gcm.ulIvBits = iv.size() * 8;
    gcm.pAAD = reinterpret_cast<CK_BYTE_PTR>(const_cast<char*>(aad.data()));
    gcm.ulAADLen = aad.size();
    gcm.ulTagBits = kTagSize * 8;
    return gcm;
  }

  // The version in "pkcs11:<key_label>.<n>", or 0.
  int ParseVersionLabel(absl::string_view label) const {
    if (!absl::ConsumePrefix(&label, options_.key_label) || !absl::ConsumePrefix(&label, ".")) {
      return 0;
    }
    return ParseVersionNumber(label);
  }
  int ParseId(absl::string_view id) const {
    if (!absl::ConsumePrefix(&id, kIdPrefix)) return 0;
    return ParseVersionLabel(id);
  }

  // ---- Pool and connection -------------------------------------------

  // Runs `op` with a pooled session: `op(Session&)` returns a Status or
  // StatusOr. Never call Run from inside an op.
  template <typename Op>
  auto Run(Op op) -> decltype(op(std::declval<Session&>())) {
    KBS_RETURN_IF_ERROR(EnsureConnected());
    absl::ReaderMutexLock module_lock(&module_mu_);
    absl::StatusOr<CK_SESSION_HANDLE> handle = Acquire();
    if (!handle.ok()) return handle.status();
    Session s(*handle);
    auto result = op(s);
    Release(s);
    return result;
  }

  // OK when the pool is healthy or was rebuilt now; otherwise the last
  // error, without touching the module while the backoff runs.
  absl::Status EnsureConnected() ABSL_LOCKS_EXCLUDED(module_mu_, pool_mu_) {
    {
      absl::MutexLock lock(&pool_mu_);
      if (healthy_) return absl::OkStatus();
      if (pin_rejected_ || recovering_ || clock_->Now() < next_attempt_) return last_error_;
      recovering_ = true;
    }
    absl::Status status;
    {
      absl::WriterMutexLock module_lock(&module_mu_);
      status = ReconnectLocked();
    }
    absl::MutexLock lock(&pool_mu_);
    recovering_ = false;
    if (status.ok()) {
      if (connects_++ > 0) {
        KBS_LOG(kInfo, "PKCS#11 KEK: reconnected to token '", options_.token_label, "'");
      }
      healthy_ = true;
      backoff_ = options_.retry_backoff_min;
      last_error_ = absl::OkStatus();
    } else {
      last_error_ = status;
      next_attempt_ = clock_->Now() + backoff_;
      backoff_ = std::min(backoff_ * 2, options_.retry_backoff_max);
      if (connects_ > 0) {
        KBS_LOG(kWarning, "PKCS#11 KEK: reconnecting to token '", options_.token_label,
                "' failed: ", status.message());
      }
    }
    return status;
  }

  // Drops every session, then logs in again on the known slot; if that
  // fails, re-initialises the module and looks the token up again.
  absl::Status ReconnectLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module_mu_) {
    {
      absl::MutexLock lock(&keys_mu_);
      handles_.clear();  // handles need not survive C_Finalize
    }
    std::vector<CK_SESSION_HANDLE> old;
    {
      absl::MutexLock lock(&pool_mu_);
      old.swap(idle_);
      open_ = 0;
    }
    if (initialized_) {
      for (CK_SESSION_HANDLE h : old) fn_->C_CloseSession(h);
    }
    if (initialized_ && have_slot_) {
      absl::Status status = OpenAndLoginLocked();
      if (status.ok() || PinWasRejected()) return status;
    }
    if (initialized_ && owns_init_) {
      fn_->C_Finalize(nullptr);
      initialized_ = false;
    }
    have_slot_ = false;
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = fn_->C_Initialize(&args);
    if (rv == CKR_OK) {
      owns_init_ = true;
    } else if (rv == CKR_CRYPTOKI_ALREADY_INITIALIZED) {
      owns_init_ = false;  // someone else in this process owns C_Finalize
    } else {
      return HsmUnavailable(rv, "C_Initialize");
    }
    initialized_ = true;
    KBS_ASSIGN_OR_RETURN(slot_, FindSlotLocked());
    have_slot_ = true;
    return OpenAndLoginLocked();
  }

  bool PinWasRejected() {
    absl::MutexLock lock(&pool_mu_);
    return pin_rejected_;
  }

  absl::StatusOr<CK_SLOT_ID> FindSlotLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module_mu_) {
    std::vector<CK_SLOT_ID> slots;
    CK_RV rv = CKR_BUFFER_TOO_SMALL;
    for (int attempt = 0; attempt < 3 && rv == CKR_BUFFER_TOO_SMALL; ++attempt) {
      CK_ULONG n = 0;
      rv = fn_->C_GetSlotList(CK_TRUE, nullptr, &n);
      if (rv != CKR_OK) return HsmUnavailable(rv, "C_GetSlotList");
      slots.resize(n);
      rv = fn_->C_GetSlotList(CK_TRUE, slots.data(), &n);
      slots.resize(std::min<CK_ULONG>(n, slots.size()));
    }
    if (rv != CKR_OK) return HsmUnavailable(rv, "C_GetSlotList");
    std::vector<CK_SLOT_ID> matches;
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info;
      if (fn_->C_GetTokenInfo(slot, &info) == CKR_OK && TokenLabel(info) == options_.token_label) {
        matches.push_back(slot);
      }
    }
    if (matches.empty()) {
      return absl::UnavailableError(absl::StrCat("HSM unavailable: no token labelled '",
                                                 options_.token_label, "' among ", slots.size(),
                                                 " tokens in ", options_.module_path));
    }
    if (matches.size() > 1) {
      return absl::FailedPreconditionError(absl::StrCat(matches.size(), " tokens are labelled '",
                                                        options_.token_label,
                                                        "'; labels must be unique"));
    }
    return matches[0];
  }

  // Opens the first session of a new pool and logs in (the login holds for
  // every session of this process on the token, PKCS#11 v2.40 §5.6).
  absl::Status OpenAndLoginLocked() ABSL_EXCLUSIVE_LOCKS_REQUIRED(module_mu_) {
    CK_TOKEN_INFO info;
    CK_RV rv = fn_->C_GetTokenInfo(slot_, &info);
    if (rv != CKR_OK) return HsmUnavailable(rv, "C_GetTokenInfo");
    if (TokenLabel(info) != options_.token_label) {
      return absl::UnavailableError("HSM unavailable: another token is in the slot");
    }
    CK_SESSION_HANDLE h;
    rv = fn_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
    if (rv != CKR_OK) return HsmUnavailable(rv, "C_OpenSession");
    CK_UTF8CHAR_PTR pin =
        options_.pin.empty() ? nullptr : const_cast<CK_UTF8CHAR_PTR>(options_.pin.data());
    rv = fn_->C_Login(h, CKU_USER, pin, options_.pin.size());
    if (rv != CKR_OK && rv != CKR_USER_ALREADY_LOGGED_IN) {
      fn_->C_CloseSession(h);
      if (PinRejected(rv)) {
        absl::Status status = absl::UnavailableError(absl::StrCat(
            "HSM unavailable: token '", options_.token_label, "' rejected the PIN (", CkrName(rv),
            "); not retrying, since tokens lock the PIN after repeated failures: fix the PIN "
            "and restart"));
        absl::MutexLock lock(&pool_mu_);
        pin_rejected_ = true;
        last_error_ = status;
        return status;
      }
      return HsmUnavailable(rv, "C_Login");
    }
    absl::MutexLock lock(&pool_mu_);
    idle_.push_back(h);
    open_ = 1;
    return absl::OkStatus();
  }

  bool SessionAvailable() const ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
    return !healthy_ || !idle_.empty() || open_ < options_.sessions;
  }

  absl::StatusOr<CK_SESSION_HANDLE> Acquire() ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    {
      absl::MutexLock lock(&pool_mu_);
      pool_mu_.Await(absl::Condition(this, &Impl::SessionAvailable));
      if (!healthy_) return last_error_;
      if (!idle_.empty()) {
        CK_SESSION_HANDLE h = idle_.back();
        idle_.pop_back();
        return h;
      }
      ++open_;  // reserve the slot in the pool; open outside the lock
    }
    CK_SESSION_HANDLE h;
    const CK_RV rv =
        fn_->C_OpenSession(slot_, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &h);
    if (rv == CKR_OK) return h;
    absl::Status status = HsmUnavailable(rv, "C_OpenSession");
    absl::MutexLock lock(&pool_mu_);
    --open_;
    MarkBrokenLocked(status);
    return status;
  }

  void Release(Session& s) ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    if (s.fate != Fate::kReuse) fn_->C_CloseSession(s.handle);
    absl::MutexLock lock(&pool_mu_);
    if (s.fate == Fate::kReuse) {
      idle_.push_back(s.handle);
      return;
    }
    --open_;
    if (s.fate == Fate::kBroken) MarkBrokenLocked(s.broken);
  }

  void MarkBrokenLocked(const absl::Status& status) ABSL_EXCLUSIVE_LOCKS_REQUIRED(pool_mu_) {
    if (!healthy_) return;
    healthy_ = false;
    last_error_ = status;
    next_attempt_ = absl::InfinitePast();  // the first reconnection is immediate
    backoff_ = options_.retry_backoff_min;
    KBS_LOG(kWarning, "PKCS#11 KEK: ", status.message(), "; reconnecting on the next call");
  }

  // ---- Token objects ---------------------------------------------------

  absl::Status CheckMechanisms() ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    struct Need {
      CK_MECHANISM_TYPE type;
      CK_FLAGS flags;
      const char* what;
    };
    for (const Need& need : {Need{CKM_AES_GCM, CKF_ENCRYPT | CKF_DECRYPT, "CKM_AES_GCM"},
                             Need{CKM_AES_KEY_GEN, CKF_GENERATE, "CKM_AES_KEY_GEN"}}) {
      CK_MECHANISM_INFO info;
      const CK_RV rv = fn_->C_GetMechanismInfo(slot_, need.type, &info);
      if (rv == CKR_MECHANISM_INVALID ||
          (rv == CKR_OK && (info.flags & need.flags) != need.flags)) {
        return absl::FailedPreconditionError(
            absl::StrCat("token '", options_.token_label, "' does not support ", need.what));
      }
      if (rv != CKR_OK) return HsmUnavailable(rv, "C_GetMechanismInfo");
    }
    return absl::OkStatus();
  }

  // Fails when the token no longer answers or the session lost its login.
  // Called before trusting an empty search or a failed tag check: SoftHSM
  // finds no objects once its token is gone, and a logged-out session finds
  // no private ones, where we want Unavailable rather than NotFound.
  absl::Status CheckToken(Session& s) ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    CK_TOKEN_INFO info;
    CK_RV rv = fn_->C_GetTokenInfo(slot_, &info);
    if (rv != CKR_OK) return s.Fail(rv, "C_GetTokenInfo");
    CK_SESSION_INFO session;
    rv = fn_->C_GetSessionInfo(s.handle, &session);
    if (rv != CKR_OK) return s.Fail(rv, "C_GetSessionInfo");
    if (session.state != CKS_RW_USER_FUNCTIONS && session.state != CKS_RO_USER_FUNCTIONS) {
      return s.Fail(CKR_USER_NOT_LOGGED_IN, "C_GetSessionInfo");
    }
    return absl::OkStatus();
  }

  absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> FindObjects(Session& s,
                                                            std::vector<CK_ATTRIBUTE> tmpl,
                                                            size_t max) {
    CK_RV rv = fn_->C_FindObjectsInit(s.handle, tmpl.data(), tmpl.size());
    if (rv != CKR_OK) return s.Fail(rv, "C_FindObjectsInit");
    std::vector<CK_OBJECT_HANDLE> found;
    CK_OBJECT_HANDLE batch[64];
    while (found.size() < max) {
      CK_ULONG n = 0;
      rv = fn_->C_FindObjects(s.handle, batch, std::min<size_t>(64, max - found.size()), &n);
      if (rv != CKR_OK) {
        fn_->C_FindObjectsFinal(s.handle);
        return s.Fail(rv, "C_FindObjects");
      }
      if (n == 0) break;
      found.insert(found.end(), batch, batch + n);
    }
    rv = fn_->C_FindObjectsFinal(s.handle);
    if (rv != CKR_OK) return s.Fail(rv, "C_FindObjectsFinal");
    return found;
  }

  std::vector<CK_ATTRIBUTE> KekTemplate(CK_OBJECT_CLASS* cls, CK_KEY_TYPE* type) {
    *cls = CKO_SECRET_KEY;
    *type = CKK_AES;
    return {Attr(CKA_CLASS, cls, sizeof(*cls)), Attr(CKA_KEY_TYPE, type, sizeof(*type)),
            Attr(CKA_TOKEN, &kTrue, sizeof(kTrue))};
  }

  // Every KEK version in the token: version -> number of objects with it.
  absl::StatusOr<std::map<int, int>> ScanVersions(Session& s)
      ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE type;
    KBS_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> objects,
                         FindObjects(s, KekTemplate(&cls, &type), kMaxObjectsScanned));
    std::map<int, int> versions;
    for (CK_OBJECT_HANDLE object : objects) {
      CK_ATTRIBUTE label_attr = Attr(CKA_LABEL, nullptr, 0);
      CK_RV rv = fn_->C_GetAttributeValue(s.handle, object, &label_attr, 1);
      if (rv == CKR_OBJECT_HANDLE_INVALID) continue;  // destroyed meanwhile
      if (rv != CKR_OK) return s.Fail(rv, "C_GetAttributeValue(CKA_LABEL)");
      if (label_attr.ulValueLen == CK_UNAVAILABLE_INFORMATION ||
          label_attr.ulValueLen > kMaxKeyLabel + 8) {
        continue;
      }
      std::string label(label_attr.ulValueLen, '\0');
      label_attr.pValue = label.data();
      rv = fn_->C_GetAttributeValue(s.handle, object, &label_attr, 1);
      if (rv == CKR_OBJECT_HANDLE_INVALID) continue;
      if (rv != CKR_OK) return s.Fail(rv, "C_GetAttributeValue(CKA_LABEL)");
      label.resize(std::min<CK_ULONG>(label_attr.ulValueLen, label.size()));
      if (const int v = ParseVersionLabel(label); v != 0) ++versions[v];
    }
    // SoftHSM answers C_FindObjects with nothing once its token is gone.
    if (versions.empty()) KBS_RETURN_IF_ERROR(CheckToken(s));
    return versions;
  }

  // The object labelled "<key_label>.<version>", checked against the KEK
  // policy. NotFound when a token that still answers has no such object.
  absl::StatusOr<CK_OBJECT_HANDLE> FindKey(Session& s, int version)
      ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    const std::string label = Label(version);
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE type;
    std::vector<CK_ATTRIBUTE> tmpl = KekTemplate(&cls, &type);
    tmpl.push_back(Attr(CKA_LABEL, label));
    KBS_ASSIGN_OR_RETURN(std::vector<CK_OBJECT_HANDLE> found, FindObjects(s, tmpl, 2));
    if (found.empty()) {
      KBS_RETURN_IF_ERROR(CheckToken(s));
      return absl::NotFoundError(
          absl::StrCat("KEK ", Id(version), " is not in token '", options_.token_label, "'"));
    }
    if (found.size() > 1) {
      return absl::FailedPreconditionError(
          absl::StrCat("token '", options_.token_label, "' holds several keys labelled ", label));
    }
    KBS_RETURN_IF_ERROR(CheckPolicy(s, found[0], label));
    return found[0];
  }

  // A KEK must be a sensitive, non-extractable 256-bit AES key that can
  // encrypt and decrypt: whoever created it by hand must have set that.
  absl::Status CheckPolicy(Session& s, CK_OBJECT_HANDLE object, const std::string& label)
      ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    CK_BBOOL sensitive = CK_FALSE, extractable = CK_TRUE, encrypt = CK_FALSE, decrypt = CK_FALSE;
    CK_ULONG value_len = 0;
    CK_ATTRIBUTE attrs[] = {
        Attr(CKA_SENSITIVE, &sensitive, sizeof(sensitive)),
        Attr(CKA_EXTRACTABLE, &extractable, sizeof(extractable)),
        Attr(CKA_ENCRYPT, &encrypt, sizeof(encrypt)),
        Attr(CKA_DECRYPT, &decrypt, sizeof(decrypt)),
        Attr(CKA_VALUE_LEN, &value_len, sizeof(value_len)),
    };
    const CK_RV rv = fn_->C_GetAttributeValue(s.handle, object, attrs, std::size(attrs));
    if (rv != CKR_OK && rv != CKR_ATTRIBUTE_TYPE_INVALID && rv != CKR_ATTRIBUTE_SENSITIVE) {
      return s.Fail(rv, "C_GetAttributeValue");
    }
    std::string why;
    if (rv != CKR_OK)
      why = absl::StrCat("attributes unreadable (", CkrName(rv), ")");
    else if (sensitive != CK_TRUE)
      why = "not CKA_SENSITIVE";
    else if (extractable != CK_FALSE)
      why = "CKA_EXTRACTABLE";
    else if (encrypt != CK_TRUE || decrypt != CK_TRUE)
      why = "not allowed to encrypt and decrypt";
    else if (value_len != kKekSize)
      why = absl::StrCat(value_len * 8, "-bit");
    if (!why.empty()) {
      return absl::FailedPreconditionError(
          absl::StrCat("refusing KEK ", label, " in token '", options_.token_label, "': ", why));
    }
    return absl::OkStatus();
  }

  // C_EncryptInit / C_DecryptInit with version `version`, looking the
  // handle up again once if the cached one went stale.
  absl::Status InitCipher(Session& s, int version, CK_MECHANISM* mech, bool encrypt)
      ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    for (int attempt = 0;; ++attempt) {
      CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
      {
        absl::MutexLock lock(&keys_mu_);
        auto it = handles_.find(version);
        if (it != handles_.end()) key = it->second;
      }
      if (key == CK_INVALID_HANDLE) {
        KBS_ASSIGN_OR_RETURN(key, FindKey(s, version));
        absl::MutexLock lock(&keys_mu_);
        handles_[version] = key;
      }
      const CK_RV rv = encrypt ? fn_->C_EncryptInit(s.handle, mech, key)
                               : fn_->C_DecryptInit(s.handle, mech, key);
      if (rv == CKR_OK) return absl::OkStatus();
      if ((rv == CKR_KEY_HANDLE_INVALID || rv == CKR_OBJECT_HANDLE_INVALID) && attempt == 0) {
        absl::MutexLock lock(&keys_mu_);
        handles_.erase(version);
        continue;
      }
      return s.Fail(rv, encrypt ? "C_EncryptInit" : "C_DecryptInit");
    }
  }

  // Generates version `version` inside the token. If another process made
  // the same label meanwhile, destroys ours and fails with Aborted.
  absl::StatusOr<CK_OBJECT_HANDLE> Generate(Session& s, int version)
      ABSL_SHARED_LOCKS_REQUIRED(module_mu_) {
    const std::string label = Label(version);
    CK_OBJECT_CLASS cls;
    CK_KEY_TYPE type;
    CK_ULONG value_len = kKekSize;
    std::vector<CK_ATTRIBUTE> tmpl = KekTemplate(&cls, &type);
    // No CKA_WRAP/CKA_UNWRAP: a key that may both wrap and decrypt lets a
    // token user export other sensitive keys (wrap, then decrypt the blob).
    tmpl.insert(tmpl.end(), {
                                Attr(CKA_VALUE_LEN, &value_len, sizeof(value_len)),
                                Attr(CKA_PRIVATE, &kTrue, sizeof(kTrue)),
                                Attr(CKA_SENSITIVE, &kTrue, sizeof(kTrue)),
                                Attr(CKA_EXTRACTABLE, &kFalse, sizeof(kFalse)),
                                Attr(CKA_ENCRYPT, &kTrue, sizeof(kTrue)),
                                Attr(CKA_DECRYPT, &kTrue, sizeof(kTrue)),
                                Attr(CKA_WRAP, &kFalse, sizeof(kFalse)),
                                Attr(CKA_UNWRAP, &kFalse, sizeof(kFalse)),
                                Attr(CKA_SIGN, &kFalse, sizeof(kFalse)),
                                Attr(CKA_VERIFY, &kFalse, sizeof(kFalse)),
                                Attr(CKA_DERIVE, &kFalse, sizeof(kFalse)),
                                Attr(CKA_LABEL, label),
                                Attr(CKA_ID, label),
                            });
    CK_MECHANISM mech{CKM_AES_KEY_GEN, nullptr, 0};
    CK_OBJECT_HANDLE key = CK_INVALID_HANDLE;
    const CK_RV rv = fn_->C_GenerateKey(s.handle, &mech, tmpl.data(), tmpl.size(), &key);
    if (rv != CKR_OK) return s.Fail(rv, "C_GenerateKey");
    // Label uniqueness across processes sharing the token: whoever sees two
    // objects backs off, so at most one version n is ever used.
    std::vector<CK_ATTRIBUTE> find = KekTemplate(&cls, &type);
    find.push_back(Attr(CKA_LABEL, label));
    absl::StatusOr<std::vector<CK_OBJECT_HANDLE>> found = FindObjects(s, find, 2);
    if (!found.ok() || found->size() != 1) {
      fn_->C_DestroyObject(s.handle, key);
      if (!found.ok()) return found.status();
      return absl::AbortedError(
          absl::StrCat("another process created KEK ", label, " at the same time; retry"));
    }
    KBS_LOG(kInfo, "PKCS#11 KEK: generated ", Id(version), " in token '", options_.token_label,
            "'");
    return key;
  }

  const Pkcs11KekOptions options_;
  common::SystemClock system_clock_;
  const common::Clock* const clock_;
  void* dl_ = nullptr;
  CK_FUNCTION_LIST_PTR fn_ = nullptr;

  // Lock order: rotate_mu_, module_mu_, pool_mu_, keys_mu_.
  absl::Mutex rotate_mu_;
  // Held shared around every PKCS#11 call on a pooled session, exclusively
  // to (re)initialise: C_Finalize must not race other calls (v2.40 §5.4).
  mutable absl::Mutex module_mu_;
  bool initialized_ ABSL_GUARDED_BY(module_mu_) = false;
  bool owns_init_ ABSL_GUARDED_BY(module_mu_) = false;
  bool have_slot_ ABSL_GUARDED_BY(module_mu_) = false;
  CK_SLOT_ID slot_ ABSL_GUARDED_BY(module_mu_) = 0;

  mutable absl::Mutex pool_mu_;
  std::vector<CK_SESSION_HANDLE> idle_ ABSL_GUARDED_BY(pool_mu_);
  int open_ ABSL_GUARDED_BY(pool_mu_) = 0;  // idle + checked out
  bool healthy_ ABSL_GUARDED_BY(pool_mu_) = false;
  bool recovering_ ABSL_GUARDED_BY(pool_mu_) = false;
  bool pin_rejected_ ABSL_GUARDED_BY(pool_mu_) = false;
  int connects_ ABSL_GUARDED_BY(pool_mu_) = 0;  // successful (re)connections
  absl::Status last_error_ ABSL_GUARDED_BY(pool_mu_);
  absl::Time next_attempt_ ABSL_GUARDED_BY(pool_mu_) = absl::InfinitePast();
  absl::Duration backoff_ ABSL_GUARDED_BY(pool_mu_);

  absl::Mutex start_mu_;
  std::atomic<bool> started_{false};
  absl::Status start_error_ ABSL_GUARDED_BY(pool_mu_);

  mutable absl::Mutex keys_mu_;
  int current_ ABSL_GUARDED_BY(keys_mu_) = 0;
  std::map<int, CK_OBJECT_HANDLE> handles_ ABSL_GUARDED_BY(keys_mu_);
};

absl::StatusOr<std::unique_ptr<Pkcs11Kek>> Pkcs11Kek::Create(Pkcs11KekOptions options) {
  if (options.module_path.empty() || options.module_path[0] != '/') {
    // A bare name would be searched for in LD_LIBRARY_PATH.
    return absl::InvalidArgumentError("PKCS#11 module_path must be an absolute path");
  }
  if (options.token_label.empty() || options.token_label.size() > kMaxTokenLabel) {
    return absl::InvalidArgumentError("PKCS#11 token_label must be 1 to 32 bytes");
  }
  if (!ValidKeyLabel(options.key_label)) {
    return absl::InvalidArgumentError("PKCS#11 key_label must be 1 to 64 of [A-Za-z0-9._-]");
  }
  if (options.sessions < 1 || options.sessions > kMaxSessions) {
    return absl::InvalidArgumentError("PKCS#11 sessions must be 1 to 64");
  }
  if (options.retry_backoff_min <= absl::ZeroDuration() ||
      options.retry_backoff_max < options.retry_backoff_min) {
    return absl::InvalidArgumentError("PKCS#11 retry backoff must satisfy 0 < min <= max");
  }
  const bool start_unavailable = options.start_unavailable;
  const std::string token = options.token_label;
  auto impl = std::make_unique<Impl>(std::move(options));
  KBS_RETURN_IF_ERROR(impl->Load());
  absl::Status started = impl->EnsureStarted();
  if (!started.ok()) {
    if (!start_unavailable || !absl::IsUnavailable(started)) return started;
    KBS_LOG(kError, "PKCS#11 KEK: starting without token '", token, "': ", started.message(),
            "; nothing is released until it answers");
  }
  return std::unique_ptr<Pkcs11Kek>(new Pkcs11Kek(std::move(impl)));
}

Pkcs11Kek::Pkcs11Kek(std::unique_ptr<Impl> impl) : impl_(std::move(impl)) {}
Pkcs11Kek::~Pkcs11Kek() = default;

std::string Pkcs11Kek::current_id() const { return impl_->current_id(); }

absl::StatusOr<WrappedKey> Pkcs11Kek::Wrap(absl::Span<const uint8_t> data_key,
                                           absl::string_view context) {
  return impl_->Wrap(data_key, context);
}

absl::StatusOr<common::SecretBytes> Pkcs11Kek::Unwrap(const WrappedKey& key,
                                                      absl::string_view context) {
  return impl_->Unwrap(key, context);
}

absl::StatusOr<std::string> Pkcs11Kek::Rotate() { return impl_->Rotate(); }

absl::Status Pkcs11Kek::Health() const { return impl_->Health(); }

absl::Status Pkcs11Kek::Probe() { return impl_->Probe(); }

}  // namespace kbs::keystore
