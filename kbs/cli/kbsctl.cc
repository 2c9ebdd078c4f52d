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
#include "kbs/client/kbs_client.h"
#include "verifier/snp/snp_verifier.h"

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
};

// DER from a file holding DER or PEM.
absl::StatusOr<std::string> ReadCertificate(const std::string& path) {
  KBS_ASSIGN_OR_RETURN(std::string data, kbs::common::ReadFile(path, 1 << 20));
  if (data.find("-----BEGIN CERTIFICATE-----") == std::string::npos) return data;
  KBS_ASSIGN_OR_RETURN(auto certs, kbs::common::ParsePemCertificates(data));
  return kbs::common::CertificateDer(certs.front().get());
}

int VerifyEvidence(const EvidenceArgs& a) {
  namespace snp = kbs::verifier::snp;
  snp::SnpEvidence evidence;
  if (!a.evidence_file.empty()) {
    auto text = kbs::common::ReadFile(a.evidence_file, 16 << 20);
    if (!text.ok()) return Fail(text.status());
    auto json = kbs::common::ParseJson(*text);
    if (!json.ok()) return Fail(json.status());
    // Accept the primary evidence itself or a whole /attest body.
    const kbs::common::Json* primary = &*json;
    if (const auto* te = kbs::common::FindMember(*json, "tee-evidence"); te != nullptr) {
      primary = kbs::common::FindMember(*te, "primary_evidence");
      if (primary == nullptr) return Fail(absl::InvalidArgumentError("no primary_evidence"));
    }
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
  expect.at = clock.Now();
  if (!a.at.empty()) {
    std::string err;
    if (!absl::ParseTime(absl::RFC3339_full, a.at, &expect.at, &err)) {
      return Fail(absl::InvalidArgumentError("--at must be RFC 3339, e.g. 2025-06-01T00:00:00Z"));
    }
  }
  for (auto [hex, out] : {std::pair{&a.report_data_hex, &expect.report_data},
                          std::pair{&a.host_data_hex, &expect.host_data}}) {
    if (hex->empty()) continue;
    auto raw = kbs::common::HexDecode(*hex);
    if (!raw.ok()) return Fail(absl::InvalidArgumentError("expected data must be hex"));
    *out = *std::move(raw);
  }
  auto verifier = snp::SnpVerifier::Create(std::move(options), &clock);
  auto claims = verifier->VerifyEvidence(evidence, expect, chain);
  if (!claims.ok()) {
    std::cerr << "kbsctl: evidence verification failed: " << claims.status().message() << "\n";
    return claims.status().code() == absl::StatusCode::kInvalidArgument ? 2 : 1;
  }
  std::cout << Json{{"tee", claims->tee()},
                    {"ear.status", std::string(claims->trust_vector().Status())},
                    {"claims", claims->claims()}}
                   .dump(2)
            << "\n";
  return 0;
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

  // policy set|get
  CLI::App* policy = app.add_subcommand("policy", "Manage the release policy (admin)");
  policy->require_subcommand(1);
  std::string preset, policy_file;
  CLI::App* set = policy->add_subcommand("set", "Set the release policy");
  auto* preset_opt = set->add_option("--preset", preset, "allow-all or deny-all")
                         ->check(CLI::IsMember({"allow-all", "deny-all"}));
  set->add_option("--file", policy_file, "Policy document file")->excludes(preset_opt);
  CLI::App* get = policy->add_subcommand("get", "Print the active release policy");

  // attest
  CLI::App* attest = app.add_subcommand("attest", "Run RCAR as a guest and fetch a resource");
  std::string tee = "sample", key_type_name = "ec-p256", get_path, out_file, init_data_file,
              claims_json;
  std::vector<std::string> devices;
  bool use_token = false;
  attest->add_option("--tee", tee, "TEE type (sample)")->check(CLI::IsMember({"sample"}));
  attest->add_option("--key-type", key_type_name, "ec-p256, ec-p521 or rsa")
      ->check(CLI::IsMember({"ec-p256", "ec-p521", "rsa"}));
  attest->add_option("--get", get_path, "Resource to fetch: REPO/TYPE/TAG")->required();
  attest->add_option("--out", out_file, "Write the decrypted resource here ('-' for stdout)")
      ->required();
  attest->add_option("--init-data", init_data_file, "Init-data TOML to send and bind");
  attest->add_option("--claims", claims_json, "Extra sample claims, a JSON object");
  attest->add_option("--device", devices, "Also attest a device (sampledevice)");
  attest->add_flag("--bearer", use_token,
                   "Fetch with the token as Bearer (like the CDH) instead of the cookie");

  // evidence verify (offline)
  CLI::App* evidence = app.add_subcommand("evidence", "Work with TEE evidence offline");
  evidence->require_subcommand(1);
  CLI::App* verify = evidence->add_subcommand(
      "verify", "Verify evidence offline; print its claims (exit 0) or the failed check");
  EvidenceArgs ev;
  verify->add_option("--tee", ev.tee, "TEE type")->required()->check(CLI::IsMember({"snp"}));
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

  for (CLI::App* cmd :
       {admin, keygen, resource, put, del, list, policy, set, get, attest, evidence, verify}) {
    // Global options are accepted before or after the subcommand.
    cmd->fallthrough();
  }
  CLI11_PARSE(app, argc, argv);

  if (keygen->parsed()) return Keygen(out_dir, key_type);
  if (verify->parsed()) return VerifyEvidence(ev);

  auto client = Connect(g);
  if (!client.ok()) return Fail(client.status());

  if (attest->parsed()) {
    kbs::client::RcarOptions options;
    options.tee = tee;
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
  if (list->parsed()) {
    auto resources = (*client)->ListResources(*token);
    if (!resources.ok()) return Fail(resources.status());
    std::cout << resources->dump(2) << "\n";
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
    auto id = (*client)->SetPolicy(*token, document);
    if (!id.ok()) return Fail(id.status());
    std::cout << "active policy: " << *id << "\n";
    return 0;
  }
  if (get->parsed()) {
    auto current = (*client)->GetPolicy(*token);
    if (!current.ok()) return Fail(current.status());
    std::cout << current->dump(2) << "\n";
    return 0;
  }
  return 0;
}
