// KBS configuration: TOML (deploy/kbs.toml documents every key), every key
// with a default, unknown keys rejected so typos do not silently fall back
// to defaults. Command-line flags override the file.
#ifndef KBS_KBS_CONFIG_CONFIG_H_
#define KBS_KBS_CONFIG_CONFIG_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace kbs::config {

struct KbsConfig {
  // [server]
  std::string http_address = "127.0.0.1:8080";
  std::string grpc_address = "127.0.0.1:50051";  // "" disables gRPC
  bool insecure_http = false;
  std::string tls_cert;
  std::string tls_key;
  int threads = 0;  // HTTP and gRPC handler threads each; 0: max(4, 2 per CPU)
  int64_t max_header_field_bytes = 128 * 1024;
  int64_t max_request_head_bytes = 256 * 1024;
  int64_t max_body_bytes = 2 * 1024 * 1024;
  int64_t read_timeout_secs = 30;
  int64_t idle_timeout_secs = 60;
  // HTTP requests (and gRPC Attest/GetResource calls) in progress at once;
  // more get 503 + Retry-After (RESOURCE_EXHAUSTED).
  int64_t max_requests_in_progress = 4096;
  // [storage]
  std::string data_dir = "./kbs-data";
  // [attestation]
  bool allow_sample_tee = false;
  int64_t session_timeout_secs = 300;
  int64_t max_sessions = 65536;
  // [snp]
  bool snp_enabled = true;
  std::string snp_collateral_dir;                       // "" -> <data_dir>/snp-collateral
  std::string snp_kds_url = "https://kdsintf.amd.com";  // "" disables KDS
  int64_t snp_kds_min_interval_secs = 10;
  int64_t snp_collateral_timeout_secs = 10;
  std::vector<std::string> snp_trusted_arks;  // "<Product>:<sha256 hex>"
  // [keystore]: where the key-encryption key lives.
  std::string keystore_backend = "local";  // "local" (master key file) or "pkcs11"
  std::string pkcs11_module;               // absolute path of the PKCS#11 module
  std::string pkcs11_token;                // token label
  std::string pkcs11_key_label = "kbs-kek";
  std::string pkcs11_pin_file;  // the user PIN, from a file (mode 0600) ...
  std::string pkcs11_pin_env;   // ... or an environment variable; never in this file
  int64_t pkcs11_sessions = 4;
  // [tdx], [sgx], [dcap] (Intel DCAP collateral shared by both)
  bool tdx_enabled = true;
  bool sgx_enabled = true;
  std::string dcap_collateral_dir;  // "" -> <data_dir>/dcap-collateral
  std::string dcap_pcs_url = "https://api.trustedservices.intel.com";  // "" disables
  std::string dcap_root_ca_crl_url =
      "https://certificates.trustedservices.intel.com/IntelSGXRootCA.der";  // "" skips
  std::string dcap_pcs_api_key_file;  // Ocp-Apim-Subscription-Key, if the PCS needs one
  int64_t dcap_collateral_timeout_secs = 10;
  std::vector<std::string> dcap_trusted_roots;  // extra root fingerprints, sha256 hex
  // [token]
  // Release-policy condition limits (docs/policy.md "Conditions").
  int64_t policy_max_expression_bytes = 1024;
  int64_t policy_max_expression_depth = 32;
  int64_t policy_max_evaluation_steps = 1000;

  int64_t token_lifetime_secs = 300;
  // `iss`; the KBS's http(s) URL turns on OIDC discovery (docs/oidc.md).
  std::string token_issuer = "kbs";
  std::vector<std::string> token_audience;  // `aud` (none by default)
  std::string token_jwks_uri;               // "" = issuer + /.well-known/jwks.json
  int64_t token_clock_skew_secs = 60;       // retired keys stay published this much longer
  int64_t token_key_rotation_days = 30;     // 0: rotate only on request
  // [admin]
  std::vector<std::string> admin_public_keys;  // PEM file paths

  // Receipt log (docs/audit.md).
  std::vector<std::string> auditor_public_keys;  // PEM file paths
  std::string receipts_origin = "kbs/receipts";  // checkpoint origin line
  int64_t checkpoint_interval_secs = 10;
  int64_t evidence_retention_days = 0;   // 0: keep forever
  bool record_attestations = true;       // an "attested" receipt per token issued
  int64_t group_commit_delay_us = 1000;  // ReceiptLog::Options::commit_delay
  // [log]
  std::string log_level = "info";
};

// Parses TOML text. InvalidArgument names the key (and line) at fault.
absl::StatusOr<KbsConfig> ParseConfig(absl::string_view toml_text);
absl::StatusOr<KbsConfig> LoadConfigFile(const std::string& path);

// Cross-field checks: ranges, TLS pairs, and the transport rule: plain HTTP
// (and plaintext gRPC) only on loopback addresses unless insecure_http.
absl::Status ValidateConfig(const KbsConfig& config);

struct HostPort {
  std::string host;  // IP literal (brackets removed); "localhost" -> 127.0.0.1
  uint16_t port = 0;
};
absl::StatusOr<HostPort> ParseHostPort(absl::string_view address);
bool IsLoopback(absl::string_view ip);

}  // namespace kbs::config

#endif  // KBS_KBS_CONFIG_CONFIG_H_
