// Test helper: runs the real `kbs` binary as a child process on loopback
// (ports chosen by the kernel, read back from --ready-file), with its own
// temporary data directory and admin key pair.
#ifndef KBS_TESTS_TESTING_KBS_PROCESS_H_
#define KBS_TESTS_TESTING_KBS_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace kbs::testing {

// Paths of the binaries under test: env KBS_BIN / KBSCTL_BIN.
std::string KbsBinary();
std::string KbsctlBinary();

struct ProcessResult {
  int exit_code = -1;
  std::string output;  // stdout and stderr interleaved
};
// Runs a command to completion (bounded by `timeout`), capturing output.
ProcessResult RunCommand(const std::vector<std::string>& argv,
                         absl::Duration timeout = absl::Seconds(60));

class KbsProcess {
 public:
  struct Options {
    bool allow_sample = true;
    bool admin_key = true;
    bool grpc = true;
    std::string config_toml = {};  // extra TOML written to a config file
    std::vector<std::string> extra_args = {};
    std::string data_dir = {};  // reuse (restart tests); empty = fresh
  };
  // Starts kbs and waits (up to 15 s) until it listens.
  static absl::StatusOr<std::unique_ptr<KbsProcess>> Start(const Options& options);
  ~KbsProcess();

  std::string http_url() const;      // http://127.0.0.1:PORT
  std::string grpc_address() const;  // 127.0.0.1:PORT
  int http_port() const { return http_port_; }
  pid_t pid() const { return pid_; }
  const std::string& data_dir() const { return data_dir_; }
  const std::string& work_dir() const { return work_dir_; }
  const std::string& admin_key_file() const { return admin_key_; }
  const std::string& admin_pub_file() const { return admin_pub_; }
  // A fresh admin JWT signed by the admin key (lifetime may be negative).
  std::string AdminToken(absl::Duration lifetime = absl::Minutes(5)) const;

  bool Running();
  // SIGTERM, wait; returns the exit code.
  int Stop();
  // SIGKILL (a crash: no shutdown work at all), wait.
  void Kill();
  std::string Log() const;

 private:
  KbsProcess() = default;
  pid_t pid_ = -1;
  int http_port_ = 0;
  int grpc_port_ = 0;
  std::string work_dir_, data_dir_, admin_key_, admin_pub_, log_file_;
  bool owns_data_dir_ = true;
};

}  // namespace kbs::testing

#endif  // KBS_TESTS_TESTING_KBS_PROCESS_H_
