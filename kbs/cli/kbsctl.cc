// kbsctl: the KBS command-line client for operators (admin keys, resources,
// policy) and a reference attester (`kbsctl attest`) that runs the whole
// RCAR flow with sample evidence.
#include <sys/stat.h>

#include <CLI/CLI.hpp>
#include <filesystem>
#include <iostream>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "common/clock.h"
#include "common/encoding.h"
#include "common/files.h"
#include "common/jose/jwt.h"
#include "common/keys.h"
#include "common/status_macros.h"
#include "common/x509.h"
#include "kbs/cli/audit_commands.h"
#include "kbs/client/kbs_client.h"
#include "kbs/client/tsm_attester.h"
#include "kbs/sealed/sealed.h"
#include "policy/policy_engine.h"
#include "verifier/dcap/collateral.h"
#include "verifier/sgx/sgx_verifier.h"
#include "verifier/snp/snp_verifier.h"
#include "verifier/tdx/tdx_verifier.h"

namespace {

using kbs::common::Json;

struct Globals {
  std::string url = "http://127.0.0.1:8080";
  std::string admin_key;
  std::string cacert;
  std::string protocol = "http";
};

int Fail(const absl::Status& status) {
  std::cerr << "kbsctl: " << status.message() << "\n";
  return status.code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
}

absl::StatusOr<std::unique_ptr<kbs::client::KbsClient>> Connect(const Globals& g) {
  if (g.protocol == "grpc") return kbs::client::NewGrpcKbsClient(g.url, g.cacert);
  if (g.protocol != "http") {
    return absl::InvalidArgumentError("--protocol must be http or grpc");
  }
  kbs::common::HttpClientOptions options;
  options.ca_file = g.cacert;
  return kbs::client::NewHttpKbsClient(g.url, options);
}

// A short-lived JWT for `role` ("admin", "auditor") signed with `key_file`.
absl::StatusOr<std::string> RoleToken(const std::string& key_file, absl::string_view role) {
  KBS_ASSIGN_OR_RETURN(std::string pem, kbs::common::ReadFile(key_file, 1 << 16));
  KBS_ASSIGN_OR_RETURN(kbs::common::EvpPkeyPtr key, kbs::common::PrivateKeyFromPem(pem));
  KBS_ASSIGN_OR_RETURN(auto signer, kbs::jose::JwtSigner::Create(std::move(key)));
  kbs::common::SystemClock clock;
  int64_t now = absl::ToUnixSeconds(clock.Now());
  return signer->Sign(
      Json{{"iss", "kbsctl"}, {"sub", role}, {"role", role}, {"iat", now}, {"exp", now + 300}});
}

// A short-lived admin JWT signed with the operator's key.
absl::StatusOr<std::string> AdminToken(const Globals& g) {
  if (g.admin_key.empty()) {
    return absl::InvalidArgumentError("--admin-key FILE is required (see `kbsctl admin keygen`)");
  }
  KBS_ASSIGN_OR_RETURN(std::string pem, kbs::common::ReadFile(g.admin_key, 1 << 16));
  KBS_ASSIGN_OR_RETURN(kbs::common::EvpPkeyPtr key, kbs::common::PrivateKeyFromPem(pem));
  KBS_ASSIGN_OR_RETURN(auto signer, kbs::jose::JwtSigner::Create(std::move(key)));
  kbs::common::SystemClock clock;
  int64_t now = absl::ToUnixSeconds(clock.Now());
  return signer->Sign(Json{
      {"iss", "kbsctl"}, {"sub", "admin"}, {"role", "admin"}, {"iat", now}, {"exp", now + 300}});
}

int Keygen(const std::string& out_dir, const std::string& type) {
  absl::StatusOr<kbs::common::EvpPkeyPtr> key =
      type == "ec-p256" ? kbs::common::GenerateEcKey(kbs::common::EcCurve::kP256)
                        : kbs::common::GenerateEd25519Key();
  if (!key.ok()) return Fail(key.status());
  if (auto s = kbs::common::EnsureDirectory(out_dir, 0700); !s.ok()) return Fail(s);
  auto priv = kbs::common::PrivateKeyToPem(key->get());
  auto pub = kbs::common::PublicKeyToPem(key->get());
  if (!priv.ok()) return Fail(priv.status());
  if (!pub.ok()) return Fail(pub.status());
  std::filesystem::path dir(out_dir);
  if (auto s = kbs::common::WriteFileAtomic((dir / "admin.key").string(), *priv, 0600); !s.ok()) {
    return Fail(s);
  }
  if (auto s = kbs::common::WriteFileAtomic((dir / "admin.pub").string(), *pub, 0644); !s.ok()) {
    return Fail(s);
  }
  std::cout << "wrote " << (dir / "admin.key").string() << " (private, keep it safe) and "
            << (dir / "admin.pub").string() << " (start kbs with --admin-public-key "
            << (dir / "admin.pub").string() << ")\n";
  return 0;
}

struct EvidenceArgs {
  std::string tee, evidence_file, report_file, cert_file, chain_file, report_data_hex,
      host_data_hex, at, collateral_dir;
  std::vector<std::string> trusted_arks;
  // TDX / SGX
  std::string quote_file, collateral_file, eventlog_file, mr_config_id_hex;
  std::vector<std::string> trusted_roots;
};

// The primary evidence of an evidence file: the TEE's evidence JSON itself,
// or the `tee-evidence.primary_evidence` of a whole /attest body.
absl::StatusOr<Json> ReadPrimaryEvidence(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(std::string text, kbs::common::ReadFile(path, 32 << 20));
  KBS_ASSIGN_OR_RETURN(Json json, kbs::common::ParseJson(text));
  if (const auto* te = kbs::common::FindMember(json, "tee-evidence"); te != nullptr) {
    const Json* primary = kbs::common::FindMember(*te, "primary_evidence");
    if (primary == nullptr) return absl::InvalidArgumentError("no primary_evidence");
    return *primary;
  }
  return json;
}

absl::StatusOr<absl::Time> VerificationTime(const std::string& at) {
  if (at.empty()) return absl::Now();
  absl::Time t;
  std::string err;
  if (!absl::ParseTime(absl::RFC3339_full, at, &t, &err)) {
    return absl::InvalidArgumentError("--at must be RFC 3339, e.g. 2025-06-01T00:00:00Z");
  }
  return t;
}

int PrintClaims(const absl::StatusOr<kbs::verifier::VerifiedClaims>& claims) {
  if (!claims.ok()) {
    std::cerr << "kbsctl: evidence verification failed: " << claims.status().message() << "\n";
    return claims.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::cout << Json{{"tee", claims->tee()},
                    {"ear.status", std::string(claims->trust_vector().Status())},
                    {"claims", claims->claims()}}
                   .dump(2, ' ', false, Json::error_handler_t::replace)
            << "\n";
  return 0;
}

// kbsctl evidence verify --tee tdx|sgx: a DCAP quote (raw, or in the agent's
// evidence JSON), collateral from a directory or a bundle file.
int VerifyDcapEvidence(const EvidenceArgs& a) {
  namespace dcap = kbs::verifier::dcap;
  const bool tdx = a.tee == "tdx";
  std::string quote;
  std::optional<std::string> eventlog;
  if (!a.evidence_file.empty()) {
    auto primary = ReadPrimaryEvidence(a.evidence_file);
    if (!primary.ok()) return Fail(primary.status());
    if (tdx) {
      auto parsed = kbs::verifier::tdx::ParseTdxEvidence(*primary);
      if (!parsed.ok()) return Fail(parsed.status());
      quote = std::move(parsed->quote);
      eventlog = std::move(parsed->cc_eventlog);
    } else {
      auto parsed = kbs::verifier::sgx::ParseSgxEvidence(*primary);
      if (!parsed.ok()) return Fail(parsed.status());
      quote = *std::move(parsed);
    }
  } else if (!a.quote_file.empty()) {
    auto raw = kbs::common::ReadFile(a.quote_file, 1 << 20);
    if (!raw.ok()) return Fail(raw.status());
    quote = *std::move(raw);
  } else {
    return Fail(absl::InvalidArgumentError("give --evidence FILE.json or --quote FILE"));
  }
  if (!a.eventlog_file.empty()) {
    if (!tdx) return Fail(absl::InvalidArgumentError("--eventlog is for --tee tdx"));
    auto raw = kbs::common::ReadFile(a.eventlog_file, 16 << 20);
    if (!raw.ok()) return Fail(raw.status());
    eventlog = *std::move(raw);
  }
  dcap::QuoteVerifierOptions options;
  for (const std::string& root : a.trusted_roots) {
    if (auto s = options.anchors.Add(root); !s.ok()) return Fail(s);
  }
  std::optional<dcap::Collateral> bundle;
  std::unique_ptr<dcap::DirectoryCollateral> directory;
  if (!a.collateral_file.empty()) {
    auto text = kbs::common::ReadFile(a.collateral_file, 16 << 20);
    if (!text.ok()) return Fail(text.status());
    auto parsed = dcap::ParseCollateralBundle(*text);
    if (!parsed.ok()) return Fail(parsed.status());
    bundle = *std::move(parsed);
  } else if (!a.collateral_dir.empty()) {
    directory = std::make_unique<dcap::DirectoryCollateral>(a.collateral_dir);
    options.collateral = directory.get();
  } else {
    return Fail(absl::InvalidArgumentError(
        "give --collateral-dir DIR or --collateral FILE.json (Intel TCB info, QE identity, "
        "CRLs)"));
  }
  auto at = VerificationTime(a.at);
  if (!at.ok()) return Fail(at.status());
  std::optional<std::string> report_data, config_id;
  for (auto [hex, out] :
       {std::pair{&a.report_data_hex, &report_data}, std::pair{&a.mr_config_id_hex, &config_id}}) {
    if (hex->empty()) continue;
    auto raw = kbs::common::HexDecode(*hex);
    if (!raw.ok()) return Fail(absl::InvalidArgumentError("expected data must be hex"));
    *out = *std::move(raw);
  }
  kbs::common::SystemClock clock;
  const dcap::Collateral* fixed = bundle.has_value() ? &*bundle : nullptr;
  if (tdx) {
    kbs::verifier::tdx::TdxVerifier verifier(options, &clock);
    kbs::verifier::tdx::TdxExpectations expect{report_data, config_id, *at};
    return PrintClaims(verifier.VerifyEvidence({quote, eventlog}, expect, fixed));
  }
  kbs::verifier::sgx::SgxVerifier verifier(options, &clock);
  kbs::verifier::sgx::SgxExpectations expect{report_data, config_id, *at};
  return PrintClaims(verifier.VerifyQuote(quote, expect, fixed));
}

// DER from a file holding DER or PEM.
absl::StatusOr<std::string> ReadCertificate(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(std::string data, kbs::common::ReadFile(path, 1 << 20));
  if (data.find("-----BEGIN CERTIFICATE-----") == std::string::npos) return data;
  KBS_ASSIGN_OR_RETURN(auto certs, kbs::common::ParsePemCertificates(data));
  return kbs::common::CertificateDer(certs.front().get());
}

int VerifyEvidence(const EvidenceArgs& a) {
  if (a.tee == "tdx" || a.tee == "sgx") return VerifyDcapEvidence(a);
  namespace snp = kbs::verifier::snp;
  snp::SnpEvidence evidence;
  if (!a.evidence_file.empty()) {
    auto primary = ReadPrimaryEvidence(a.evidence_file);
    if (!primary.ok()) return Fail(primary.status());
    auto parsed = snp::ParseSnpEvidence(*primary);
    if (!parsed.ok()) return Fail(parsed.status());
    evidence = *std::move(parsed);
  } else if (!a.report_file.empty()) {
    auto report = kbs::common::ReadFile(a.report_file, 1 << 20);
    if (!report.ok()) return Fail(report.status());
    evidence.report = *std::move(report);
    if (!a.cert_file.empty()) {
      auto der = ReadCertificate(a.cert_file);
      if (!der.ok()) return Fail(der.status());
      auto parsed = snp::ParseSnpReport(kbs::common::AsSpan(evidence.report));
      if (!parsed.ok()) return Fail(parsed.status());
      evidence.cert_chain.push_back({parsed->signing_key() == 1 ? "VLEK" : "VCEK", *der});
    }
  } else {
    return Fail(absl::InvalidArgumentError("give --evidence FILE.json or --report FILE.bin"));
  }
  std::vector<std::string> chain;
  if (!a.chain_file.empty()) {
    auto pem = kbs::common::ReadFile(a.chain_file, 1 << 20);
    if (!pem.ok()) return Fail(pem.status());
    auto certs = kbs::common::ParsePemCertificates(*pem);
    if (!certs.ok()) return Fail(certs.status());
    for (const auto& c : *certs) chain.push_back(*kbs::common::CertificateDer(c.get()));
  }
  snp::SnpVerifierOptions options;
  for (const std::string& entry : a.trusted_arks) {
    auto product = snp::ProductFromName(entry.substr(0, entry.find(':')));
    if (!product.has_value() || entry.find(':') == std::string::npos) {
      return Fail(absl::InvalidArgumentError("--trusted-ark is <Milan|Genoa|Turin>:<hex>"));
    }
    if (auto s = options.anchors.Add(*product, entry.substr(entry.find(':') + 1)); !s.ok()) {
      return Fail(s);
    }
  }
  std::unique_ptr<snp::DirectoryCollateral> directory;
  if (!a.collateral_dir.empty()) {
    directory = std::make_unique<snp::DirectoryCollateral>(a.collateral_dir);
    options.collateral = directory.get();
  }
  snp::SnpExpectations expect;
  kbs::common::SystemClock clock;
  auto at = VerificationTime(a.at);
  if (!at.ok()) return Fail(at.status());
  expect.at = *at;
  for (auto [hex, out] : {std::pair{&a.report_data_hex, &expect.report_data},
                          std::pair{&a.host_data_hex, &expect.host_data}}) {
    if (hex->empty()) continue;
    auto raw = kbs::common::HexDecode(*hex);
    if (!raw.ok()) return Fail(absl::InvalidArgumentError("expected data must be hex"));
    *out = *std::move(raw);
  }
  auto verifier = snp::SnpVerifier::Create(std::move(options), &clock);
  return PrintClaims(verifier->VerifyEvidence(evidence, expect, chain));
}

struct PolicyTestArgs {
  std::string file, claims, resource, at;
  std::vector<std::string> refvalues;  // NAME=FILE
  bool allow_sample = false;
};

// `kbsctl policy test`: compiles and evaluates a policy offline. Prints the
// decision as JSON; exit 0 on allow, 3 on deny, 2 on invalid input.
int PolicyTest(const PolicyTestArgs& a) {
  namespace policy = kbs::policy;
  auto invalid = [](const absl::Status& s) {
    std::cerr << "kbsctl: " << s.message() << "\n";
    return 2;
  };
  auto text = kbs::common::ReadFile(a.file, 16 << 20);
  if (!text.ok()) return invalid(text.status());
  policy::PolicyOptions options;
  options.sample_tee_enabled = a.allow_sample;
  auto engine = policy::CompilePolicy(*text, options);
  if (!engine.ok()) return invalid(engine.status());
  auto claims_text = kbs::common::ReadFile(a.claims, 4 << 20);
  if (!claims_text.ok()) return invalid(claims_text.status());
  auto claims_json = kbs::common::ParseJson(*claims_text);
  if (!claims_json.ok()) return invalid(claims_json.status());
  auto claims = policy::ClaimsFromJson(*claims_json);
  if (!claims.ok()) return invalid(claims.status());
  std::vector<policy::RefValueSet> sets;
  for (const std::string& spec : a.refvalues) {
    size_t eq = spec.find('=');
    if (eq == std::string::npos) {
      return invalid(absl::InvalidArgumentError("--refvalues takes NAME=FILE"));
    }
    auto body = kbs::common::ReadFile(spec.substr(eq + 1), 16 << 20);
    if (!body.ok()) return invalid(body.status());
    auto set = policy::ParseRefValueSet(spec.substr(0, eq), *body);
    if (!set.ok()) return invalid(set.status());
    sets.push_back(*std::move(set));
  }
  auto refs = policy::RefValues::Create(sets);
  policy::PolicyInput input;
  input.resource_path = a.resource;
  input.claims = &*claims;
  input.refvalues = refs.get();
  input.now = absl::Now();
  if (!a.at.empty()) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, a.at, &input.now, &err)) {
      return invalid(absl::InvalidArgumentError("--at must be RFC 3339"));
    }
  }
  auto decision = (*engine)->Evaluate(input);
  if (!decision.ok()) {
    std::cerr << "kbsctl: policy evaluation failed: " << decision.status().message() << "\n";
    return 1;
  }
  std::cout << decision->ToJson().dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
  return decision->allow ? 0 : 3;
}

}  // namespace

int main(int argc, char** argv) {
  CLI::App app{"kbsctl: administer a KBS and run reference attestations"};
  app.require_subcommand(1);
  Globals g;
  auto add_globals = [&g](CLI::App* cmd) {
    cmd->add_option("--url", g.url, "KBS URL: http(s)://HOST:PORT, or HOST:PORT with gRPC");
    cmd->add_option("--admin-key", g.admin_key, "Admin private key (PEM) to sign admin tokens");
    cmd->add_option("--cacert", g.cacert, "CA certificate (PEM) to verify the KBS over TLS");
    cmd->add_option("--protocol", g.protocol, "http or grpc")
        ->check(CLI::IsMember({"http", "grpc"}));
  };
  add_globals(&app);

  // admin keygen
  CLI::App* admin = app.add_subcommand("admin", "Admin credentials");
  admin->require_subcommand(1);
  CLI::App* keygen = admin->add_subcommand("keygen", "Write an admin key pair (PEM)");
  std::string out_dir, key_type = "ed25519";
  keygen->add_option("--out-dir", out_dir, "Directory for admin.key and admin.pub")->required();
  keygen->add_option("--type", key_type, "ed25519 (EdDSA) or ec-p256 (ES256)")
      ->check(CLI::IsMember({"ed25519", "ec-p256"}));

  // resource put|delete|list
  CLI::App* resource = app.add_subcommand("resource", "Manage resources (admin)");
  resource->require_subcommand(1);
  std::string path, file;
  CLI::App* put = resource->add_subcommand("put", "Store a resource value");
  put->add_option("path", path, "REPO/TYPE/TAG")->required();
  put->add_option("--file", file, "File with the value (up to 1 MiB)")->required();
  CLI::App* del = resource->add_subcommand("delete", "Delete a resource");
  del->add_option("path", path, "REPO/TYPE/TAG")->required();
  CLI::App* list = resource->add_subcommand("list", "List resource metadata (never values)");
  CLI::App* versions = resource->add_subcommand("versions", "List a resource's versions");
  versions->add_option("path", path, "REPO/TYPE/TAG")->required();
  int64_t version_number = 0;
  std::vector<std::pair<CLI::App*, std::string>> state_commands;
  for (const char* state : {"disable", "enable", "destroy"}) {
    CLI::App* cmd = resource->add_subcommand(
        state,
        absl::StrCat(state == std::string("destroy")
                         ? "Destroy a version (erases its value for good; keeps metadata)"
                         : absl::StrCat(state == std::string("enable") ? "Re-enable" : "Disable",
                                        " a version")));
    cmd->add_option("path", path, "REPO/TYPE/TAG")->required();
    cmd->add_option("--version", version_number, "Version number")->required();
    state_commands.emplace_back(cmd, state == std::string("disable")  ? "disabled"
                                     : state == std::string("enable") ? "enabled"
                                                                      : "destroyed");
  }

  // key create|rotate: secrets generated inside the KBS
  CLI::App* key = app.add_subcommand("key", "Generate keys inside the KBS (admin)");
  key->require_subcommand(1);
  std::string generated_type = "aes256";
  CLI::App* key_create = key->add_subcommand("create", "Generate a new key resource");
  CLI::App* key_rotate = key->add_subcommand("rotate", "Generate a new version of a key");
  for (CLI::App* cmd : {key_create, key_rotate}) {
    cmd->add_option("path", path, "REPO/TYPE/TAG")->required();
    cmd->add_option("--type", generated_type, "aes256, ec-p256 or rsa3072")
        ->check(CLI::IsMember({"aes256", "ec-p256", "rsa3072"}));
  }
  // kek rotate
  CLI::App* kek = app.add_subcommand("kek", "The key-encryption key (admin)");
  kek->require_subcommand(1);
  CLI::App* kek_rotate = kek->add_subcommand(
      "rotate", "Make a new KEK version current and re-wrap every stored data key");
  // token keys|rotate-key
  CLI::App* token_cmd =
      app.add_subcommand("token", "Attestation-token signing keys (admin; docs/oidc.md)");
  token_cmd->require_subcommand(1);
  CLI::App* token_keys =
      token_cmd->add_subcommand("keys", "List the signing keys: current, next and retired");
  CLI::App* token_rotate = token_cmd->add_subcommand(
      "rotate-key",
      "The pre-published next key starts signing; the old one stays in the JWKS until its "
      "tokens have expired");

  // policy set|get
  CLI::App* policy = app.add_subcommand("policy", "Manage the release policy (admin)");
  policy->require_subcommand(1);
  std::string preset, policy_file;
  CLI::App* set = policy->add_subcommand("set", "Set the release policy");
  auto* preset_opt = set->add_option("--preset", preset, "allow-all or deny-all")
                         ->check(CLI::IsMember({"allow-all", "deny-all"}));
  set->add_option("--file", policy_file, "Policy document file")->excludes(preset_opt);
  bool shadow = false;
  set->add_flag("--shadow", shadow, "Load beside the active policy in shadow (never grants)");
  CLI::App* get = policy->add_subcommand("get", "Print the active release policy");
  CLI::App* history = policy->add_subcommand("history", "List stored versions and activations");
  std::string version;
  CLI::App* activate = policy->add_subcommand("activate", "Re-activate a stored version");
  activate->add_option("version", version, "Version id (or a unique prefix, 12+ chars)")
      ->required();
  activate->add_flag("--shadow", shadow, "Activate in the shadow slot");
  CLI::App* clear_shadow = policy->add_subcommand("clear-shadow", "Unload the shadow policy");
  PolicyTestArgs pt;
  CLI::App* ptest = policy->add_subcommand(
      "test", "Evaluate a policy offline: prints the decision; exit 0 allow, 3 deny");
  ptest->add_option("--file", pt.file, "Policy document (YAML or JSON)")->required();
  ptest->add_option("--claims", pt.claims, "Claims JSON (the policy's view or EAR claims)")
      ->required();
  ptest->add_option("--resource", pt.resource, "REPO/TYPE/TAG")->required();
  ptest->add_option("--refvalues", pt.refvalues, "Reference-value set NAME=FILE; repeatable");
  ptest->add_option("--at", pt.at, "Evaluation time, RFC 3339 (default: now)");
  ptest->add_flag("--allow-sample-tee", pt.allow_sample, "Evaluate as a KBS with sample enabled");
  CLI::App* peval = policy->add_subcommand(
      "evaluate", "Dry-run the server's active policy (or --file) against claims");
  peval->add_option("--file", pt.file, "Policy document to try instead of the active one");
  peval->add_option("--claims", pt.claims, "Claims JSON")->required();
  peval->add_option("--resource", pt.resource, "REPO/TYPE/TAG")->required();

  // refvalues set|get
  CLI::App* refvalues = app.add_subcommand("refvalues", "Manage reference-value sets (admin)");
  refvalues->require_subcommand(1);
  std::string set_name, set_file;
  CLI::App* rv_set = refvalues->add_subcommand("set", "Create or replace a set");
  rv_set->add_option("name", set_name, "Set name")->required();
  rv_set->add_option("--file", set_file, "Set document (YAML or JSON)")->required();
  CLI::App* rv_get = refvalues->add_subcommand("get", "Print a set");
  rv_get->add_option("name", set_name, "Set name")->required();

  // audit
  CLI::App* audit = app.add_subcommand("audit", "Read and verify the receipt log (auditor)");
  audit->require_subcommand(1);
  kbs::cli::AuditArgs au;
  std::string auditor_key;
  audit->add_option("--auditor-key", auditor_key, "Auditor private key (PEM) to sign tokens");
  CLI::App* au_key = audit->add_subcommand("log-key", "Write the log's note verifier key");
  au_key->add_option("--out", au.out, "File (default: stdout)");
  CLI::App* au_cp = audit->add_subcommand("checkpoint", "Print the latest signed checkpoint");
  au_cp->add_flag("--fresh", au.fresh, "Have the KBS sign one covering every receipt first");
  CLI::App* au_list = audit->add_subcommand("list", "List receipts (filters combine with AND)");
  au_list->add_option("--format", au.format, "jsonl (leaf bytes, one per line) or csv")
      ->check(CLI::IsMember({"jsonl", "csv"}));
  for (auto [name, field] : std::initializer_list<std::pair<const char*, std::string*>>{
           {"--from", &au.from},
           {"--to", &au.to},
           {"--decision", &au.decision},
           {"--resource", &au.resource},
           {"--key-version", &au.key_version},
           {"--image", &au.image},
           {"--measurement", &au.measurement},
           {"--tee", &au.tee},
           {"--policy", &au.policy},
           {"--rule", &au.rule},
           {"--chip-id", &au.chip_id}}) {
    au_list->add_option(name, *field);
  }
  CLI::App* au_prove = audit->add_subcommand("prove", "Write the tlog-proof of a receipt");
  au_prove->add_option("index", au.index, "Receipt index")->required();
  au_prove->add_option("--out", au.out, "File (default: stdout)");
  CLI::App* au_vp = audit->add_subcommand(
      "verify-proof", "Verify a tlog-proof, or every line of an export, offline");
  auto* proof_opt = au_vp->add_option("--proof", au.proof, "tlog-proof file");
  auto* entry_opt = au_vp->add_option("--entry", au.entry, "The receipt's leaf bytes");
  au_vp->add_option("--export", au.export_file, "A file written by `kbsctl audit export`")
      ->excludes(proof_opt)
      ->excludes(entry_opt);
  proof_opt->needs(entry_opt);
  entry_opt->needs(proof_opt);
  au_vp->add_option("--log-key", au.log_key, "The log's note verifier key")->required();
  CLI::App* au_verify = audit->add_subcommand(
      "verify", "Download every receipt, rebuild the tree and check it against the checkpoint");
  au_verify->add_option("--log-key", au.log_key, "The log's note verifier key")->required();
  au_verify->add_option("--from-checkpoint", au.from_checkpoint,
                        "An earlier checkpoint you kept: the log must extend it");
  au_verify->add_flag("--fresh", au.fresh,
                      "Have the KBS sign a checkpoint covering every receipt first");
  CLI::App* au_export = audit->add_subcommand(
      "export", "Verify the log, then write every receipt with its proof as JSON lines");
  au_export->add_option("--out", au.out, "FILE.jsonl")->required();
  au_export->add_option("--log-key", au.log_key, "The log's note verifier key")->required();
  au_export->add_option("--from-checkpoint", au.from_checkpoint,
                        "An earlier checkpoint you kept: the log must extend it");

  // attest
  CLI::App* attest = app.add_subcommand("attest", "Run RCAR as a guest and fetch a resource");
  std::string tee = "sample", key_type_name = "ec-p256", get_path, out_file, init_data_file,
              claims_json;
  std::vector<std::string> devices;
  bool use_token = false;
  std::string tsm_dir = kbs::client::TsmOptions().report_dir;
  attest
      ->add_option("--tee", tee,
                   "TEE type: sample, or snp / tdx with evidence from configfs-tsm (in the guest)")
      ->check(CLI::IsMember({"sample", "snp", "tdx"}));
  attest->add_option("--tsm-dir", tsm_dir, "configfs-tsm report directory (snp, tdx)");
  attest->add_option("--key-type", key_type_name, "ec-p256, ec-p521 or rsa")
      ->check(CLI::IsMember({"ec-p256", "ec-p521", "rsa"}));
  attest->add_option("--get", get_path, "Resource to fetch: REPO/TYPE/TAG")->required();
  attest->add_option("--out", out_file, "Write the decrypted resource here ('-' for stdout)")
      ->required();
  attest->add_option("--init-data", init_data_file, "Init-data TOML to send and bind");
  attest->add_option("--claims", claims_json, "Extra sample claims, a JSON object (sample)");
  attest->add_option("--device", devices, "Also attest a device (sampledevice)");
  attest->add_flag("--bearer", use_token,
                   "Fetch with the token as Bearer (like the CDH) instead of the cookie");

  // model seal|unseal (docs/sealing.md)
  CLI::App* model = app.add_subcommand("model", "Seal model weights to a KBS key, or unseal them");
  model->require_subcommand(1);
  std::string model_in, model_out, model_resource;
  uint32_t chunk_size = kbs::sealed::kDefaultChunkSize;
  CLI::App* seal = model->add_subcommand(
      "seal", "Encrypt a file under a new key version stored in the KBS (admin)");
  seal->add_option("--in", model_in, "Plaintext weights")->required();
  seal->add_option("--out", model_out, "Sealed file to write")->required();
  seal->add_option("--resource", model_resource, "REPO/TYPE/TAG of the key")->required();
  seal->add_option("--chunk-size", chunk_size, "Bytes per chunk (4 KiB to 64 MiB)")
      ->check(CLI::Range(kbs::sealed::kMinChunkSize, kbs::sealed::kMaxChunkSize));
  CLI::App* unseal = model->add_subcommand(
      "unseal", "Attest, fetch the key version the file names, and decrypt it");
  unseal->add_option("--in", model_in, "Sealed file")->required();
  unseal->add_option("--out", model_out, "Plaintext to write (never partial)")->required();
  unseal
      ->add_option("--tee", tee,
                   "TEE type: sample, or snp / tdx with evidence from configfs-tsm (in the guest)")
      ->check(CLI::IsMember({"sample", "snp", "tdx"}));
  unseal->add_option("--tsm-dir", tsm_dir, "configfs-tsm report directory (snp, tdx)");

  // evidence verify (offline)
  CLI::App* evidence = app.add_subcommand("evidence", "Work with TEE evidence offline");
  evidence->require_subcommand(1);
  CLI::App* verify = evidence->add_subcommand(
      "verify", "Verify evidence offline; print its claims (exit 0) or the failed check");
  EvidenceArgs ev;
  verify->add_option("--tee", ev.tee, "TEE type")
      ->required()
      ->check(CLI::IsMember({"snp", "tdx", "sgx"}));
  auto* evidence_opt = verify->add_option("--evidence", ev.evidence_file,
                                          "The agent's evidence JSON (primary_evidence)");
  verify->add_option("--report", ev.report_file, "Raw 1184-byte SNP report")
      ->excludes(evidence_opt);
  verify->add_option("--cert", ev.cert_file, "VCEK or VLEK (DER or PEM), with --report");
  verify->add_option("--chain", ev.chain_file,
                     "PEM bundle of AMD ASK/ASVK and ARK certificates, any order");
  verify->add_option("--report-data", ev.report_data_hex, "Expected REPORT_DATA (hex)");
  verify->add_option("--host-data", ev.host_data_hex, "Expected HOST_DATA (hex)");
  verify->add_option("--at", ev.at, "Verification time, RFC 3339 (default: now)");
  verify->add_option("--collateral-dir", ev.collateral_dir,
                     "Collateral directory (layout in docs/snp.md)");
  verify->add_option("--trusted-ark", ev.trusted_arks,
                     "Extra pinned ARK, <Milan|Genoa|Turin>:<sha256 hex>; repeatable");
  verify->add_option("--quote", ev.quote_file, "Raw DCAP quote (tdx, sgx)")->excludes(evidence_opt);
  verify->add_option("--collateral", ev.collateral_file,
                     "Intel collateral bundle JSON (tdx, sgx; dcap-qvl/PCCS form)");
  verify->add_option("--eventlog", ev.eventlog_file, "CC event log (CCEL) to replay (tdx)");
  verify->add_option("--mr-config-id", ev.mr_config_id_hex,
                     "Expected MRCONFIGID (tdx) or CONFIGID (sgx), hex: the init-data digest");
  verify->add_option("--trusted-root", ev.trusted_roots,
                     "Extra pinned Intel root, sha256 hex of its DER; repeatable");

  for (CLI::App* cmd :
       {admin,     keygen,     resource,   put,         del,          list,   policy,
        set,       get,        history,    activate,    clear_shadow, ptest,  peval,
        refvalues, rv_set,     rv_get,     attest,      evidence,     verify, versions,
        key,       key_create, key_rotate, kek,         kek_rotate,   model,  seal,
        unseal,    token_cmd,  token_keys, token_rotate}) {
    // Global options are accepted before or after the subcommand.
    cmd->fallthrough();
  }
  for (const auto& [cmd, state] : state_commands) cmd->fallthrough();
  CLI11_PARSE(app, argc, argv);

  if (keygen->parsed()) return Keygen(out_dir, key_type);
  if (verify->parsed()) return VerifyEvidence(ev);
  if (ptest->parsed()) return PolicyTest(pt);
  if (au_vp->parsed()) {
    if (!au.export_file.empty()) return kbs::cli::AuditVerifyExport(au);
    if (au.proof.empty()) {
      return Fail(absl::InvalidArgumentError("--proof FILE --entry FILE or --export FILE"));
    }
    return kbs::cli::AuditVerifyProof(au);
  }
  if (audit->parsed()) {
    au.url = g.url;
    au.cacert = g.cacert;
    if (!au_key->parsed()) {
      if (auditor_key.empty()) {
        return Fail(absl::InvalidArgumentError(
            "--auditor-key FILE is required (an auditor key made with `kbsctl admin keygen`)"));
      }
      auto token = RoleToken(auditor_key, "auditor");
      if (!token.ok()) return Fail(token.status());
      au.token = *std::move(token);
    }
    if (au_key->parsed()) return kbs::cli::AuditLogKey(au);
    if (au_cp->parsed()) return kbs::cli::AuditCheckpoint(au);
    if (au_list->parsed()) return kbs::cli::AuditList(au);
    if (au_prove->parsed()) return kbs::cli::AuditProve(au);
    if (au_verify->parsed()) return kbs::cli::AuditVerify(au);
    if (au_export->parsed()) return kbs::cli::AuditExport(au);
  }

  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());

  // Real TEEs attest with the hardware's evidence (configfs-tsm).
  kbs::client::EvidenceMaker evidence_maker;
  if ((unseal->parsed() || attest->parsed()) && tee != "sample") {
    kbs::client::TsmOptions tsm;
    tsm.report_dir = tsm_dir;
    auto maker = kbs::client::TsmEvidenceMaker(tee, tsm);
    if (!maker.ok()) return Fail(maker.status());
    evidence_maker = *std::move(maker);
    if (!devices.empty() || !claims_json.empty()) {
      return Fail(absl::InvalidArgumentError("--device and --claims are for the sample TEE"));
    }
  }
  if (unseal->parsed()) {
    // The header names the resource and key version; the file is read only
    // after the key is released to this attested TEE.
    auto header = kbs::sealed::PeekSealHeader(model_in);
    if (!header.ok()) return Fail(header.status());
    kbs::client::RcarOptions options;
    options.tee = tee;
    options.evidence_maker = evidence_maker;
    options.version = static_cast<int64_t>(header->key_version);
    auto key = kbs::client::RunSampleRcar(**client, header->resource_path, options);
    if (!key.ok()) return Fail(key.status());
    kbs::common::SecretBytes secret(kbs::common::AsSpan(*key));
    std::fill(key->begin(), key->end(), '\0');
    if (auto s = kbs::sealed::UnsealFile(model_in, model_out, secret.span()); !s.ok()) {
      return Fail(s);
    }
    std::cerr << "kbsctl: unsealed " << model_in << " (" << header->resource_path << " version "
              << header->key_version << ") to " << model_out << "\n";
    return 0;
  }
  if (attest->parsed()) {
    kbs::client::RcarOptions options;
    options.tee = tee;
    options.evidence_maker = evidence_maker;
    options.key_type = *kbs::client::ParseTeeKeyType(key_type_name);
    options.use_token = use_token;
    options.evidence.devices = devices;
    if (!init_data_file.empty()) {
      auto toml = kbs::common::ReadFile(init_data_file, 1 << 20);
      if (!toml.ok()) return Fail(toml.status());
      options.evidence.init_data_toml = *std::move(toml);
    }
    if (!claims_json.empty()) {
      auto claims = kbs::common::ParseJson(claims_json);
      if (!claims.ok() || !claims->is_object()) {
        return Fail(absl::InvalidArgumentError("--claims must be a JSON object"));
      }
      options.evidence.claims = *std::move(claims);
    }
    auto value = kbs::client::RunSampleRcar(**client, get_path, options);
    if (!value.ok()) return Fail(value.status());
    if (out_file == "-") {
      std::cout << *value;
      return 0;
    }
    if (auto s = kbs::common::WriteFileAtomic(out_file, *value, 0600); !s.ok()) return Fail(s);
    std::cerr << "kbsctl: wrote " << value->size() << " bytes of " << get_path << " to " << out_file
              << "\n";
    return 0;
  }

  auto token = AdminToken(g);
  if (!token.ok()) return Fail(token.status());
  if (seal->parsed()) {
    // A fresh 256-bit key becomes the resource's new version; the file is
    // sealed under it and names that version, so later rotations never make
    // it unreadable while the version stays enabled.
    auto key = kbs::common::RandomBytes(32);
    if (!key.ok()) return Fail(key.status());
    auto md =
        (*client)->PutResource(*token, model_resource, kbs::common::AsStringView(key->span()));
    if (!md.ok()) return Fail(md.status());
    kbs::sealed::SealOptions options;
    options.resource_path = model_resource;
    options.key_version = md->value("version", int64_t{0});
    options.chunk_size = chunk_size;
    if (options.key_version <= 0) {
      return Fail(absl::InternalError("the KBS did not say which version it stored"));
    }
    if (auto s = kbs::sealed::SealFile(model_in, model_out, key->span(), options); !s.ok()) {
      return Fail(s);
    }
    std::cout << Json{{"sealed", model_out},
                      {"resource", model_resource},
                      {"key_version", options.key_version}}
                     .dump()
              << "\n";
    return 0;
  }
  if (put->parsed()) {
    auto value = kbs::common::ReadFile(file, 16 << 20);
    if (!value.ok()) return Fail(value.status());
    auto md = (*client)->PutResource(*token, path, *value);
    if (!md.ok()) return Fail(md.status());
    std::cout << md->dump() << "\n";
    return 0;
  }
  if (del->parsed()) {
    if (auto s = (*client)->DeleteResource(*token, path); !s.ok()) return Fail(s);
    std::cout << "deleted " << path << "\n";
    return 0;
  }
  if (versions->parsed()) {
    auto listed = (*client)->ResourceVersions(*token, path);
    if (!listed.ok()) return Fail(listed.status());
    std::cout << listed->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  for (const auto& [cmd, state] : state_commands) {
    if (!cmd->parsed()) continue;
    auto v = (*client)->SetResourceVersionState(*token, path, version_number, state);
    if (!v.ok()) return Fail(v.status());
    std::cout << v->dump() << "\n";
    return 0;
  }
  if (key_create->parsed() || key_rotate->parsed()) {
    auto md = (*client)->GenerateKey(*token, path, generated_type, key_rotate->parsed());
    if (!md.ok()) return Fail(md.status());
    std::cout << md->dump() << "\n";
    return 0;
  }
  if (token_keys->parsed() || token_rotate->parsed()) {
    auto keys = token_rotate->parsed() ? (*client)->RotateTokenSigningKey(*token)
                                       : (*client)->TokenSigningKeys(*token);
    if (!keys.ok()) return Fail(keys.status());
    std::cout << keys->dump(2) << "\n";
    return 0;
  }
  if (kek_rotate->parsed()) {
    auto rotated = (*client)->RotateKek(*token);
    if (!rotated.ok()) return Fail(rotated.status());
    std::cout << rotated->dump() << "\n";
    return 0;
  }
  if (list->parsed()) {
    auto resources = (*client)->ListResources(*token);
    if (!resources.ok()) return Fail(resources.status());
    std::cout << resources->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (set->parsed()) {
    std::string document;
    if (!preset.empty()) {
      document = Json{{"preset", preset}}.dump();
    } else if (!policy_file.empty()) {
      auto text = kbs::common::ReadFile(policy_file, 16 << 20);
      if (!text.ok()) return Fail(text.status());
      document = *std::move(text);
    } else {
      return Fail(absl::InvalidArgumentError("policy set needs --preset or --file"));
    }
    auto result = (*client)->SetPolicyVersion(*token, document, shadow);
    if (!result.ok()) return Fail(result.status());
    std::cout << (shadow ? "shadow policy: " : "active policy: ") << result->value("id", "")
              << "\n";
    if (const Json* missing = kbs::common::FindMember(*result, "missing_refvalues");
        missing != nullptr && missing->is_array()) {
      for (const auto& name : *missing) {
        if (!name.is_string()) continue;
        std::cerr << "kbsctl: warning: reference-value set " << name.get<std::string>()
                  << " does not exist yet; its registers match nothing until it is set\n";
      }
    }
    return 0;
  }
  if (get->parsed()) {
    auto current = (*client)->GetPolicy(*token);
    if (!current.ok()) return Fail(current.status());
    std::cout << current->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (history->parsed()) {
    auto h = (*client)->PolicyHistory(*token);
    if (!h.ok()) return Fail(h.status());
    std::cout << h->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (activate->parsed()) {
    auto id = (*client)->ActivatePolicy(*token, version, shadow);
    if (!id.ok()) return Fail(id.status());
    std::cout << (shadow ? "shadow policy: " : "active policy: ") << *id << "\n";
    return 0;
  }
  if (clear_shadow->parsed()) {
    if (auto s = (*client)->ClearShadowPolicy(*token); !s.ok()) return Fail(s);
    std::cout << "shadow policy cleared\n";
    return 0;
  }
  if (peval->parsed()) {
    std::string document;
    if (!pt.file.empty()) {
      auto text = kbs::common::ReadFile(pt.file, 16 << 20);
      if (!text.ok()) return Fail(text.status());
      document = *std::move(text);
    }
    auto claims_text = kbs::common::ReadFile(pt.claims, 4 << 20);
    if (!claims_text.ok()) return Fail(claims_text.status());
    auto claims = kbs::common::ParseJson(*claims_text);
    if (!claims.ok()) return Fail(claims.status());
    auto decision = (*client)->EvaluatePolicy(*token, *claims, pt.resource, document);
    if (!decision.ok()) return Fail(decision.status());
    std::cout << decision->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    const Json* allow = kbs::common::FindMember(*decision, "allow");
    return allow != nullptr && allow->is_boolean() && allow->get<bool>() ? 0 : 3;
  }
  if (rv_set->parsed()) {
    auto text = kbs::common::ReadFile(set_file, 16 << 20);
    if (!text.ok()) return Fail(text.status());
    auto set = (*client)->SetRefValues(*token, set_name, *text);
    if (!set.ok()) return Fail(set.status());
    std::cout << set->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  if (rv_get->parsed()) {
    auto set = (*client)->GetRefValues(*token, set_name);
    if (!set.ok()) return Fail(set.status());
    std::cout << set->dump(2, ' ', false, Json::error_handler_t::replace) << "\n";
    return 0;
  }
  return 0;
}
