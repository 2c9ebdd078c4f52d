#include "tests/testing/in_process_kbs.h"

#include <unistd.h>

#include <atomic>
#include <cstdlib>

#include "absl/strings/str_cat.h"
#include "common/crypto.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "verifier/sample/sample_verifier.h"

namespace kbs::testing {
namespace {

template <typename T>
T Must(absl::StatusOr<T> value, absl::string_view what) {
  if (!value.ok()) {
    std::fprintf(stderr, "InProcessKbs: %s: %s\n", std::string(what).c_str(),
                 std::string(value.status().message()).c_str());
    std::abort();
  }
  return *std::move(value);
}

std::filesystem::path NewTempDir() {
  static std::atomic<int> counter{0};
  const char* base = std::getenv("TEST_TMPDIR");
  std::filesystem::path dir = std::filesystem::path(base != nullptr ? base : "/tmp") /
                              absl::StrCat("kbs_inproc_", ::getpid(), "_", counter.fetch_add(1));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

std::unique_ptr<InProcessKbs> InProcessKbs::Create(const InProcessKbsOptions& options) {
  auto kbs = std::unique_ptr<InProcessKbs>(new InProcessKbs());
  kbs->options_ = options;
  kbs->dir_ = NewTempDir();
  kbs->verifiers_ = std::make_unique<verifier::VerifierSet>();
  if (options.allow_sample) {
    (void)kbs->verifiers_->Add(verifier::SampleVerifier::CreateCpu());
    (void)kbs->verifiers_->Add(verifier::SampleVerifier::CreateDevice());
  }
  kbs->sessions_ = std::make_unique<session::SessionStore>(
      session::SessionStore::Options{absl::Minutes(5), options.max_sessions});
  kbs->tokens_ =
      Must(token::TokenService::Create(Must(common::GenerateEcKey(common::EcCurve::kP256), "key"),
                                       token::TokenService::Options{}, &kbs->clock_),
           "token service");
  kbs->db_ = Must(storage::SqliteDatabase::Open((kbs->dir_ / "kbs.db").string(), 2, ""), "db");
  kbs->kek_ = Must(keystore::LocalKek::Open((kbs->dir_ / "master.key").string()), "KEK");
  kbs->keys_ = Must(keystore::SqliteKeyStore::Create(kbs->db_.get(), kbs->kek_.get(), &kbs->clock_),
                    "key store");
  kbs->policies_ = Must(PolicyStore::Create(kbs->db_.get(), &kbs->clock_), "policy store");
  kbs->admin_key_ = Must(common::GenerateEd25519Key(), "admin key");
  kbs->admin_ =
      Must(admin::AdminAuthenticator::Create(
               {Must(common::PublicKeyToPem(kbs->admin_key_.get()), "pem")}, &kbs->clock_),
           "admin");
  kbs->broker_ = Must(kbs->Reopen(), "broker");
  return kbs;
}

InProcessKbs::~InProcessKbs() {
  broker_.reset();
  db_.reset();
  std::error_code ignored;
  std::filesystem::remove_all(dir_, ignored);
}

absl::StatusOr<std::unique_ptr<Broker>> InProcessKbs::Reopen() {
  Broker::Dependencies deps{&clock_,     sessions_.get(), verifiers_.get(), tokens_.get(),
                            keys_.get(), policies_.get(), admin_.get()};
  deps.kek = kek_.get();
  Broker::Options options;
  options.policy.sample_tee_enabled = options_.allow_sample;
  return Broker::Create(deps, options);
}

std::string InProcessKbs::AdminToken(absl::Duration lifetime) {
  auto signer =
      Must(jose::JwtSigner::Create(Must(
               common::PrivateKeyFromPem(Must(common::PrivateKeyToPem(admin_key_.get()), "pem")),
               "key")),
           "signer");
  return Must(signer->Sign(common::Json{{"iat", absl::ToUnixSeconds(clock_.Now())},
                                        {"exp", absl::ToUnixSeconds(clock_.Now() + lifetime)}}),
              "sign");
}

}  // namespace kbs::testing
