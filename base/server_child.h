// ServerChild: a real knnmem-server child process on 127.0.0.1:0.
//
// Contract: Start() runs `binary --listen 127.0.0.1:0 --data-dir DIR` as a
// Subprocess, with the child's stdout on a pipe and its stderr inherited, and
// returns once the child printed its ready line ("... serving on HOST:PORT
// ...", read from the pipe: no sleeping, no polling). If the child exits
// first, Start() returns UNAVAILABLE with its exit status and output. The
// child gets SIGTERM if this process dies (PR_SET_PDEATHSIG). Stop() sends
// SIGTERM, drains the pipe and reaps the child; it is an error when the
// child exits with a non-zero status. The destructor stops a child that is
// still running.
#ifndef KNNMEM_BASE_SERVER_CHILD_H_
#define KNNMEM_BASE_SERVER_CHILD_H_

#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/subprocess.h"

namespace knnmem {

// True when `binary --help` mentions `flag` (for flags that older servers
// lack, such as --metrics-address).
bool ServerHasFlag(const std::string& binary, const std::string& flag);

class ServerChild {
 public:
  static absl::StatusOr<std::unique_ptr<ServerChild>> Start(
      const std::string& binary, const std::string& data_dir,
      const std::vector<std::string>& extra_args = {});
  ~ServerChild();

  ServerChild(const ServerChild&) = delete;
  ServerChild& operator=(const ServerChild&) = delete;

  pid_t pid() const { return process_->pid(); }
  // HOST:PORT from the ready line.
  const std::string& address() const { return address_; }
  const std::string& ready_line() const { return ready_line_; }
  // The argv it was started with, binary first.
  const std::vector<std::string>& argv() const { return process_->argv(); }

  // OK while the child runs; otherwise UNAVAILABLE with how it ended and
  // everything it printed on stdout (a "signal 15" line there means someone
  // else sent it SIGTERM).
  absl::Status CheckAlive();
  // SIGTERM, wait, and the exit status as a Status.
  absl::Status Stop();

 private:
  explicit ServerChild(std::unique_ptr<Subprocess> process)
      : process_(std::move(process)) {}
  // Reads stdout until the ready line or its end.
  absl::Status AwaitReady();
  // Reads stdout to its end (SIGKILL if it stays open past the stop
  // timeout), then reaps the child; returns the raw wait status.
  int Reap();

  std::unique_ptr<Subprocess> process_;
  std::string address_;
  std::string ready_line_;
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_SERVER_CHILD_H_
