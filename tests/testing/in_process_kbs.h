// Test helper: the KBS object graph wired in-process (as main.cc does, with
// a FakeClock and a temporary data directory), for unit tests of the broker
// and the adapters.
#ifndef KBS_TESTS_TESTING_IN_PROCESS_KBS_H_
#define KBS_TESTS_TESTING_IN_PROCESS_KBS_H_

#include <filesystem>
#include <memory>
#include <string>

#include "common/clock.h"
#include "common/openssl_util.h"
#include "kbs/admin/admin_auth.h"
#include "kbs/core/broker.h"
#include "kbs/keystore/local_kek.h"
#include "kbs/keystore/sqlite_key_store.h"
#include "kbs/session/session_store.h"
#include "kbs/token/token_service.h"
#include "verifier/verifier_set.h"

namespace kbs::testing {

struct InProcessKbsOptions {
  bool allow_sample = true;
  size_t max_sessions = 1000;
};

class InProcessKbs {
 public:
  static std::unique_ptr<InProcessKbs> Create(const InProcessKbsOptions& options = {});
  ~InProcessKbs();

  Broker* broker() { return broker_.get(); }
  common::FakeClock& clock() { return clock_; }
  session::SessionStore* sessions() { return sessions_.get(); }
  storage::SqliteDatabase* db() { return db_.get(); }

  // A fresh admin JWT signed by the trusted admin key.
  std::string AdminToken(absl::Duration lifetime = absl::Minutes(5));
  // A new broker over the same stores (a restart).
  absl::StatusOr<std::unique_ptr<Broker>> Reopen();

 private:
  InProcessKbs() = default;

  common::FakeClock clock_{absl::FromUnixSeconds(1800000000)};
  InProcessKbsOptions options_;
  std::filesystem::path dir_;
  std::unique_ptr<verifier::VerifierSet> verifiers_;
  std::unique_ptr<session::SessionStore> sessions_;
  std::unique_ptr<token::TokenService> tokens_;
  std::unique_ptr<storage::SqliteDatabase> db_;
  std::unique_ptr<keystore::LocalKek> kek_;
  std::unique_ptr<keystore::SqliteKeyStore> keys_;
  std::unique_ptr<PolicyStore> policies_;
  common::EvpPkeyPtr admin_key_;
  std::unique_ptr<admin::AdminAuthenticator> admin_;
  std::unique_ptr<Broker> broker_;
};

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_IN_PROCESS_KBS_H_
