// Subprocess: a child process started from an argv, never a shell string,
// with its stdout on a pipe (read line by line or to the end) and its
// stderr inherited or folded into stdout. The child gets `death_signal` if
// this process dies (PR_SET_PDEATHSIG), so that an orphan cannot hold a
// test runner's pipes open. The one process helper of the project: the
// bench's and the tests' server children, the CLI runner, Prometheus in
// tests and the model's gnuplot all go through it.
#ifndef KNNMEM_BASE_SUBPROCESS_H_
#define KNNMEM_BASE_SUBPROCESS_H_

#include <signal.h>
#include <sys/types.h>

#include <memory>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/time/time.h"

namespace knnmem {

struct SubprocessOptions {
  // stderr into the stdout pipe; otherwise inherited.
  bool merge_stderr = false;
  // Both streams to this file instead (truncated); no pipe then.
  std::string output_file;
  int death_signal = SIGTERM;
};

class Subprocess {
 public:
  // Forks and execs argv[0] with `argv` (argv[0] without a '/' is looked up
  // in PATH). NOT_FOUND when it is not an executable file; UNAVAILABLE when
  // the fork fails.
  static absl::StatusOr<std::unique_ptr<Subprocess>> Start(
      std::vector<std::string> argv,
      const SubprocessOptions& options = SubprocessOptions());
  // SIGKILLs and reaps a child still running.
  ~Subprocess();

  Subprocess(const Subprocess&) = delete;
  Subprocess& operator=(const Subprocess&) = delete;

  pid_t pid() const { return pid_; }
  const std::vector<std::string>& argv() const { return argv_; }

  // The next line of stdout (without '\n'); false at its end or once
  // `deadline` passes.
  bool ReadLine(absl::Time deadline, std::string* line);
  // Reads stdout to its end; false if `deadline` passed first.
  bool ReadAll(absl::Time deadline);
  // Everything read from stdout so far.
  const std::string& output() const { return output_; }

  void Signal(int signal);
  // Reaps the child and returns its raw wait status (the same again once
  // reaped).
  int Wait();
  // True while the child runs (reaps it once it has exited).
  bool Running();

 private:
  Subprocess(pid_t pid, int stdout_fd, std::vector<std::string> argv)
      : pid_(pid), stdout_fd_(stdout_fd), argv_(std::move(argv)) {}
  // Reads once from the pipe; false at its end or `deadline`.
  bool ReadSome(absl::Time deadline);

  pid_t pid_;
  int stdout_fd_;  // -1: no pipe, or at its end
  std::vector<std::string> argv_;
  std::string output_;
  size_t consumed_ = 0;  // output_ before this was returned by ReadLine
  int wait_status_ = -1;
};

// "exited with status N", "was killed by signal N".
std::string DescribeWaitStatus(int wait_status);
// The exit status, or 128 + the signal that killed it (as a shell says).
int ExitCode(int wait_status);

struct CommandResult {
  int exit_code = -1;  // ExitCode()
  std::string output;  // stdout (with stderr when merged)
};

// Runs `argv` to its end. DEADLINE_EXCEEDED (the child killed) after
// `timeout`.
absl::StatusOr<CommandResult> RunCommand(
    std::vector<std::string> argv, bool merge_stderr = false,
    absl::Duration timeout = absl::Minutes(5));

}  // namespace knnmem

#endif  // KNNMEM_BASE_SUBPROCESS_H_
