// kbs: the Key Broker Service. Builds the object graph explicitly (no
// globals, no static registration), serves HTTP and gRPC, and shuts down
// cleanly on SIGINT/SIGTERM.
#include <malloc.h>
#include <signal.h>
#include <sys/stat.h>
#include <unistd.h>

#include <CLI/CLI.hpp>
#include <algorithm>
#include <condition_variable>
#include <cstdio>
#include <filesystem>
#include <iostream>
#include <mutex>
#include <thread>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "absl/strings/strip.h"
#include "absl/synchronization/mutex.h"
#include "common/clock.h"
#include "common/files.h"
#include "common/log.h"
#include "kbs/admin/admin_auth.h"
#include "kbs/config/config.h"
#include "kbs/core/audit.h"
#include "kbs/core/broker.h"
#include "kbs/grpc/grpc_server.h"
#include "kbs/http/http_server.h"
#include "kbs/keystore/local_kek.h"
#include "kbs/keystore/pkcs11_kek.h"
#include "kbs/keystore/sqlite_key_store.h"
#include "kbs/receipts/receipt_log.h"
#include "kbs/session/session_store.h"
#include "kbs/token/token_service.h"
#include "verifier/dcap/collateral.h"
#include "verifier/dcap/pcs.h"
#include "verifier/sample/sample_verifier.h"
#include "verifier/sgx/sgx_verifier.h"
#include "verifier/snp/kds.h"
#include "verifier/snp/snp_verifier.h"
#include "verifier/tdx/tdx_verifier.h"

namespace {

using kbs::config::KbsConfig;

int Fail(absl::string_view what, const absl::Status& status) {
  std::cerr << "kbs: " << what << ": " << status.message() << "\n";
  return 1;
}

kbs::common::LogLevel ParseLevel(const std::string& level) {
  if (level == "debug") return kbs::common::LogLevel::kDebug;
  if (level == "warning") return kbs::common::LogLevel::kWarning;
  if (level == "error") return kbs::common::LogLevel::kError;
  return kbs::common::LogLevel::kInfo;
}

int Run(const KbsConfig& config, const std::string& ready_file) {
  kbs::common::SetLogLevel(ParseLevel(config.log_level));
  kbs::common::SystemClock clock;
  const unsigned cpus = std::thread::hardware_concurrency();
  // HTTP and gRPC handlers run on fibers that are suspended while their
  // receipt is group-committed, so a couple of threads per core serve every
  // connection (more would only add context switches). The database pool
  // has a connection for more threads than that: the Admin and Audit gRPC
  // services run on gRPC's own threads.
  const int threads =
      config.threads > 0 ? config.threads : static_cast<int>(std::max(16u, 4 * cpus));
  const int handler_threads =
      config.threads > 0 ? config.threads : static_cast<int>(std::max(4u, 2 * cpus));

  if (auto s = kbs::common::EnsureDirectory(config.data_dir, 0700); !s.ok()) {
    return Fail("data directory", s);
  }
  const std::filesystem::path dir(config.data_dir);
  // One KBS per data directory: sessions live in memory, so two processes
  // over the same database would disagree.
  auto lock = kbs::common::LockFileExclusive((dir / "kbs.lock").string());
  if (!lock.ok()) return Fail("data directory", lock.status());
  // The master key file stays the local KEK, and opens values a first
  // release stored under it; with an HSM, the KEK is a token key instead.
  auto local_kek = kbs::keystore::LocalKek::Open((dir / "master.key").string());
  if (!local_kek.ok()) return Fail("master key", local_kek.status());
  std::unique_ptr<kbs::keystore::Kek> hsm_kek;
  if (config.keystore_backend == "pkcs11") {
    kbs::keystore::Pkcs11KekOptions p11;
    p11.module_path = config.pkcs11_module;
    p11.token_label = config.pkcs11_token;
    p11.key_label = config.pkcs11_key_label;
    p11.sessions = static_cast<int>(config.pkcs11_sessions);
    // An HSM outage at boot is an outage like any other: 503s, failed
    // receipts, and recovery when the token answers.
    p11.start_unavailable = true;
    std::string pin;
    if (!config.pkcs11_pin_file.empty()) {
      auto read = kbs::common::ReadPrivateFile(config.pkcs11_pin_file);
      if (!read.ok()) return Fail("keystore.pkcs11_pin_file", read.status());
      pin = std::string(absl::StripTrailingAsciiWhitespace(*read));
      std::fill(read->begin(), read->end(), '\0');
    } else {
      const char* env = std::getenv(config.pkcs11_pin_env.c_str());
      if (env == nullptr) {
        return Fail("keystore.pkcs11_pin_env",
                    absl::InvalidArgumentError(absl::StrCat("environment variable ",
                                                            config.pkcs11_pin_env, " is not set")));
      }
      pin = env;
    }
    p11.pin = kbs::common::SecretBytes(kbs::common::AsSpan(pin));
    std::fill(pin.begin(), pin.end(), '\0');
    auto created = kbs::keystore::Pkcs11Kek::Create(std::move(p11));
    if (!created.ok()) return Fail("PKCS#11 key-encryption key", created.status());
    hsm_kek = *std::move(created);
  }
  kbs::keystore::Kek* kek =
      hsm_kek != nullptr ? hsm_kek.get() : static_cast<kbs::keystore::Kek*>(local_kek->get());
  // Attestation-token signing keys, rotated with overlap (docs/oidc.md);
  // the single key of earlier versions is imported.
  kbs::token::SigningKeyRing::Options ring_options;
  ring_options.path = (dir / "token-keys.json").string();
  ring_options.token_lifetime = absl::Seconds(config.token_lifetime_secs);
  ring_options.clock_skew = absl::Seconds(config.token_clock_skew_secs);
  auto signing_keys = kbs::token::SigningKeyRing::Open(ring_options, clock.Now(),
                                                       (dir / "token-signing-key.pem").string());
  if (!signing_keys.ok()) return Fail("token signing keys", signing_keys.status());
  auto db = kbs::storage::SqliteDatabase::Open((dir / "kbs.db").string(), threads + 2, "");
  if (!db.ok()) return Fail("database", db.status());
  auto keys =
      kbs::keystore::SqliteKeyStore::Create(db->get(), kek, &clock, (*local_kek)->master_key());
  if (!keys.ok()) return Fail("key store", keys.status());
  auto policies = kbs::PolicyStore::Create(db->get(), &clock);
  if (!policies.ok()) return Fail("policy store", policies.status());
  // The receipt log signs checkpoints with its own Ed25519 key, kept with
  // the master key.
  auto log_key = kbs::receipts::LoadOrCreateLogKey((dir / "log-signing-key.pem").string());
  if (!log_key.ok()) return Fail("receipt log key", log_key.status());
  auto note_signer = kbs::receipts::NoteSigner::Create(config.receipts_origin, *std::move(log_key));
  if (!note_signer.ok()) return Fail("receipt log key", note_signer.status());
  kbs::receipts::ReceiptLog::Options log_options;
  log_options.origin = config.receipts_origin;
  log_options.checkpoint_interval = absl::Seconds(config.checkpoint_interval_secs);
  log_options.evidence_retention = absl::Hours(24 * config.evidence_retention_days);
  log_options.commit_delay = absl::Microseconds(config.group_commit_delay_us);
  // A copy of the latest signed checkpoint outside the database: deleting
  // checkpoint rows cannot make the log forget what it signed.
  log_options.checkpoint_file = (dir / "log-checkpoint.note").string();
  auto receipt_log =
      kbs::receipts::ReceiptLog::Open(db->get(), *std::move(note_signer), &clock, log_options);
  if (!receipt_log.ok()) return Fail("receipt log", receipt_log.status());
  std::vector<std::string> auditor_pems;
  for (const std::string& path : config.auditor_public_keys) {
    auto pem = kbs::common::ReadFile(path, 1 << 16);
    if (!pem.ok()) return Fail("auditor public key", pem.status());
    auditor_pems.push_back(*std::move(pem));
  }
  auto auditors = kbs::admin::AdminAuthenticator::Create(auditor_pems, &clock, "auditor");
  if (!auditors.ok()) return Fail("auditor public key", auditors.status());
  kbs::Audit audit(receipt_log->get(), auditors->get());

  std::vector<std::string> admin_pems;
  for (const std::string& path : config.admin_public_keys) {
    auto pem = kbs::common::ReadFile(path, 1 << 16);
    if (!pem.ok()) return Fail("admin public key", pem.status());
    admin_pems.push_back(*std::move(pem));
  }
  auto admin = kbs::admin::AdminAuthenticator::Create(admin_pems, &clock);
  if (!admin.ok()) return Fail("admin public key", admin.status());
  for (const std::string& key : (*auditors)->key_thumbprints()) {
    // Separate roles: a key trusted as both would make an auditor an admin
    // (compared as keys, not as PEM text).
    const std::vector<std::string>& admin_keys = (*admin)->key_thumbprints();
    if (std::find(admin_keys.begin(), admin_keys.end(), key) != admin_keys.end()) {
      return Fail("auditor public key",
                  absl::InvalidArgumentError("a key is trusted both as admin and as auditor; "
                                             "give auditors their own keys"));
    }
  }

  kbs::verifier::VerifierSet verifiers;
  // SEV-SNP: certificates from the evidence, then the collateral directory,
  // then AMD KDS (whose answers are kept in the directory).
  std::unique_ptr<kbs::verifier::snp::DirectoryCollateral> snp_directory;
  std::unique_ptr<kbs::verifier::snp::KdsCollateral> snp_kds;
  std::unique_ptr<kbs::verifier::snp::ChainedCollateral> snp_collateral;
  if (config.snp_enabled) {
    std::string dir = config.snp_collateral_dir.empty()
                          ? (std::filesystem::path(config.data_dir) / "snp-collateral").string()
                          : config.snp_collateral_dir;
    snp_directory = std::make_unique<kbs::verifier::snp::DirectoryCollateral>(dir);
    std::vector<kbs::verifier::snp::CollateralSource*> sources = {snp_directory.get()};
    kbs::verifier::snp::SnpVerifierOptions snp;
    for (const std::string& entry : config.snp_trusted_arks) {
      std::string product_name = entry.substr(0, entry.find(':'));
      auto product = kbs::verifier::snp::ProductFromName(product_name);
      absl::Status added =
          product.has_value()
              ? snp.anchors.Add(*product, entry.substr(entry.find(':') + 1))
              : absl::InvalidArgumentError(absl::StrCat("unknown product ", product_name));
      if (!added.ok()) return Fail("snp.trusted_arks", added);
    }
    if (!config.snp_kds_url.empty()) {
      kbs::verifier::snp::KdsCollateral::Options kds;
      kds.base_url = config.snp_kds_url;
      kds.min_interval = absl::Seconds(config.snp_kds_min_interval_secs);
      // What KDS answers is checked against the same ARKs before it is kept.
      kds.anchors = snp.anchors;
      kds.clock = &clock;
      snp_kds = std::make_unique<kbs::verifier::snp::KdsCollateral>(kds, snp_directory.get());
      sources.push_back(snp_kds.get());
    }
    snp_collateral = std::make_unique<kbs::verifier::snp::ChainedCollateral>(sources);
    snp.collateral = snp_collateral.get();
    snp.collateral_timeout = absl::Seconds(config.snp_collateral_timeout_secs);
    (void)verifiers.Add(kbs::verifier::snp::SnpVerifier::Create(std::move(snp), &clock));
  }
  // TDX and SGX: Intel PCS (or a PCCS) first, so expired collateral is
  // replaced, then the directory (offline set-ups, and PCS outages).
  namespace dcap = kbs::verifier::dcap;
  std::unique_ptr<dcap::DirectoryCollateral> dcap_directory;
  std::unique_ptr<dcap::PcsCollateral> dcap_pcs;
  std::unique_ptr<dcap::ChainedCollateral> dcap_collateral;
  dcap::RootAnchors dcap_anchors = dcap::RootAnchors::IntelDefault();
  for (const std::string& root : config.dcap_trusted_roots) {
    absl::Status added = dcap_anchors.Add(root);
    if (!added.ok()) return Fail("dcap.trusted_roots", added);
  }
  if (config.tdx_enabled || config.sgx_enabled) {
    std::string dir = config.dcap_collateral_dir.empty()
                          ? (std::filesystem::path(config.data_dir) / "dcap-collateral").string()
                          : config.dcap_collateral_dir;
    dcap_directory = std::make_unique<dcap::DirectoryCollateral>(dir);
    std::vector<dcap::CollateralSource*> sources;
    if (!config.dcap_pcs_url.empty()) {
      dcap::PcsCollateral::Options pcs;
      pcs.base_url = config.dcap_pcs_url;
      pcs.root_ca_crl_url = config.dcap_root_ca_crl_url;
      pcs.anchors = &dcap_anchors;
      if (!config.dcap_pcs_api_key_file.empty()) {
        auto key = kbs::common::ReadFile(config.dcap_pcs_api_key_file, 4096);
        if (!key.ok()) return Fail("dcap.pcs_api_key_file", key.status());
        pcs.api_key = std::string(absl::StripAsciiWhitespace(*key));
      }
      auto created = dcap::PcsCollateral::Create(pcs, dcap_directory.get(), &clock);
      if (!created.ok()) return Fail("dcap.pcs_url", created.status());
      dcap_pcs = *std::move(created);
      sources.push_back(dcap_pcs.get());
    }
    sources.push_back(dcap_directory.get());
    dcap_collateral = std::make_unique<dcap::ChainedCollateral>(sources);
    dcap::QuoteVerifierOptions options;
    options.anchors = dcap_anchors;
    options.collateral = dcap_collateral.get();
    options.collateral_timeout = absl::Seconds(config.dcap_collateral_timeout_secs);
    if (config.tdx_enabled) {
      (void)verifiers.Add(std::make_unique<kbs::verifier::tdx::TdxVerifier>(options, &clock));
    }
    if (config.sgx_enabled) {
      (void)verifiers.Add(std::make_unique<kbs::verifier::sgx::SgxVerifier>(options, &clock));
    }
  }
  if (config.allow_sample_tee) {
    (void)verifiers.Add(kbs::verifier::SampleVerifier::CreateCpu());
    (void)verifiers.Add(kbs::verifier::SampleVerifier::CreateDevice());
  }

  kbs::token::TokenService::Options token_options;
  token_options.lifetime = absl::Seconds(config.token_lifetime_secs);
  token_options.issuer = config.token_issuer;
  token_options.build = "kbs " KBS_VERSION;
  token_options.audience = config.token_audience;
  token_options.jwks_uri = config.token_jwks_uri;
  token_options.clock_skew = absl::Seconds(config.token_clock_skew_secs);
  token_options.key_rotation_interval = absl::Hours(24 * config.token_key_rotation_days);
  auto tokens = kbs::token::TokenService::Create(*std::move(signing_keys), token_options, &clock);
  if (!tokens.ok()) return Fail("token service", tokens.status());

  kbs::session::SessionStore sessions(
      {absl::Seconds(config.session_timeout_secs), static_cast<size_t>(config.max_sessions)});
  kbs::Broker::Dependencies deps{&clock,        &sessions,          &verifiers,
                                 tokens->get(), keys->get(),        policies->get(),
                                 admin->get(),  receipt_log->get(), kek};
  kbs::Broker::Options broker_options;
  broker_options.policy.sample_tee_enabled = config.allow_sample_tee;
  broker_options.record_attestations = config.record_attestations;
  broker_options.policy.expression_limits.max_expression_bytes =
      static_cast<size_t>(config.policy_max_expression_bytes);
  broker_options.policy.expression_limits.max_depth =
      static_cast<int>(config.policy_max_expression_depth);
  broker_options.policy.expression_limits.max_steps = config.policy_max_evaluation_steps;
  auto broker = kbs::Broker::Create(deps, broker_options);
  if (!broker.ok()) return Fail("broker", broker.status());

  kbs::http::Metrics metrics;
  kbs::http::Router router(broker->get(), &sessions, &metrics, &audit);
  auto http_address = kbs::config::ParseHostPort(config.http_address);
  kbs::http::HttpServerOptions http_options;
  http_options.host = http_address->host;
  http_options.port = http_address->port;
  http_options.threads = handler_threads;
  http_options.max_header_field_bytes = static_cast<size_t>(config.max_header_field_bytes);
  http_options.max_head_bytes = static_cast<size_t>(config.max_request_head_bytes);
  http_options.max_body_bytes = static_cast<size_t>(config.max_body_bytes);
  http_options.read_timeout = absl::Seconds(config.read_timeout_secs);
  http_options.idle_timeout = absl::Seconds(config.idle_timeout_secs);
  http_options.max_in_progress = static_cast<int>(config.max_requests_in_progress);
  http_options.tls_cert_file = config.tls_cert;
  http_options.tls_key_file = config.tls_key;
  // A handler fetching collateral ends by its deadline; shutdown waits for
  // it (the collateral sources are freed after the server).
  http_options.stop_grace =
      absl::Seconds(5 + std::max<int64_t>({25, config.snp_collateral_timeout_secs,
                                           config.dcap_collateral_timeout_secs}));
  auto http = kbs::http::HttpServer::Start(http_options, &router);
  if (!http.ok()) return Fail("HTTP server", http.status());

  std::unique_ptr<kbs::grpc_api::GrpcServer> grpc;
  if (!config.grpc_address.empty()) {
    kbs::grpc_api::GrpcServerOptions grpc_options;
    grpc_options.address = config.grpc_address;
    grpc_options.max_message_bytes = static_cast<size_t>(config.max_body_bytes);
    grpc_options.threads = handler_threads;
    grpc_options.max_in_progress = static_cast<int>(config.max_requests_in_progress);
    grpc_options.metrics = &metrics;
    grpc_options.tls_cert_file = config.tls_cert;
    grpc_options.tls_key_file = config.tls_key;
    auto started = kbs::grpc_api::GrpcServer::Start(grpc_options, broker->get(), &audit);
    if (!started.ok()) return Fail("gRPC server", started.status());
    grpc = *std::move(started);
  }

  const std::string scheme = (*http)->tls() ? "https" : "http";
  const std::string host = http_options.host.find(':') != std::string::npos
                               ? absl::StrCat("[", http_options.host, "]")
                               : http_options.host;
  std::string http_url = absl::StrCat(scheme, "://", host, ":", (*http)->port());
  std::string grpc_addr =
      grpc != nullptr ? absl::StrCat(config.grpc_address.substr(0, config.grpc_address.rfind(':')),
                                     ":", grpc->port())
                      : "";
  std::printf("kbs %s listening: HTTP %s%s%s\n", KBS_VERSION, http_url.c_str(),
              grpc != nullptr ? ", gRPC " : "", grpc_addr.c_str());
  std::printf("  data directory: %s\n", std::filesystem::absolute(dir).lexically_normal().c_str());
  std::printf("  admin API: %s\n",
              (*admin)->enabled() ? "enabled" : "closed (no --admin-public-key)");
  std::string halted = (*receipt_log)->halted_reason();
  std::printf("  receipt log: %llu receipts, %s; key %s\n",
              static_cast<unsigned long long>((*receipt_log)->size()),
              halted.empty() ? "verified" : absl::StrCat("HALTED: ", halted).c_str(),
              (*receipt_log)->verifier_key().c_str());
  {
    std::string current;
    for (const kbs::token::SigningKeyInfo& k : (*tokens)->SigningKeys()) {
      if (k.state == kbs::token::SigningKeyState::kCurrent) current = k.kid;
    }
    std::printf("  tokens: issuer %s (OIDC discovery %s), signing key %s\n",
                config.token_issuer.c_str(), (*tokens)->OpenIdConfiguration().ok() ? "on" : "off",
                current.c_str());
  }
  std::printf("  TEE verifiers: %s\n",
              verifiers.Tees().empty() ? "none" : absl::StrJoin(verifiers.Tees(), ", ").c_str());
  std::fflush(stdout);
  if (!ready_file.empty()) {
    // Lets tests and supervisors learn the bound ports (port 0 = any).
    (void)kbs::common::WriteFileAtomic(
        ready_file,
        absl::StrCat("{\"http\":", (*http)->port(), ",\"grpc\":", grpc ? grpc->port() : 0, "}\n"),
        0644);
  }

  // Expired sessions are purged in the background; SIGINT/SIGTERM stop.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  std::mutex mu;
  std::condition_variable cv;
  bool stopping = false;
  std::thread purger([&] {
    std::unique_lock<std::mutex> lock(mu);
    for (int tick = 1; !cv.wait_for(lock, std::chrono::seconds(2), [&] { return stopping; });
         ++tick) {
      // The KEK (an HSM) is probed every 2 s, so readiness follows it and a
      // returning HSM is reconnected without waiting for release traffic.
      (void)kek->Probe();
      if (grpc != nullptr) grpc->SetServing((*broker)->NotReadyReasons().empty());
      if (tick % 5 != 0) continue;
      sessions.PurgeExpired(clock.Now());
      // Scheduled token-signing-key rotation; a failure is retried on the
      // next tick and the current key keeps signing meanwhile.
      if (absl::Status s = (*tokens)->RotateIfDue(); !s.ok()) {
        KBS_LOG(kError, "token signing key rotation: ", s.message());
      }
    }
  });
  int sig = 0;
  sigwait(&signals, &sig);
  KBS_LOG(kInfo, "signal ", sig, ": shutting down");
  {
    std::lock_guard<std::mutex> lock(mu);
    stopping = true;
  }
  cv.notify_all();
  purger.join();
  if (grpc != nullptr) grpc->Stop();
  (*http)->Stop();
  return 0;
}

}  // namespace

int main(int argc, char** argv) {
  // Keys, the database and logs are private to the service account.
  ::umask(077);
  // Keep freed memory in the allocator instead of returning (and re-mapping)
  // it on every burst of requests (glibc malloc, when built without
  // KBS_TCMALLOC; tcmalloc keeps freed memory by itself and ignores these).
  mallopt(M_TRIM_THRESHOLD, 128 << 20);
  mallopt(M_TOP_PAD, 16 << 20);
  // Block the stop signals before any thread starts, so sigwait owns them.
  sigset_t signals;
  sigemptyset(&signals);
  sigaddset(&signals, SIGINT);
  sigaddset(&signals, SIGTERM);
  pthread_sigmask(SIG_BLOCK, &signals, nullptr);
  signal(SIGPIPE, SIG_IGN);
  // Past a file-size limit a write fails (EFBIG) instead of killing the
  // process: the receipt log then fails closed and recovers like on a full
  // disk.
  signal(SIGXFSZ, SIG_IGN);

  // Debian's abseil keeps absl::Mutex deadlock detection on; gRPC takes
  // many mutexes per call and the cycle bookkeeping costs measurable CPU.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  CLI::App app{"kbs: Key Broker Service for Confidential Containers (KBS protocol 0.4.0)"};
  app.set_version_flag("--version", KBS_VERSION);
  std::string config_file, http, grpc, data_dir, log_level, tls_cert, tls_key, ready_file;
  std::vector<std::string> admin_keys;
  bool allow_sample = false, insecure_http = false, no_grpc = false;
  app.add_option("-c,--config", config_file, "TOML configuration file (see deploy/kbs.toml)");
  app.add_option("--http", http, "HTTP listen address HOST:PORT (default 127.0.0.1:8080)");
  app.add_option("--grpc", grpc, "gRPC listen address HOST:PORT (default 127.0.0.1:50051)");
  app.add_flag("--no-grpc", no_grpc, "Do not serve gRPC");
  app.add_option("--data-dir", data_dir, "Data directory (default ./kbs-data)");
  app.add_flag("--allow-sample-tee", allow_sample,
               "Accept the `sample` TEE, which proves nothing (testing only)");
  app.add_option("--admin-public-key", admin_keys,
                 "PEM public key (Ed25519 or P-256) trusted for admin tokens; repeatable");
  std::vector<std::string> auditor_keys;
  app.add_option("--auditor-public-key", auditor_keys,
                 "PEM public key trusted for auditor tokens (read the receipt log); repeatable");
  app.add_flag("--insecure-http", insecure_http,
               "Allow plain HTTP/gRPC on non-loopback addresses (TLS terminated elsewhere)");
  app.add_option("--tls-cert", tls_cert, "PEM certificate chain for HTTPS and gRPC TLS");
  app.add_option("--tls-key", tls_key, "PEM private key for HTTPS and gRPC TLS");
  app.add_option("--log-level", log_level, "debug, info, warning or error");
  app.add_option("--ready-file", ready_file,
                 "Write {\"http\":PORT,\"grpc\":PORT} here once listening");
  CLI11_PARSE(app, argc, argv);

  KbsConfig config;
  if (!config_file.empty()) {
    auto loaded = kbs::config::LoadConfigFile(config_file);
    if (!loaded.ok()) return Fail("configuration", loaded.status());
    config = *std::move(loaded);
  }
  if (!http.empty()) config.http_address = http;
  if (!grpc.empty()) config.grpc_address = grpc;
  if (no_grpc) config.grpc_address.clear();
  if (!data_dir.empty()) config.data_dir = data_dir;
  if (allow_sample) config.allow_sample_tee = true;
  if (insecure_http) config.insecure_http = true;
  if (!tls_cert.empty()) config.tls_cert = tls_cert;
  if (!tls_key.empty()) config.tls_key = tls_key;
  if (!log_level.empty()) config.log_level = log_level;
  for (const std::string& k : admin_keys) config.admin_public_keys.push_back(k);
  for (const std::string& k : auditor_keys) config.auditor_public_keys.push_back(k);
  if (auto s = kbs::config::ValidateConfig(config); !s.ok()) return Fail("configuration", s);
  return Run(config, ready_file);
}
