// The broker: the one implementation of every KBS protocol rule. Front ends
// (HTTP, gRPC) decode their wire format into the types of protocol.h, call
// these methods and encode the result; they hold no protocol logic.
//
// The release path, failing closed at each step: session or token ->
// (policy) -> key store -> JWE to the TEE key. Attestation: session ->
// verify evidence and its binding (nonce, TEE key, init-data, devices) ->
// token.
#ifndef KBS_KBS_CORE_BROKER_H_
#define KBS_KBS_CORE_BROKER_H_

#include <memory>
#include <mutex>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/jose/jwe.h"
#include "kbs/admin/admin_auth.h"
#include "kbs/core/policy_store.h"
#include "kbs/core/protocol.h"
#include "kbs/keystore/key_store.h"
#include "kbs/session/session_store.h"
#include "kbs/token/token_service.h"
#include "policy/policy_engine.h"
#include "verifier/verifier_set.h"

namespace kbs {

struct AuthResponse {
  std::string session_id;
  std::string nonce;
  common::Json extra_params;  // "" unless a hash algorithm was selected
  absl::Time expires;
};

struct AttestResponse {
  std::string token;
  absl::Time token_expires;
  // The session's (unchanged) expiry, for re-sending the cookie.
  absl::Time session_expires;
};

// How a resource request proves it attested: the agent's session cookie,
// or the confidential-data-hub's Bearer token. Either may be empty.
struct Credentials {
  std::string session_id;
  std::string bearer_token;
};

// Thread-safe. All dependencies must outlive the broker.
class Broker final {
 public:
  struct Dependencies {
    const common::Clock* clock = nullptr;
    session::SessionStore* sessions = nullptr;
    const verifier::VerifierSet* verifiers = nullptr;
    const token::TokenService* tokens = nullptr;
    keystore::KeyStore* keys = nullptr;
    PolicyStore* policies = nullptr;
    const admin::AdminAuthenticator* admin = nullptr;
  };
  struct Options {
    policy::PolicyOptions policy;
  };

  // Loads the stored policy (or starts with deny-all).
  static absl::StatusOr<std::unique_ptr<Broker>> Create(Dependencies deps, Options options);

  // RCAR step 1. Errors: 401-class for version mismatch or a TEE this KBS
  // does not verify, InvalidArgument for an unknown TEE name, Unavailable
  // when the session table is full.
  absl::StatusOr<AuthResponse> Auth(const AuthRequest& request);

  // RCAR step 2, on the session created by Auth.
  absl::StatusOr<AttestResponse> Attest(absl::string_view session_id, const AttestRequest& request);

  // Resource release: the JWE of the value at `path` for the attested TEE.
  absl::StatusOr<jose::FlattenedJwe> GetResource(const Credentials& credentials,
                                                 absl::string_view path);

  // Admin operations; each authorizes `admin_token` first.
  absl::StatusOr<keystore::ResourceMetadata> PutResource(absl::string_view admin_token,
                                                         absl::string_view path,
                                                         absl::string_view value);
  absl::Status DeleteResource(absl::string_view admin_token, absl::string_view path);
  absl::StatusOr<std::vector<keystore::ResourceMetadata>> ListResources(
      absl::string_view admin_token);
  // Compiles, then persists and activates; on error the active policy stays.
  absl::StatusOr<std::string> SetPolicy(absl::string_view admin_token, absl::string_view document);
  absl::StatusOr<common::Json> GetPolicy(absl::string_view admin_token);

  const common::Json& jwks() const { return deps_.tokens->jwks(); }

 private:
  Broker(Dependencies deps, Options options, std::shared_ptr<const policy::PolicyEngine> engine)
      : deps_(deps), options_(options), policy_(std::move(engine)) {}

  absl::StatusOr<std::shared_ptr<const AttestationResult>> Authenticate(
      const Credentials& credentials, absl::Time now);
  std::shared_ptr<const policy::PolicyEngine> ActivePolicy() const;

  Dependencies deps_;
  Options options_;
  mutable std::mutex policy_mu_;
  std::shared_ptr<const policy::PolicyEngine> policy_;
};

}  // namespace kbs

#endif  // KBS_KBS_CORE_BROKER_H_
