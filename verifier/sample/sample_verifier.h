// The `sample` TEE (and its device twin `sampledevice`): trustee's software
// stand-in, `{"svn":"1","report_data":"<base64 of the digest>"}`. It proves
// only that the client knew the runtime data, nothing about hardware, so it
// is registered only when the operator enables it (--allow-sample-tee).
//
// Two optional members let tests play a real TEE:
//   "init_data": "<hex digest>"  checked against the digest of the init-data
//                                sent in /attest, like SNP's HOST_DATA;
//   "claims": {...}              extra claims reported as sample.<name>,
//                                e.g. {"measurement":"<hex>","debug":false}.
#ifndef KBS_VERIFIER_SAMPLE_SAMPLE_VERIFIER_H_
#define KBS_VERIFIER_SAMPLE_SAMPLE_VERIFIER_H_

#include <optional>
#include <string>

#include "absl/status/statusor.h"
#include "common/json.h"
#include "verifier/verifier.h"

namespace kbs::verifier {

// The parsed evidence (parse step; nothing here is verified yet).
struct SampleEvidence {
  std::string svn;
  std::string report_data;               // decoded bytes
  std::optional<std::string> init_data;  // decoded bytes
  common::Json extra_claims = common::Json::object();

  // InvalidArgument naming the member at fault.
  static absl::StatusOr<SampleEvidence> Parse(const common::Json& evidence);
};

class SampleVerifier final : public Verifier {
 public:
  // `tee` is "sample" (class cpu) or "sampledevice" (class gpu).
  static std::unique_ptr<SampleVerifier> CreateCpu();
  static std::unique_ptr<SampleVerifier> CreateDevice();

  absl::string_view tee() const override { return tee_; }
  absl::string_view tee_class() const override { return tee_class_; }
  absl::StatusOr<VerifiedClaims> Verify(const common::Json& evidence,
                                        const EvidenceBinding& binding) const override;

 private:
  SampleVerifier(std::string tee, std::string tee_class)
      : tee_(std::move(tee)), tee_class_(std::move(tee_class)) {}
  std::string tee_;
  std::string tee_class_;
};

}  // namespace kbs::verifier

#endif  // KBS_VERIFIER_SAMPLE_SAMPLE_VERIFIER_H_
