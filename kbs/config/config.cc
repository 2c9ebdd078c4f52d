#include "kbs/config/config.h"

#include <arpa/inet.h>
#include <toml++/toml.h>

#include <set>

#include "absl/status/status.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "common/files.h"
#include "common/status_macros.h"

namespace kbs::config {
namespace {

absl::Status KeyError(absl::string_view key, const toml::node& node, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("config key ", key, " (line ", node.source().begin.line, "): ", what));
}

class Reader {
 public:
  explicit Reader(const toml::table& root) : root_(root) {}

  absl::Status String(absl::string_view table, absl::string_view key, std::string& out) {
    const toml::node* node = Find(table, key);
    if (node == nullptr) return absl::OkStatus();
    auto value = node->value<std::string>();
    if (!value.has_value() || !node->is_string()) {
      return KeyError(Name(table, key), *node, "must be a string");
    }
    out = *value;
    return absl::OkStatus();
  }
  absl::Status Bool(absl::string_view table, absl::string_view key, bool& out) {
    const toml::node* node = Find(table, key);
    if (node == nullptr) return absl::OkStatus();
    if (!node->is_boolean()) return KeyError(Name(table, key), *node, "must be true or false");
    out = *node->value<bool>();
    return absl::OkStatus();
  }
  template <typename Int>
  absl::Status Integer(absl::string_view table, absl::string_view key, Int& out, int64_t min,
                       int64_t max) {
    const toml::node* node = Find(table, key);
    if (node == nullptr) return absl::OkStatus();
    if (!node->is_integer()) return KeyError(Name(table, key), *node, "must be an integer");
    int64_t v = *node->value<int64_t>();
    if (v < min || v > max) {
      return KeyError(Name(table, key), *node, absl::StrCat("must be in [", min, ", ", max, "]"));
    }
    out = static_cast<Int>(v);
    return absl::OkStatus();
  }
  absl::Status StringList(absl::string_view table, absl::string_view key,
                          std::vector<std::string>& out, bool allow_single = false) {
    const toml::node* node = Find(table, key);
    if (node == nullptr) return absl::OkStatus();
    if (allow_single && node->is_string()) {
      out = {*node->value<std::string>()};
      return absl::OkStatus();
    }
    const toml::array* array = node->as_array();
    if (array == nullptr) return KeyError(Name(table, key), *node, "must be an array of strings");
    out.clear();
    for (const toml::node& element : *array) {
      if (!element.is_string()) {
        return KeyError(Name(table, key), element, "must be an array of strings");
      }
      out.push_back(*element.value<std::string>());
    }
    return absl::OkStatus();
  }

  // Every key present must have been read: catches typos.
  absl::Status CheckNoUnknownKeys() const {
    for (const auto& [table_name, table_node] : root_) {
      std::string table(table_name.str());
      const toml::table* t = table_node.as_table();
      if (t == nullptr) {
        return KeyError(table, table_node, "unknown top-level key (expected a [table])");
      }
      if (known_tables_.count(table) == 0) {
        return KeyError(table, table_node, "unknown table");
      }
      for (const auto& [key, node] : *t) {
        std::string full = absl::StrCat(table, ".", std::string(key.str()));
        if (read_.count(full) == 0) return KeyError(full, node, "unknown key");
      }
    }
    return absl::OkStatus();
  }

  void DeclareTable(absl::string_view table) { known_tables_.insert(std::string(table)); }
  void Declare(absl::string_view table, absl::string_view key) { read_.insert(Name(table, key)); }

 private:
  static std::string Name(absl::string_view table, absl::string_view key) {
    return absl::StrCat(table, ".", key);
  }
  const toml::node* Find(absl::string_view table, absl::string_view key) {
    known_tables_.insert(std::string(table));
    read_.insert(Name(table, key));
    const toml::table* t = root_[std::string_view(table.data(), table.size())].as_table();
    if (t == nullptr) return nullptr;
    return t->get(std::string_view(key.data(), key.size()));
  }

  const toml::table& root_;
  std::set<std::string> known_tables_;
  std::set<std::string> read_;
};

}  // namespace

absl::StatusOr<KbsConfig> ParseConfig(absl::string_view toml_text) {
  toml::table root;
  try {
    root = toml::parse(std::string_view(toml_text.data(), toml_text.size()));
  } catch (const toml::parse_error& err) {
    return absl::InvalidArgumentError(
        absl::StrCat("config is not valid TOML at line ", err.source().begin.line, ", column ",
                     err.source().begin.column, ": ", std::string(err.description())));
  }
  KbsConfig c;
  Reader r(root);
  constexpr int64_t kMaxInt = 1LL << 40;
  KBS_RETURN_IF_ERROR(r.String("server", "http", c.http_address));
  KBS_RETURN_IF_ERROR(r.String("server", "grpc", c.grpc_address));
  KBS_RETURN_IF_ERROR(r.Bool("server", "insecure_http", c.insecure_http));
  KBS_RETURN_IF_ERROR(r.String("server", "tls_cert", c.tls_cert));
  KBS_RETURN_IF_ERROR(r.String("server", "tls_key", c.tls_key));
  KBS_RETURN_IF_ERROR(r.Integer("server", "threads", c.threads, 0, 256));
  KBS_RETURN_IF_ERROR(
      r.Integer("server", "max_header_field_bytes", c.max_header_field_bytes, 8192, 16 << 20));
  KBS_RETURN_IF_ERROR(
      r.Integer("server", "max_request_head_bytes", c.max_request_head_bytes, 8192, 64 << 20));
  KBS_RETURN_IF_ERROR(r.Integer("server", "max_body_bytes", c.max_body_bytes, 1024, 1 << 30));
  KBS_RETURN_IF_ERROR(r.Integer("server", "read_timeout", c.read_timeout_secs, 1, 3600));
  KBS_RETURN_IF_ERROR(r.Integer("server", "idle_timeout", c.idle_timeout_secs, 1, 86400));
  KBS_RETURN_IF_ERROR(
      r.Integer("server", "max_requests_in_progress", c.max_requests_in_progress, 16, 1 << 20));
  KBS_RETURN_IF_ERROR(r.String("storage", "data_dir", c.data_dir));
  KBS_RETURN_IF_ERROR(r.Bool("attestation", "allow_sample_tee", c.allow_sample_tee));
  KBS_RETURN_IF_ERROR(
      r.Integer("attestation", "session_timeout", c.session_timeout_secs, 1, 86400));
  KBS_RETURN_IF_ERROR(r.Integer("attestation", "max_sessions", c.max_sessions, 1, kMaxInt));
  KBS_RETURN_IF_ERROR(r.Bool("snp", "enabled", c.snp_enabled));
  KBS_RETURN_IF_ERROR(r.String("snp", "collateral_dir", c.snp_collateral_dir));
  KBS_RETURN_IF_ERROR(r.String("snp", "kds_url", c.snp_kds_url));
  KBS_RETURN_IF_ERROR(r.Integer("snp", "kds_min_interval", c.snp_kds_min_interval_secs, 0, 3600));
  KBS_RETURN_IF_ERROR(
      r.Integer("snp", "collateral_timeout", c.snp_collateral_timeout_secs, 1, 600));
  KBS_RETURN_IF_ERROR(r.StringList("snp", "trusted_arks", c.snp_trusted_arks));
  KBS_RETURN_IF_ERROR(r.String("keystore", "backend", c.keystore_backend));
  KBS_RETURN_IF_ERROR(r.String("keystore", "pkcs11_module", c.pkcs11_module));
  KBS_RETURN_IF_ERROR(r.String("keystore", "pkcs11_token", c.pkcs11_token));
  KBS_RETURN_IF_ERROR(r.String("keystore", "pkcs11_key_label", c.pkcs11_key_label));
  KBS_RETURN_IF_ERROR(r.String("keystore", "pkcs11_pin_file", c.pkcs11_pin_file));
  KBS_RETURN_IF_ERROR(r.String("keystore", "pkcs11_pin_env", c.pkcs11_pin_env));
  KBS_RETURN_IF_ERROR(r.Integer("keystore", "pkcs11_sessions", c.pkcs11_sessions, 1, 64));
  KBS_RETURN_IF_ERROR(r.Bool("tdx", "enabled", c.tdx_enabled));
  KBS_RETURN_IF_ERROR(r.Bool("sgx", "enabled", c.sgx_enabled));
  KBS_RETURN_IF_ERROR(r.String("dcap", "collateral_dir", c.dcap_collateral_dir));
  KBS_RETURN_IF_ERROR(r.String("dcap", "pcs_url", c.dcap_pcs_url));
  KBS_RETURN_IF_ERROR(r.String("dcap", "root_ca_crl_url", c.dcap_root_ca_crl_url));
  KBS_RETURN_IF_ERROR(r.String("dcap", "pcs_api_key_file", c.dcap_pcs_api_key_file));
  KBS_RETURN_IF_ERROR(
      r.Integer("dcap", "collateral_timeout", c.dcap_collateral_timeout_secs, 1, 600));
  KBS_RETURN_IF_ERROR(r.StringList("dcap", "trusted_roots", c.dcap_trusted_roots));
  KBS_RETURN_IF_ERROR(
      r.Integer("policy", "max_expression_bytes", c.policy_max_expression_bytes, 16, 65536));
  KBS_RETURN_IF_ERROR(
      r.Integer("policy", "max_expression_depth", c.policy_max_expression_depth, 4, 256));
  KBS_RETURN_IF_ERROR(
      r.Integer("policy", "max_evaluation_steps", c.policy_max_evaluation_steps, 10, 1000000));
  KBS_RETURN_IF_ERROR(r.Integer("token", "lifetime", c.token_lifetime_secs, 1, 86400));
  KBS_RETURN_IF_ERROR(r.String("token", "issuer", c.token_issuer));
  KBS_RETURN_IF_ERROR(r.StringList("token", "audience", c.token_audience, /*allow_single=*/true));
  KBS_RETURN_IF_ERROR(r.String("token", "jwks_uri", c.token_jwks_uri));
  KBS_RETURN_IF_ERROR(r.Integer("token", "clock_skew", c.token_clock_skew_secs, 0, 3600));
  KBS_RETURN_IF_ERROR(r.Integer("token", "key_rotation_days", c.token_key_rotation_days, 0, 3650));
  KBS_RETURN_IF_ERROR(r.Bool("audit", "record_attestations", c.record_attestations));
  KBS_RETURN_IF_ERROR(r.StringList("admin", "public_keys", c.admin_public_keys));
  KBS_RETURN_IF_ERROR(r.StringList("audit", "public_keys", c.auditor_public_keys));
  KBS_RETURN_IF_ERROR(r.String("audit", "origin", c.receipts_origin));
  KBS_RETURN_IF_ERROR(
      r.Integer("audit", "checkpoint_interval", c.checkpoint_interval_secs, 1, 86400));
  KBS_RETURN_IF_ERROR(
      r.Integer("audit", "evidence_retention_days", c.evidence_retention_days, 0, 36500));
  KBS_RETURN_IF_ERROR(
      r.Integer("audit", "group_commit_delay_us", c.group_commit_delay_us, 0, 100000));
  KBS_RETURN_IF_ERROR(r.String("log", "level", c.log_level));
  KBS_RETURN_IF_ERROR(r.CheckNoUnknownKeys());
  return c;
}

absl::StatusOr<KbsConfig> LoadConfigFile(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(std::string text, common::ReadFile(path, 1 << 20));
  auto config = ParseConfig(text);
  if (!config.ok()) {
    return absl::InvalidArgumentError(absl::StrCat(path, ": ", config.status().message()));
  }
  return config;
}

absl::StatusOr<HostPort> ParseHostPort(absl::string_view address) {
  HostPort out;
  absl::string_view host, port;
  if (!address.empty() && address.front() == '[') {
    size_t close = address.find(']');
    if (close == absl::string_view::npos || close + 1 >= address.size() ||
        address[close + 1] != ':') {
      return absl::InvalidArgumentError(absl::StrCat("invalid address \"", address, "\""));
    }
    host = address.substr(1, close - 1);
    port = address.substr(close + 2);
  } else {
    size_t colon = address.rfind(':');
    if (colon == absl::string_view::npos) {
      return absl::InvalidArgumentError(
          absl::StrCat("invalid address \"", address, "\" (expected HOST:PORT)"));
    }
    host = address.substr(0, colon);
    port = address.substr(colon + 1);
  }
  uint32_t port_number = 0;
  if (!absl::SimpleAtoi(port, &port_number) || port_number > 65535) {
    return absl::InvalidArgumentError(absl::StrCat("invalid port in \"", address, "\""));
  }
  out.port = static_cast<uint16_t>(port_number);
  out.host = host == "localhost" ? "127.0.0.1" : std::string(host);
  unsigned char buf[16];
  std::string h = out.host;
  if (inet_pton(AF_INET, h.c_str(), buf) != 1 && inet_pton(AF_INET6, h.c_str(), buf) != 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("invalid host in \"", address, "\" (use an IP address or localhost)"));
  }
  return out;
}

bool IsLoopback(absl::string_view ip) {
  std::string h(ip);
  unsigned char v4[4];
  if (inet_pton(AF_INET, h.c_str(), v4) == 1) return v4[0] == 127;
  unsigned char v6[16];
  if (inet_pton(AF_INET6, h.c_str(), v6) == 1) {
    static const unsigned char kLoopback[16] = {0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 1};
    return std::equal(v6, v6 + 16, kLoopback);
  }
  return false;
}

absl::Status ValidateConfig(const KbsConfig& c) {
  if (c.tls_cert.empty() != c.tls_key.empty()) {
    return absl::InvalidArgumentError("server.tls_cert and server.tls_key must be set together");
  }
  const bool tls = !c.tls_cert.empty();
  KBS_ASSIGN_OR_RETURN(HostPort http, ParseHostPort(c.http_address));
  if (!tls && !c.insecure_http && !IsLoopback(http.host)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "refusing plain HTTP on non-loopback address ", c.http_address,
        ": configure server.tls_cert/tls_key, or pass --insecure-http if TLS is terminated in "
        "front of the KBS"));
  }
  if (!c.grpc_address.empty()) {
    KBS_ASSIGN_OR_RETURN(HostPort grpc, ParseHostPort(c.grpc_address));
    if (!tls && !c.insecure_http && !IsLoopback(grpc.host)) {
      return absl::InvalidArgumentError(
          absl::StrCat("refusing plaintext gRPC on non-loopback address ", c.grpc_address,
                       ": configure TLS or pass --insecure-http"));
    }
  }
  if (c.max_request_head_bytes < c.max_header_field_bytes) {
    return absl::InvalidArgumentError(
        "server.max_request_head_bytes must be at least server.max_header_field_bytes");
  }
  if (c.data_dir.empty()) return absl::InvalidArgumentError("storage.data_dir must be set");
  if (!c.snp_kds_url.empty() && !absl::StartsWith(c.snp_kds_url, "https://") &&
      !absl::StartsWith(c.snp_kds_url, "http://")) {
    return absl::InvalidArgumentError("snp.kds_url must be an http(s):// URL or empty");
  }
  for (const std::string& ark : c.snp_trusted_arks) {
    size_t colon = ark.find(':');
    if (colon == std::string::npos || ark.size() - colon - 1 != 64) {
      return absl::InvalidArgumentError(absl::StrCat(
          "snp.trusted_arks entries are \"<Milan|Genoa|Turin>:<64 hex digits>\", not \"", ark,
          "\""));
    }
  }
  if (c.token_issuer.empty()) return absl::InvalidArgumentError("token.issuer must not be empty");
  for (const std::string& aud : c.token_audience) {
    if (aud.empty()) return absl::InvalidArgumentError("token.audience values must not be empty");
  }
  if (!c.token_jwks_uri.empty() && !absl::StartsWith(c.token_jwks_uri, "https://") &&
      !absl::StartsWith(c.token_jwks_uri, "http://")) {
    return absl::InvalidArgumentError("token.jwks_uri must be an http(s):// URL or empty");
  }
  if (c.keystore_backend != "local" && c.keystore_backend != "pkcs11") {
    return absl::InvalidArgumentError("keystore.backend must be \"local\" or \"pkcs11\"");
  }
  if (c.keystore_backend == "pkcs11") {
    if (c.pkcs11_module.empty() || c.pkcs11_token.empty()) {
      return absl::InvalidArgumentError(
          "keystore.backend = \"pkcs11\" needs keystore.pkcs11_module and keystore.pkcs11_token");
    }
    if (c.pkcs11_pin_file.empty() == c.pkcs11_pin_env.empty()) {
      return absl::InvalidArgumentError(
          "give the PKCS#11 PIN with exactly one of keystore.pkcs11_pin_file and "
          "keystore.pkcs11_pin_env (never in the configuration file)");
    }
  }
  for (const std::string* url : {&c.dcap_pcs_url, &c.dcap_root_ca_crl_url}) {
    if (!url->empty() && !absl::StartsWith(*url, "https://") &&
        !absl::StartsWith(*url, "http://")) {
      return absl::InvalidArgumentError(
          "dcap.pcs_url and dcap.root_ca_crl_url must be http(s):// URLs or empty");
    }
  }
  for (const std::string& root : c.dcap_trusted_roots) {
    if (root.size() != 64 || !std::all_of(root.begin(), root.end(), [](char ch) {
          return absl::ascii_isxdigit(static_cast<unsigned char>(ch));
        })) {
      return absl::InvalidArgumentError(absl::StrCat(
          "dcap.trusted_roots entries are 64 hex digits (SHA-256 of a root's DER), not \"",
          root.substr(0, 80), "\""));
    }
  }
  if (c.log_level != "debug" && c.log_level != "info" && c.log_level != "warning" &&
      c.log_level != "error") {
    return absl::InvalidArgumentError("log.level must be debug, info, warning or error");
  }
  return absl::OkStatus();
}

}  // namespace kbs::config
