// The guest side of RCAR for the `sample` TEE: what the CoCo attestation
// agent does on a machine without a TEE, used by `kbsctl attest`, kbs-bench
// and the tests. Produces the /attest body for a challenge and decrypts the
// resource JWE with the TEE key.
#ifndef KBS_KBS_CLIENT_SAMPLE_ATTESTER_H_
#define KBS_KBS_CLIENT_SAMPLE_ATTESTER_H_

#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "common/jose/jwe.h"
#include "common/jose/tee_key.h"
#include "common/json.h"
#include "kbs/core/protocol.h"

namespace kbs::client {

enum class TeeKeyType { kEcP256, kEcP521, kRsa };
absl::StatusOr<TeeKeyType> ParseTeeKeyType(absl::string_view name);  // ec-p256|ec-p521|rsa

// The TEE key pair the agent generates per attestation.
class TeeKeyPair final {
 public:
  static absl::StatusOr<TeeKeyPair> Generate(TeeKeyType type);
  EVP_PKEY* private_key() const { return key_.get(); }
  const jose::TeePublicKey& public_key() const { return public_; }

 private:
  TeeKeyPair(common::EvpPkeyPtr key, jose::TeePublicKey pub)
      : key_(std::move(key)), public_(std::move(pub)) {}
  common::EvpPkeyPtr key_;
  jose::TeePublicKey public_;
};

struct SampleEvidenceOptions {
  // Init-data TOML sent in /attest and bound into the evidence.
  std::optional<std::string> init_data_toml;
  // When false, the evidence omits `init_data` (to test a missing binding).
  bool bind_init_data = true;
  // Extra claims for the sample evidence (`claims`).
  common::Json claims = common::Json::object();
  // Devices to attest alongside ("sampledevice").
  std::vector<std::string> devices;
  // Corrupts the report data (to test the binding check).
  bool tamper_report_data = false;
};

// Produces a TEE's evidence bound to `report_data` (the runtime-data digest)
// and, when init-data is sent, to its digest.
using EvidenceMaker = std::function<absl::StatusOr<common::Json>(
    absl::string_view report_data, const std::optional<std::string>& init_data_digest)>;

// Builds the /attest request for `nonce` as the agent would, with evidence
// from `make_evidence` (no devices).
absl::StatusOr<AttestRequest> BuildAttestation(absl::string_view nonce, const TeeKeyPair& key,
                                               const EvidenceMaker& make_evidence,
                                               const std::optional<std::string>& init_data_toml);

// Builds the /attest request for `nonce` as the agent would.
absl::StatusOr<AttestRequest> BuildSampleAttestation(absl::string_view nonce, const TeeKeyPair& key,
                                                     const SampleEvidenceOptions& options);

// JSON encodings of the protocol messages, as the agent sends them.
std::string AuthRequestJson(absl::string_view tee);
std::string AttestRequestJson(const AttestRequest& request);

// Decrypts a resource response body (flattened JWE JSON).
absl::StatusOr<std::string> DecryptResource(absl::string_view jwe_json, const TeeKeyPair& key);

}  // namespace kbs::client

#endif  // KBS_KBS_CLIENT_SAMPLE_ATTESTER_H_
