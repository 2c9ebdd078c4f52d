#include "tests/testing/kbs_process.h"

#include <fcntl.h>
#include <signal.h>
#include <sys/wait.h>
#include <unistd.h>

#include <atomic>
#include <cstdlib>
#include <filesystem>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "common/files.h"
#include "common/jose/jwt.h"
#include "common/json.h"
#include "common/keys.h"

namespace kbs::testing {
namespace {

std::string TempRoot() {
  const char* base = std::getenv("TEST_TMPDIR");
  return base != nullptr ? base : "/tmp";
}

std::string EnvOrDie(const char* name) {
  const char* value = std::getenv(name);
  if (value == nullptr || *value == '\0') {
    std::fprintf(stderr, "environment variable %s must name the binary under test\n", name);
    std::abort();
  }
  return std::filesystem::absolute(value).string();
}

pid_t Spawn(const std::vector<std::string>& argv, const std::string& output_file) {
  pid_t pid = ::fork();
  if (pid != 0) return pid;
  int fd = ::open(output_file.c_str(), O_WRONLY | O_CREAT | O_TRUNC, 0600);
  if (fd >= 0) {
    ::dup2(fd, 1);
    ::dup2(fd, 2);
  }
  std::vector<char*> args;
  for (const std::string& a : argv) args.push_back(const_cast<char*>(a.c_str()));
  args.push_back(nullptr);
  ::execv(args[0], args.data());
  ::_exit(127);
}

int WaitFor(pid_t pid, absl::Duration timeout) {
  absl::Time deadline = absl::Now() + timeout;
  while (true) {
    int status = 0;
    pid_t r = ::waitpid(pid, &status, WNOHANG);
    if (r == pid) {
      if (WIFEXITED(status)) return WEXITSTATUS(status);
      if (WIFSIGNALED(status)) return 128 + WTERMSIG(status);
      return -1;
    }
    if (absl::Now() > deadline) {
      ::kill(pid, SIGKILL);
      ::waitpid(pid, &status, 0);
      return -2;
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(10));
  }
}

std::string NewWorkDir() {
  static std::atomic<int> counter{0};
  std::string dir = absl::StrCat(TempRoot(), "/kbs_e2e_", ::getpid(), "_", counter.fetch_add(1));
  std::filesystem::remove_all(dir);
  std::filesystem::create_directories(dir);
  return dir;
}

}  // namespace

std::string KbsBinary() { return EnvOrDie("KBS_BIN"); }
std::string KbsctlBinary() { return EnvOrDie("KBSCTL_BIN"); }

ProcessResult RunCommand(const std::vector<std::string>& argv, absl::Duration timeout) {
  std::string out = absl::StrCat(NewWorkDir(), "/output");
  ProcessResult result;
  pid_t pid = Spawn(argv, out);
  result.exit_code = WaitFor(pid, timeout);
  result.output = common::ReadFile(out).value_or("");
  std::filesystem::remove_all(std::filesystem::path(out).parent_path());
  return result;
}

absl::StatusOr<std::unique_ptr<KbsProcess>> KbsProcess::Start(const Options& options) {
  auto p = std::unique_ptr<KbsProcess>(new KbsProcess());
  p->work_dir_ = NewWorkDir();
  p->owns_data_dir_ = options.data_dir.empty();
  p->data_dir_ = options.data_dir.empty() ? p->work_dir_ + "/data" : options.data_dir;
  p->log_file_ = p->work_dir_ + "/kbs.log";
  std::string ready = p->work_dir_ + "/ready.json";
  std::vector<std::string> argv = {KbsBinary(), "--data-dir",  p->data_dir_,
                                   "--http",    "127.0.0.1:0", "--ready-file",
                                   ready,       "--log-level", "debug"};
  if (options.grpc) {
    argv.insert(argv.end(), {"--grpc", "127.0.0.1:0"});
  } else {
    argv.push_back("--no-grpc");
  }
  if (options.allow_sample) argv.push_back("--allow-sample-tee");
  if (options.admin_key) {
    auto key = common::GenerateEd25519Key();
    if (!key.ok()) return key.status();
    p->admin_key_ = p->work_dir_ + "/admin.key";
    p->admin_pub_ = p->work_dir_ + "/admin.pub";
    auto status = common::WriteFileAtomic(p->admin_key_, *common::PrivateKeyToPem(key->get()));
    if (!status.ok()) return status;
    status = common::WriteFileAtomic(p->admin_pub_, *common::PublicKeyToPem(key->get()), 0644);
    if (!status.ok()) return status;
    argv.insert(argv.end(), {"--admin-public-key", p->admin_pub_});
  }
  if (!options.config_toml.empty()) {
    std::string config = p->work_dir_ + "/kbs.toml";
    auto status = common::WriteFileAtomic(config, options.config_toml, 0644);
    if (!status.ok()) return status;
    argv.insert(argv.end(), {"--config", config});
  }
  argv.insert(argv.end(), options.extra_args.begin(), options.extra_args.end());
  p->pid_ = Spawn(argv, p->log_file_);
  absl::Time deadline = absl::Now() + absl::Seconds(15);
  while (absl::Now() < deadline) {
    auto text = common::ReadFile(ready);
    if (text.ok()) {
      auto json = common::ParseJson(*text);
      if (json.ok()) {
        p->http_port_ = (*json)["http"].get<int>();
        p->grpc_port_ = (*json)["grpc"].get<int>();
        return p;
      }
    }
    if (!p->Running()) {
      return absl::FailedPreconditionError(absl::StrCat("kbs exited: ", p->Log()));
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(20));
  }
  return absl::DeadlineExceededError(absl::StrCat("kbs did not start: ", p->Log()));
}

KbsProcess::~KbsProcess() {
  Stop();
  // The data directory lives inside work_dir_ unless it was borrowed.
  std::error_code ignored;
  std::filesystem::remove_all(work_dir_, ignored);
}

std::string KbsProcess::http_url() const { return absl::StrCat("http://127.0.0.1:", http_port_); }
std::string KbsProcess::grpc_address() const { return absl::StrCat("127.0.0.1:", grpc_port_); }

std::string KbsProcess::AdminToken(absl::Duration lifetime) const {
  auto pem = common::ReadFile(admin_key_);
  auto signer = jose::JwtSigner::Create(*common::PrivateKeyFromPem(*pem));
  int64_t now = absl::ToUnixSeconds(absl::Now());
  int64_t exp = absl::ToUnixSeconds(absl::Now() + lifetime);
  return *(*signer)->Sign(common::Json{{"iat", std::min(now, exp - 1)}, {"exp", exp}});
}

bool KbsProcess::Running() {
  if (pid_ <= 0) return false;
  int status = 0;
  pid_t r = ::waitpid(pid_, &status, WNOHANG);
  if (r == pid_) {
    pid_ = -1;
    return false;
  }
  return true;
}

int KbsProcess::Stop() {
  if (pid_ <= 0) return 0;
  ::kill(pid_, SIGTERM);
  int code = WaitFor(pid_, absl::Seconds(10));
  pid_ = -1;
  return code;
}

void KbsProcess::Kill() {
  if (pid_ <= 0) return;
  ::kill(pid_, SIGKILL);
  (void)WaitFor(pid_, absl::Seconds(10));
  pid_ = -1;
}

std::string KbsProcess::Log() const { return common::ReadFile(log_file_).value_or(""); }

}  // namespace kbs::testing
