// A KBS protocol client over HTTP or gRPC: the RCAR steps and the admin
// operations, returning the server's errors as absl::Status (HTTP statuses
// and gRPC codes mapped back to the canonical codes; the message carries the
// error variant and detail). Used by kbsctl, kbs-bench and the end-to-end
// tests. Not thread-safe: one client per thread.
#ifndef KBS_KBS_CLIENT_KBS_CLIENT_H_
#define KBS_KBS_CLIENT_KBS_CLIENT_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/http_client.h"
#include "common/json.h"
#include "kbs/client/sample_attester.h"
#include "kbs/core/protocol.h"

namespace kbs::client {

class KbsClient {
 public:
  virtual ~KbsClient() = default;

  // RCAR. The client keeps the session (cookie / session id) and the token.
  virtual absl::StatusOr<std::string> Auth(absl::string_view tee) = 0;           // -> nonce
  virtual absl::StatusOr<std::string> Attest(const AttestRequest& request) = 0;  // -> token
  // -> the flattened JWE as JSON text. With `use_token`, authenticates by
  // Bearer token only (as the confidential-data-hub does); otherwise by the
  // session only (as the attestation agent does).
  virtual absl::StatusOr<std::string> GetResource(absl::string_view path, bool use_token) = 0;
  // Forgets the session and token (a new RCAR flow on the same connection).
  virtual void ResetSession() = 0;

  // Admin; `admin_token` is a signed admin JWT.
  virtual absl::StatusOr<common::Json> PutResource(absl::string_view admin_token,
                                                   absl::string_view path,
                                                   absl::string_view value) = 0;
  virtual absl::Status DeleteResource(absl::string_view admin_token, absl::string_view path) = 0;
  virtual absl::StatusOr<common::Json> ListResources(absl::string_view admin_token) = 0;
  virtual absl::StatusOr<std::string> SetPolicy(absl::string_view admin_token,
                                                absl::string_view document) = 0;
  virtual absl::StatusOr<common::Json> GetPolicy(absl::string_view admin_token) = 0;
  // {"id", "missing_refvalues": [...]}; `shadow` loads it beside the active one.
  virtual absl::StatusOr<common::Json> SetPolicyVersion(absl::string_view admin_token,
                                                        absl::string_view document,
                                                        bool shadow) = 0;
  virtual absl::StatusOr<common::Json> PolicyHistory(absl::string_view admin_token) = 0;
  virtual absl::StatusOr<std::string> ActivatePolicy(absl::string_view admin_token,
                                                     absl::string_view version, bool shadow) = 0;
  virtual absl::Status ClearShadowPolicy(absl::string_view admin_token) = 0;
  // The decision JSON (policy/policy_engine.h Decision::ToJson).
  virtual absl::StatusOr<common::Json> EvaluatePolicy(absl::string_view admin_token,
                                                      const common::Json& claims,
                                                      absl::string_view resource,
                                                      absl::string_view document) = 0;
  virtual absl::StatusOr<common::Json> SetRefValues(absl::string_view admin_token,
                                                    absl::string_view name,
                                                    absl::string_view document) = 0;
  virtual absl::StatusOr<common::Json> GetRefValues(absl::string_view admin_token,
                                                    absl::string_view name) = 0;
};

// `url`: http(s)://HOST:PORT.
absl::StatusOr<std::unique_ptr<KbsClient>> NewHttpKbsClient(
    absl::string_view url, const common::HttpClientOptions& options = {});
// `address`: HOST:PORT. `ca_file` non-empty -> TLS with that root.
absl::StatusOr<std::unique_ptr<KbsClient>> NewGrpcKbsClient(absl::string_view address,
                                                            const std::string& ca_file = "");

// Maps an HTTP error response back to a status ("<Variant>: <detail>").
absl::Status HttpErrorToStatus(int http_status, absl::string_view body);

struct RcarOptions {
  std::string tee = "sample";
  // When set, makes the evidence for `tee` (instead of sample evidence).
  EvidenceMaker evidence_maker;
  TeeKeyType key_type = TeeKeyType::kEcP256;
  SampleEvidenceOptions evidence;
  bool use_token = false;
};

// One full RCAR flow with a fresh TEE key: auth, attest (sample evidence,
// or `evidence_maker`'s), get `path`, decrypt. Returns the resource value.
absl::StatusOr<std::string> RunSampleRcar(KbsClient& client, absl::string_view path,
                                          const RcarOptions& options);

}  // namespace kbs::client

#endif  // KBS_KBS_CLIENT_KBS_CLIENT_H_
