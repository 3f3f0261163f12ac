// ServerProcess: a real knnmem-server child process on 127.0.0.1:0, for
// integration tests. Start() returns once the server printed its ready line
// (read from its stdout pipe: no sleeping, no polling).
#ifndef KNNMEM_TESTS_SUPPORT_SERVER_PROCESS_H_
#define KNNMEM_TESTS_SUPPORT_SERVER_PROCESS_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/subprocess.h"

namespace knnmem::testing {

class ServerProcess {
 public:
  // `data_dir` is passed as --data-dir, `listen` as --listen (port 0: a
  // free port); `extra_args` are appended.
  explicit ServerProcess(std::string data_dir,
                         std::vector<std::string> extra_args = {},
                         std::string listen = "127.0.0.1:0");
  ~ServerProcess();  // kills the server if still running

  ServerProcess(const ServerProcess&) = delete;
  ServerProcess& operator=(const ServerProcess&) = delete;

  // Before Start: the server's stderr goes to the stdout pipe too, so that
  // AwaitOutput sees its log lines.
  void MergeStderr() { merge_stderr_ = true; }
  // Starts the server and waits for its ready line. Returns false (with the
  // reason in error()) if it exits first.
  bool Start();
  // SIGTERM and wait; returns the exit status (0 on a clean stop).
  int Stop();
  // SIGKILL and wait: a crash.
  void Kill();
  // Sends `signal` without waiting; Wait() then reaps the process and
  // returns its exit status.
  void Signal(int signal);
  int Wait();
  // True while the server runs (a server that exited is reaped: Wait()
  // then returns its exit status).
  bool Running();

  // Reads the server's stdout until a line containing `text` (true; the
  // line in *line when given), or until `timeout` passes or the server
  // exits (false).
  bool AwaitOutput(const std::string& text, absl::Duration timeout,
                   std::string* line = nullptr);

  const std::string& address() const { return address_; }
  // The port of address().
  int port() const;
  // The running server's pid; -1 before Start and once reaped.
  pid_t pid() const;
  // HOST:PORT of the Prometheus endpoint.
  const std::string& metrics_address() const { return metrics_address_; }
  const std::string& error() const { return error_; }
  const std::string& ready_line() const { return ready_line_; }

 private:
  std::string data_dir_;
  std::vector<std::string> extra_args_;
  std::string listen_;
  std::unique_ptr<Subprocess> process_;
  bool waited_ = false;
  bool merge_stderr_ = false;
  std::string address_;
  std::string metrics_address_;
  std::string error_;
  std::string ready_line_;
};

// Path of a binary built by this tree (set by CMake).
std::string ServerBinary();
std::string CliBinary();

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_SERVER_PROCESS_H_
