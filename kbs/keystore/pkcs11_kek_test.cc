// The PKCS#11 KEK against a real SoftHSM2 token: each test gets a fresh
// token in its own directory (SOFTHSM2_CONF is read at C_Initialize).
// Skipped when the SoftHSM2 module is not installed (Debian: libsofthsm2).
#include "kbs/keystore/pkcs11_kek.h"

#include <dlfcn.h>
#include <p11-kit/pkcs11.h>
#include <stdlib.h>
#include <unistd.h>

#include <atomic>
#include <cstring>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "gmock/gmock.h"
#include "gtest/gtest.h"

namespace kbs::keystore {
namespace {

using ::testing::HasSubstr;
using ::testing::Not;
using ::testing::StartsWith;

constexpr char kDefaultModule[] = "/usr/lib/softhsm/libsofthsm2.so";
constexpr char kToken[] = "kbs-test";
constexpr char kKeyLabel[] = "kbs-kek";
constexpr char kUserPin[] = "user-pin-4711";
constexpr char kSoPin[] = "so-pin-0815";

std::string ModulePath() {
  const char* env = getenv("KBS_TEST_PKCS11_MODULE");
  return env != nullptr && *env != '\0' ? env : kDefaultModule;
}

common::SecretBytes Pin(absl::string_view pin) { return common::SecretBytes(common::AsSpan(pin)); }

common::Bytes TestKey(size_t n, uint8_t seed) {
  common::Bytes key(n);
  for (size_t i = 0; i < n; ++i) key[i] = static_cast<uint8_t>(seed + 7 * i);
  return key;
}

std::string StatusText(const absl::Status& s) { return std::string(s.ToString()); }

// Direct access to the module, outside the class under test: creates the
// token and inspects or plants key objects. Joins an existing C_Initialize
// (and then leaves C_Finalize to its owner).
class RawToken {
 public:
  explicit RawToken(const std::string& module_path) {
    dl_ = dlopen(module_path.c_str(), RTLD_NOW | RTLD_LOCAL);
    if (dl_ == nullptr) return;
    auto get_list = reinterpret_cast<CK_C_GetFunctionList>(dlsym(dl_, "C_GetFunctionList"));
    if (get_list == nullptr || get_list(&fn_) != CKR_OK) return;
    CK_C_INITIALIZE_ARGS args{};
    args.flags = CKF_OS_LOCKING_OK;
    const CK_RV rv = fn_->C_Initialize(&args);
    owns_init_ = rv == CKR_OK;
    ok_ = rv == CKR_OK || rv == CKR_CRYPTOKI_ALREADY_INITIALIZED;
  }
  ~RawToken() {
    if (ok_ && session_ != CK_INVALID_HANDLE) fn_->C_CloseSession(session_);
    if (ok_ && owns_init_) fn_->C_Finalize(nullptr);
    if (dl_ != nullptr) dlclose(dl_);
  }
  bool ok() const { return ok_; }

  // C_InitToken on the free slot, then sets the user PIN.
  CK_RV InitToken() {
    CK_ULONG n = 0;
    fn_->C_GetSlotList(CK_FALSE, nullptr, &n);
    std::vector<CK_SLOT_ID> slots(n);
    if (CK_RV rv = fn_->C_GetSlotList(CK_FALSE, slots.data(), &n); rv != CKR_OK) return rv;
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info;
      if (fn_->C_GetTokenInfo(slot, &info) != CKR_OK || (info.flags & CKF_TOKEN_INITIALIZED)) {
        continue;
      }
      CK_UTF8CHAR label[32];
      memset(label, ' ', sizeof(label));
      memcpy(label, kToken, strlen(kToken));
      CK_RV rv = fn_->C_InitToken(slot, Utf8(kSoPin), strlen(kSoPin), label);
      if (rv != CKR_OK) return rv;
      CK_SESSION_HANDLE s;
      rv = fn_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr, &s);
      if (rv != CKR_OK) return rv;
      rv = fn_->C_Login(s, CKU_SO, Utf8(kSoPin), strlen(kSoPin));
      if (rv == CKR_OK) rv = fn_->C_InitPIN(s, Utf8(kUserPin), strlen(kUserPin));
      fn_->C_Logout(s);
      fn_->C_CloseSession(s);
      return rv;
    }
    return CKR_SLOT_ID_INVALID;
  }

  // Opens a user session on the test token.
  CK_RV Login() {
    CK_ULONG n = 0;
    fn_->C_GetSlotList(CK_TRUE, nullptr, &n);
    std::vector<CK_SLOT_ID> slots(n);
    if (CK_RV rv = fn_->C_GetSlotList(CK_TRUE, slots.data(), &n); rv != CKR_OK) return rv;
    for (CK_SLOT_ID slot : slots) {
      CK_TOKEN_INFO info;
      if (fn_->C_GetTokenInfo(slot, &info) != CKR_OK ||
          memcmp(info.label, kToken, strlen(kToken)) != 0) {
        continue;
      }
      slot_ = slot;
      CK_RV rv = fn_->C_OpenSession(slot, CKF_SERIAL_SESSION | CKF_RW_SESSION, nullptr, nullptr,
                                    &session_);
      if (rv != CKR_OK) return rv;
      rv = fn_->C_Login(session_, CKU_USER, Utf8(kUserPin), strlen(kUserPin));
      return rv == CKR_USER_ALREADY_LOGGED_IN ? CKR_OK : rv;
    }
    return CKR_TOKEN_NOT_PRESENT;
  }

  // Closes every session of this process on the token (after Login), the
  // class under test's included; that also logs the process out.
  CK_RV CloseAllSessions() {
    session_ = CK_INVALID_HANDLE;
    return fn_->C_CloseAllSessions(slot_);
  }

  // Logs the whole process out of the token (after Login).
  CK_RV Logout() { return fn_->C_Logout(session_); }

  // The handle of the one object labelled `label`, or CK_INVALID_HANDLE.
  CK_OBJECT_HANDLE Find(const std::string& label) {
    CK_ATTRIBUTE tmpl = {CKA_LABEL, const_cast<char*>(label.data()), label.size()};
    CK_OBJECT_HANDLE found[2];
    CK_ULONG n = 0;
    if (fn_->C_FindObjectsInit(session_, &tmpl, 1) != CKR_OK) return CK_INVALID_HANDLE;
    fn_->C_FindObjects(session_, found, 2, &n);
    fn_->C_FindObjectsFinal(session_);
    return n == 1 ? found[0] : CK_INVALID_HANDLE;
  }

  CK_RV GetAttribute(CK_OBJECT_HANDLE object, CK_ATTRIBUTE_TYPE type, std::string* value) {
    CK_ATTRIBUTE attr = {type, nullptr, 0};
    CK_RV rv = fn_->C_GetAttributeValue(session_, object, &attr, 1);
    if (rv != CKR_OK) return rv;
    value->resize(attr.ulValueLen);
    attr.pValue = value->data();
    return fn_->C_GetAttributeValue(session_, object, &attr, 1);
  }

  // Plants an AES key with a known value, as a key ceremony would import one.
  CK_RV ImportAesKey(const std::string& label, const common::Bytes& value, bool extractable) {
    CK_OBJECT_CLASS cls = CKO_SECRET_KEY;
    CK_KEY_TYPE type = CKK_AES;
    CK_BBOOL yes = CK_TRUE, no = CK_FALSE;
    CK_BBOOL ex = extractable ? CK_TRUE : CK_FALSE, sens = extractable ? CK_FALSE : CK_TRUE;
    CK_ATTRIBUTE tmpl[] = {
        {CKA_CLASS, &cls, sizeof(cls)},
        {CKA_KEY_TYPE, &type, sizeof(type)},
        {CKA_TOKEN, &yes, sizeof(yes)},
        {CKA_PRIVATE, &yes, sizeof(yes)},
        {CKA_SENSITIVE, &sens, sizeof(sens)},
        {CKA_EXTRACTABLE, &ex, sizeof(ex)},
        {CKA_ENCRYPT, &yes, sizeof(yes)},
        {CKA_DECRYPT, &yes, sizeof(yes)},
        {CKA_WRAP, &no, sizeof(no)},
        {CKA_LABEL, const_cast<char*>(label.data()), label.size()},
        {CKA_VALUE, const_cast<uint8_t*>(value.data()), value.size()},
    };
    CK_OBJECT_HANDLE h;
    return fn_->C_CreateObject(session_, tmpl, std::size(tmpl), &h);
  }

 private:
  static CK_UTF8CHAR_PTR Utf8(const char* s) {
    return reinterpret_cast<CK_UTF8CHAR_PTR>(const_cast<char*>(s));
  }

  void* dl_ = nullptr;
  CK_FUNCTION_LIST_PTR fn_ = nullptr;
  bool ok_ = false;
  bool owns_init_ = false;
  CK_SLOT_ID slot_ = 0;
  CK_SESSION_HANDLE session_ = CK_INVALID_HANDLE;
};

class Pkcs11KekTest : public ::testing::Test {
 protected:
  void SetUp() override {
    module_ = ModulePath();
    if (access(module_.c_str(), R_OK) != 0) {
      GTEST_SKIP() << "PKCS#11 module " << module_
                   << " not found (Debian package libsofthsm2); skipping the PKCS#11 KEK tests";
    }
    static std::atomic<int> counter{0};
    dir_ = std::filesystem::path(::testing::TempDir()) /
           absl::StrCat("pkcs11_kek_", getpid(), "_", counter++);
    std::filesystem::remove_all(dir_);
    std::filesystem::create_directories(dir_ / "tokens");
    const std::string conf = (dir_ / "softhsm2.conf").string();
    std::ofstream(conf) << "directories.tokendir = " << (dir_ / "tokens").string() << "\n"
                        << "objectstore.backend = file\nlog.level = ERROR\n"
                        << "slots.removable = false\n";
    ASSERT_EQ(setenv("SOFTHSM2_CONF", conf.c_str(), 1), 0);
    RawToken raw(module_);
    ASSERT_TRUE(raw.ok());
    ASSERT_EQ(raw.InitToken(), CKR_OK);
  }

  void TearDown() override {
    if (!dir_.empty()) std::filesystem::remove_all(dir_);
  }

  Pkcs11KekOptions Options(absl::string_view pin = kUserPin) {
    Pkcs11KekOptions options;
    options.module_path = module_;
    options.token_label = kToken;
    options.key_label = kKeyLabel;
    options.pin = Pin(pin);
    return options;
  }

  std::unique_ptr<Pkcs11Kek> NewKek() {
    auto kek = Pkcs11Kek::Create(Options());
    EXPECT_TRUE(kek.ok()) << kek.status();
    return kek.ok() ? std::move(*kek) : nullptr;
  }

  std::string module_;
  std::filesystem::path dir_;
};

TEST_F(Pkcs11KekTest, WrapUnwrapRoundTrip) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.1");
  for (size_t size : {16, 32, 64}) {
    const common::Bytes key = TestKey(size, 1);
    auto wrapped = kek->Wrap(key, "default/secret/key@3");
    ASSERT_TRUE(wrapped.ok()) << wrapped.status();
    EXPECT_EQ(wrapped->kek_id, "pkcs11:kbs-kek.1");
    EXPECT_EQ(wrapped->wrapped.size(), 12 + size + 16);
    auto plain = kek->Unwrap(*wrapped, "default/secret/key@3");
    ASSERT_TRUE(plain.ok()) << plain.status();
    EXPECT_EQ(common::ToString(plain->span()), common::ToString(key));
  }
  // Fresh IVs: the same key wraps differently each time.
  const common::Bytes key = TestKey(32, 2);
  EXPECT_NE(kek->Wrap(key, "c")->wrapped, kek->Wrap(key, "c")->wrapped);
  EXPECT_EQ(kek->Wrap(TestKey(15, 0), "c").status().code(), absl::StatusCode::kInvalidArgument);
  EXPECT_EQ(kek->Wrap(TestKey(65, 0), "c").status().code(), absl::StatusCode::kInvalidArgument);
}

TEST_F(Pkcs11KekTest, KeysPersistAcrossRestarts) {
  WrappedKey wrapped;
  {
    auto kek = NewKek();
    ASSERT_NE(kek, nullptr);
    wrapped = *kek->Wrap(TestKey(32, 3), "ctx");
  }
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.1");
  auto plain = kek->Unwrap(wrapped, "ctx");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(common::ToString(plain->span()), common::ToString(TestKey(32, 3)));
}

TEST_F(Pkcs11KekTest, WrongContextIsDataLoss) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  auto wrapped = kek->Wrap(TestKey(32, 4), "default/a/b@1");
  ASSERT_TRUE(wrapped.ok()) << wrapped.status();
  for (absl::string_view other : {"default/a/b@2", "", "default/a/b@1 "}) {
    auto plain = kek->Unwrap(*wrapped, other);
    EXPECT_EQ(plain.status().code(), absl::StatusCode::kDataLoss) << plain.status();
  }
  // Still healthy afterwards: a failed tag is not an HSM failure.
  EXPECT_TRUE(kek->Unwrap(*wrapped, "default/a/b@1").ok());
}

TEST_F(Pkcs11KekTest, TamperedWrappedKeyIsDataLoss) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  const WrappedKey good = *kek->Wrap(TestKey(32, 5), "ctx");
  // One mutation per case: IV, ciphertext, tag, truncation, extension.
  for (size_t at : {size_t{0}, size_t{11}, size_t{12}, size_t{43}, size_t{44}, size_t{59}}) {
    WrappedKey bad = good;
    bad.wrapped[at] ^= 0x01;
    auto plain = kek->Unwrap(bad, "ctx");
    EXPECT_EQ(plain.status().code(), absl::StatusCode::kDataLoss) << "byte " << at;
  }
  WrappedKey truncated = good;
  truncated.wrapped.pop_back();
  EXPECT_EQ(kek->Unwrap(truncated, "ctx").status().code(), absl::StatusCode::kDataLoss);
  WrappedKey extended = good;
  extended.wrapped.push_back('x');
  EXPECT_EQ(kek->Unwrap(extended, "ctx").status().code(), absl::StatusCode::kDataLoss);
  WrappedKey tiny = good;
  tiny.wrapped.resize(20);
  EXPECT_EQ(kek->Unwrap(tiny, "ctx").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(kek->Unwrap(good, "ctx").ok());
}

TEST_F(Pkcs11KekTest, UnknownKekIdIsNotFound) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  WrappedKey wrapped = *kek->Wrap(TestKey(32, 6), "ctx");
  for (const char* id : {"pkcs11:kbs-kek.2", "pkcs11:kbs-kek.01", "pkcs11:kbs-kek.0",
                         "pkcs11:kbs-kek.-1", "pkcs11:kbs-kek", "pkcs11:other.1", "local:1", ""}) {
    WrappedKey other = wrapped;
    other.kek_id = id;
    auto plain = kek->Unwrap(other, "ctx");
    EXPECT_EQ(plain.status().code(), absl::StatusCode::kNotFound) << id << ": " << plain.status();
  }
}

TEST_F(Pkcs11KekTest, RotateKeepsOldVersionsForUnwrap) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  const WrappedKey old = *kek->Wrap(TestKey(32, 7), "ctx");
  auto id = kek->Rotate();
  ASSERT_TRUE(id.ok()) << id.status();
  EXPECT_EQ(*id, "pkcs11:kbs-kek.2");
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.2");
  const WrappedKey fresh = *kek->Wrap(TestKey(32, 8), "ctx");
  EXPECT_EQ(fresh.kek_id, "pkcs11:kbs-kek.2");
  EXPECT_EQ(common::ToString(kek->Unwrap(old, "ctx")->span()), common::ToString(TestKey(32, 7)));
  EXPECT_EQ(common::ToString(kek->Unwrap(fresh, "ctx")->span()), common::ToString(TestKey(32, 8)));
  // A wrap claiming the other version fails authentication.
  WrappedKey relabelled = old;
  relabelled.kek_id = fresh.kek_id;
  EXPECT_EQ(kek->Unwrap(relabelled, "ctx").status().code(), absl::StatusCode::kDataLoss);
  EXPECT_EQ(*kek->Rotate(), "pkcs11:kbs-kek.3");
  kek.reset();

  // After a restart the highest version is current.
  kek = NewKek();
  ASSERT_NE(kek, nullptr);
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.3");
  EXPECT_TRUE(kek->Unwrap(old, "ctx").ok());
  EXPECT_TRUE(kek->Unwrap(fresh, "ctx").ok());
}

TEST_F(Pkcs11KekTest, SecondInstanceFindsVersionsRotatedByFirst) {
  auto a = NewKek();
  auto b = NewKek();  // joins the module initialised by `a`
  ASSERT_NE(a, nullptr);
  ASSERT_NE(b, nullptr);
  ASSERT_TRUE(a->Rotate().ok());
  const WrappedKey wrapped = *a->Wrap(TestKey(32, 9), "ctx");
  EXPECT_EQ(b->current_id(), "pkcs11:kbs-kek.1");
  auto plain = b->Unwrap(wrapped, "ctx");
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(b->Rotate().value_or("?"), "pkcs11:kbs-kek.3");  // rescans the token
  b.reset();
  EXPECT_TRUE(a->Unwrap(wrapped, "ctx").ok());
}

TEST_F(Pkcs11KekTest, KekIsNotExtractable) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  RawToken raw(module_);
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw.Login(), CKR_OK);
  const CK_OBJECT_HANDLE key = raw.Find("kbs-kek.1");
  ASSERT_NE(key, CK_INVALID_HANDLE);
  std::string value;
  EXPECT_EQ(raw.GetAttribute(key, CKA_VALUE, &value), CKR_ATTRIBUTE_SENSITIVE);
  std::string flag;
  ASSERT_EQ(raw.GetAttribute(key, CKA_EXTRACTABLE, &flag), CKR_OK);
  EXPECT_EQ(flag, std::string(1, CK_FALSE));
  ASSERT_EQ(raw.GetAttribute(key, CKA_NEVER_EXTRACTABLE, &flag), CKR_OK);
  EXPECT_EQ(flag, std::string(1, CK_TRUE));
  ASSERT_EQ(raw.GetAttribute(key, CKA_SENSITIVE, &flag), CKR_OK);
  EXPECT_EQ(flag, std::string(1, CK_TRUE));
  ASSERT_EQ(raw.GetAttribute(key, CKA_WRAP, &flag), CKR_OK);
  EXPECT_EQ(flag, std::string(1, CK_FALSE));
  ASSERT_EQ(raw.GetAttribute(key, CKA_PRIVATE, &flag), CKR_OK);
  EXPECT_EQ(flag, std::string(1, CK_TRUE));
}

TEST_F(Pkcs11KekTest, WrappedFormatIsStandardAesGcm) {
  // An imported key whose value we know: the wrap must open with plain
  // AES-256-GCM, iv || ciphertext || tag, AAD "<kek id>\n<context>".
  const common::Bytes kek_value = TestKey(32, 10);
  {
    RawToken raw(module_);
    ASSERT_TRUE(raw.ok());
    ASSERT_EQ(raw.Login(), CKR_OK);
    ASSERT_EQ(raw.ImportAesKey("kbs-kek.1", kek_value, /*extractable=*/false), CKR_OK);
  }
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  const WrappedKey wrapped = *kek->Wrap(TestKey(32, 11), "default/x/y@1");
  absl::string_view w = wrapped.wrapped;
  auto plain = common::AesGcmOpen(kek_value, common::AsSpan(w.substr(0, 12)),
                                  common::AsSpan("pkcs11:kbs-kek.1\ndefault/x/y@1"),
                                  common::AsSpan(w.substr(12, 32)), common::AsSpan(w.substr(44)));
  ASSERT_TRUE(plain.ok()) << plain.status();
  EXPECT_EQ(common::ToString(plain->span()), common::ToString(TestKey(32, 11)));
}

TEST_F(Pkcs11KekTest, RefusesExtractableKek) {
  {
    RawToken raw(module_);
    ASSERT_TRUE(raw.ok());
    ASSERT_EQ(raw.Login(), CKR_OK);
    ASSERT_EQ(raw.ImportAesKey("kbs-kek.1", TestKey(32, 12), /*extractable=*/true), CKR_OK);
  }
  auto kek = Pkcs11Kek::Create(Options());
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kFailedPrecondition) << kek.status();
}

TEST_F(Pkcs11KekTest, NoVersionAndNoCreateIsFailedPrecondition) {
  Pkcs11KekOptions options = Options();
  options.create_if_missing = false;
  auto kek = Pkcs11Kek::Create(std::move(options));
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kFailedPrecondition) << kek.status();
}

TEST_F(Pkcs11KekTest, WrongPinIsUnavailableWithoutThePin) {
  constexpr char kWrongPin[] = "wrong-pin-31337";
  auto kek = Pkcs11Kek::Create(Options(kWrongPin));
  ASSERT_FALSE(kek.ok());
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kUnavailable);
  EXPECT_THAT(StatusText(kek.status()), HasSubstr("CKR_PIN_INCORRECT"));
  EXPECT_THAT(StatusText(kek.status()), Not(HasSubstr(kWrongPin)));
  EXPECT_THAT(StatusText(kek.status()), Not(HasSubstr(kUserPin)));
  // The right PIN still works (nothing was locked).
  EXPECT_NE(NewKek(), nullptr);
}

TEST_F(Pkcs11KekTest, UnknownTokenIsUnavailable) {
  Pkcs11KekOptions options = Options();
  options.token_label = "no-such-token";
  auto kek = Pkcs11Kek::Create(std::move(options));
  EXPECT_EQ(kek.status().code(), absl::StatusCode::kUnavailable) << kek.status();
}

// start_unavailable: the token is away when the KBS boots. The Kek exists,
// every call fails Unavailable, and once the token is back (after the
// backoff) the versions are loaded and wrapping works.
TEST_F(Pkcs11KekTest, StartsWithoutTheTokenAndRecoversWhenItAppears) {
  {
    auto first = NewKek();  // creates kbs-kek.1
    ASSERT_NE(first, nullptr);
  }
  std::filesystem::rename(dir_ / "tokens", dir_ / "tokens.away");
  common::FakeClock clock(absl::FromUnixSeconds(1800000000));
  Pkcs11KekOptions options = Options();
  options.clock = &clock;
  EXPECT_EQ(Pkcs11Kek::Create(Options()).status().code(), absl::StatusCode::kUnavailable);
  options.start_unavailable = true;
  auto created = Pkcs11Kek::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto kek = std::move(*created);
  auto wrap = kek->Wrap(TestKey(32, 1), "ctx");
  EXPECT_EQ(wrap.status().code(), absl::StatusCode::kUnavailable) << wrap.status();
  EXPECT_EQ(
      kek->Unwrap(WrappedKey{"pkcs11:kbs-kek.1", std::string(60, 'x')}, "ctx").status().code(),
      absl::StatusCode::kUnavailable);
  EXPECT_EQ(kek->Rotate().status().code(), absl::StatusCode::kUnavailable);

  std::filesystem::rename(dir_ / "tokens.away", dir_ / "tokens");
  clock.Advance(absl::Seconds(10));
  wrap = kek->Wrap(TestKey(32, 1), "ctx");
  ASSERT_TRUE(wrap.ok()) << wrap.status();
  EXPECT_EQ(wrap->kek_id, "pkcs11:kbs-kek.1");  // the existing version, found late
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.1");
  EXPECT_TRUE(kek->Unwrap(*wrap, "ctx").ok());
}

// A PIN the token refuses at boot: Unavailable on every call, never retried
// (the token would lock the PIN), and the PIN never appears in errors.
TEST_F(Pkcs11KekTest, StartsWithARejectedPinAndReleasesNothing) {
  constexpr char kWrongPin[] = "wrong-pin-31337";
  Pkcs11KekOptions options = Options(kWrongPin);
  options.start_unavailable = true;
  auto created = Pkcs11Kek::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  for (int i = 0; i < 3; ++i) {
    auto wrap = (*created)->Wrap(TestKey(32, 1), "ctx");
    EXPECT_EQ(wrap.status().code(), absl::StatusCode::kUnavailable);
    EXPECT_THAT(StatusText(wrap.status()), HasSubstr("rejected the PIN"));
    EXPECT_THAT(StatusText(wrap.status()), Not(HasSubstr(kWrongPin)));
  }
  // One failed login only: the right PIN still works.
  EXPECT_NE(NewKek(), nullptr);
}

TEST_F(Pkcs11KekTest, BadOptionsAreInvalidArgument) {
  Pkcs11KekOptions relative = Options();
  relative.module_path = "libsofthsm2.so";
  EXPECT_EQ(Pkcs11Kek::Create(std::move(relative)).status().code(),
            absl::StatusCode::kInvalidArgument);
  Pkcs11KekOptions label = Options();
  label.key_label = "kek with spaces";
  EXPECT_EQ(Pkcs11Kek::Create(std::move(label)).status().code(),
            absl::StatusCode::kInvalidArgument);
  Pkcs11KekOptions missing = Options();
  missing.module_path = "/nonexistent/libpkcs11.so";
  EXPECT_EQ(Pkcs11Kek::Create(std::move(missing)).status().code(),
            absl::StatusCode::kFailedPrecondition);
}

// SoftHSM2 keeps a token as a directory of files. Moving the directory away
// makes the token vanish under the running module (C_GetTokenInfo fails,
// key handles go invalid, C_FindObjects finds nothing); it only comes back
// after C_Finalize/C_Initialize, which the reconnection does.
TEST_F(Pkcs11KekTest, HsmRemovedIsUnavailableAndRecoversWithBackoff) {
  common::FakeClock clock(absl::FromUnixSeconds(1800000000));
  Pkcs11KekOptions options = Options();
  options.clock = &clock;
  auto created = Pkcs11Kek::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto kek = std::move(*created);
  const WrappedKey before = *kek->Wrap(TestKey(32, 13), "ctx");

  std::filesystem::rename(dir_ / "tokens", dir_ / "tokens.away");
  auto wrap = kek->Wrap(TestKey(32, 14), "ctx");
  EXPECT_EQ(wrap.status().code(), absl::StatusCode::kUnavailable) << wrap.status();
  EXPECT_THAT(std::string(wrap.status().message()), StartsWith("HSM unavailable: CKR_"));
  // The next call tries to reconnect at once and fails (SoftHSM2's
  // C_Initialize returns CKR_GENERAL_ERROR without its token directory),
  // then backs off.
  auto unwrap = kek->Unwrap(before, "ctx");
  EXPECT_EQ(unwrap.status().code(), absl::StatusCode::kUnavailable) << unwrap.status();
  EXPECT_THAT(std::string(unwrap.status().message()), StartsWith("HSM unavailable: "));
  EXPECT_EQ(kek->Rotate().status().code(), absl::StatusCode::kUnavailable);

  std::filesystem::rename(dir_ / "tokens.away", dir_ / "tokens");
  // Within the backoff nothing touches the module, even though it is back.
  EXPECT_EQ(kek->Unwrap(before, "ctx").status().code(), absl::StatusCode::kUnavailable);
  clock.Advance(absl::Milliseconds(150));
  unwrap = kek->Unwrap(before, "ctx");
  ASSERT_TRUE(unwrap.ok()) << unwrap.status();
  EXPECT_EQ(common::ToString(unwrap->span()), common::ToString(TestKey(32, 13)));
  wrap = kek->Wrap(TestKey(32, 14), "ctx");
  ASSERT_TRUE(wrap.ok()) << wrap.status();
  EXPECT_TRUE(kek->Unwrap(*wrap, "ctx").ok());
  EXPECT_EQ(kek->Rotate().value_or("?"), "pkcs11:kbs-kek.2");
}

// Sessions lost underneath (as when a network HSM drops them): the call
// that notices fails, the next one reconnects at once and logs in again.
TEST_F(Pkcs11KekTest, LostSessionsAreUnavailableThenReopened) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  const WrappedKey before = *kek->Wrap(TestKey(32, 15), "ctx");
  RawToken raw(module_);
  ASSERT_TRUE(raw.ok());
  ASSERT_EQ(raw.Login(), CKR_OK);
  ASSERT_EQ(raw.CloseAllSessions(), CKR_OK);
  auto unwrap = kek->Unwrap(before, "ctx");
  EXPECT_EQ(unwrap.status().code(), absl::StatusCode::kUnavailable) << unwrap.status();
  EXPECT_THAT(std::string(unwrap.status().message()),
              StartsWith("HSM unavailable: CKR_SESSION_HANDLE_INVALID"));
  unwrap = kek->Unwrap(before, "ctx");
  ASSERT_TRUE(unwrap.ok()) << unwrap.status();
  EXPECT_EQ(common::ToString(unwrap->span()), common::ToString(TestKey(32, 15)));

  // A logout elsewhere in the process hides the private KEK objects: that
  // is Unavailable too, not NotFound, and the next call logs in again.
  ASSERT_TRUE(kek->Rotate().ok());
  const WrappedKey second = *kek->Wrap(TestKey(32, 16), "ctx");
  ASSERT_EQ(raw.Login(), CKR_OK);
  ASSERT_EQ(raw.Logout(), CKR_OK);
  auto wrap = kek->Wrap(TestKey(32, 17), "ctx");
  EXPECT_EQ(wrap.status().code(), absl::StatusCode::kUnavailable) << wrap.status();
  EXPECT_THAT(std::string(wrap.status().message()), HasSubstr("CKR_USER_NOT_LOGGED_IN"));
  unwrap = kek->Unwrap(second, "ctx");
  ASSERT_TRUE(unwrap.ok()) << unwrap.status();
  EXPECT_TRUE(kek->Unwrap(before, "ctx").ok());
}

// Eight threads keep wrapping and unwrapping while the token disappears and
// comes back: every call either works or is Unavailable (never DataLoss or
// NotFound for a good wrap), nothing deadlocks, and service resumes.
TEST_F(Pkcs11KekTest, OutageUnderLoadRecovers) {
  Pkcs11KekOptions options = Options();
  options.retry_backoff_min = absl::Milliseconds(5);
  options.retry_backoff_max = absl::Milliseconds(50);
  auto created = Pkcs11Kek::Create(std::move(options));
  ASSERT_TRUE(created.ok()) << created.status();
  auto kek = std::move(*created);
  const WrappedKey before = *kek->Wrap(TestKey(32, 16), "ctx");
  std::atomic<bool> stop{false};
  std::atomic<int> ok{0}, unavailable{0}, other{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 8; ++t) {
    threads.emplace_back([&, t] {
      while (!stop.load()) {
        absl::Status status;
        if (t % 2 == 0) {
          status = kek->Wrap(TestKey(32, 17), "ctx").status();
        } else {
          auto plain = kek->Unwrap(before, "ctx");
          status = plain.status();
          if (plain.ok() && common::ToString(plain->span()) != common::ToString(TestKey(32, 16))) {
            status = absl::InternalError("wrong key");
          }
        }
        if (status.ok()) {
          ++ok;
        } else if (absl::IsUnavailable(status)) {
          ++unavailable;
        } else {
          ++other;
          ADD_FAILURE() << status;
        }
      }
    });
  }
  absl::SleepFor(absl::Milliseconds(100));
  std::filesystem::rename(dir_ / "tokens", dir_ / "tokens.away");
  absl::SleepFor(absl::Milliseconds(300));
  std::filesystem::rename(dir_ / "tokens.away", dir_ / "tokens");
  const int ok_at_restore = ok.load();
  for (int i = 0; i < 100 && ok.load() < ok_at_restore + 100; ++i) {
    absl::SleepFor(absl::Milliseconds(50));
  }
  stop = true;
  for (auto& thread : threads) thread.join();
  EXPECT_GT(unavailable.load(), 0);
  EXPECT_GE(ok.load(), ok_at_restore + 100);
  EXPECT_EQ(other.load(), 0);
  EXPECT_TRUE(kek->Unwrap(before, "ctx").ok());
}

TEST_F(Pkcs11KekTest, ConcurrentWrapsFromEightThreads) {
  auto kek = NewKek();
  ASSERT_NE(kek, nullptr);
  constexpr int kThreads = 8;
  constexpr int kRounds = 50;
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i = 0; i < kRounds; ++i) {
        const common::Bytes key = TestKey(32, static_cast<uint8_t>(t * kRounds + i));
        const std::string context = absl::StrCat("t", t, "/", i);
        auto wrapped = kek->Wrap(key, context);
        if (!wrapped.ok()) {
          ++failures;
          continue;
        }
        auto plain = kek->Unwrap(*wrapped, context);
        if (!plain.ok() || common::ToString(plain->span()) != common::ToString(key)) ++failures;
      }
    });
  }
  // A rotation in the middle of it all.
  auto rotated = kek->Rotate();
  for (auto& thread : threads) thread.join();
  EXPECT_TRUE(rotated.ok()) << rotated.status();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(kek->current_id(), "pkcs11:kbs-kek.2");
}

}  // namespace
}  // namespace kbs::keystore
