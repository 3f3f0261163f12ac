#include "base/subprocess.h"

#include <fcntl.h>
#include <poll.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cerrno>
#include <cstdlib>
#include <cstring>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/time/clock.h"

namespace knnmem {

namespace {

// `name` itself when it holds a '/', else the first executable PATH/name.
std::string Resolve(const std::string& name) {
  if (name.find('/') != std::string::npos) return name;
  const char* path = std::getenv("PATH");
  for (absl::string_view dir :
       absl::StrSplit(path != nullptr ? path : "/usr/bin:/bin", ':')) {
    std::string candidate = absl::StrCat(dir, "/", name);
    if (access(candidate.c_str(), X_OK) == 0) return candidate;
  }
  return name;
}

}  // namespace

absl::StatusOr<std::unique_ptr<Subprocess>> Subprocess::Start(
    std::vector<std::string> argv, const SubprocessOptions& options) {
  if (!argv.empty()) argv[0] = Resolve(argv[0]);
  if (argv.empty() || access(argv[0].c_str(), X_OK) != 0) {
    return absl::NotFoundError(absl::StrCat("cannot run '",
                                            argv.empty() ? "" : argv[0],
                                            "': ", std::strerror(errno)));
  }
  std::vector<char*> args;
  for (std::string& a : argv) args.push_back(a.data());
  args.push_back(nullptr);
  int fds[2] = {-1, -1};
  int out = -1;
  if (options.output_file.empty()) {
    if (pipe2(fds, O_CLOEXEC) != 0) {
      return absl::UnavailableError(
          absl::StrCat("pipe: ", std::strerror(errno)));
    }
    out = fds[1];
  } else {
    out = open(options.output_file.c_str(),
               O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (out < 0) {
      return absl::UnavailableError(absl::StrCat(
          "cannot write '", options.output_file, "': ", std::strerror(errno)));
    }
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    const int e = errno;
    close(out);
    if (fds[0] >= 0) close(fds[0]);
    return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(e)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until execv.
    prctl(PR_SET_PDEATHSIG, options.death_signal);
    if (getppid() != parent) _exit(126);  // the parent died already
    dup2(out, STDOUT_FILENO);             // dup2 clears O_CLOEXEC on the copy
    if (options.merge_stderr || !options.output_file.empty()) {
      dup2(out, STDERR_FILENO);
    }
    execv(args[0], args.data());
    static const char kMsg[] = "knnmem: execv failed\n";
    const ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    static_cast<void>(ignored);
    _exit(127);
  }
  close(out);
  return std::unique_ptr<Subprocess>(
      new Subprocess(pid, fds[0], std::move(argv)));
}

Subprocess::~Subprocess() {
  if (pid_ > 0 && wait_status_ == -1) {
    kill(pid_, SIGKILL);
    Wait();
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
}

bool Subprocess::ReadSome(absl::Time deadline) {
  if (stdout_fd_ < 0) return false;
  for (;;) {
    pollfd p{stdout_fd_, POLLIN, 0};
    const int64_t ms =
        deadline == absl::InfiniteFuture()
            ? -1
            : std::max<int64_t>(
                  0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    const int ready =
        poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30)));
    if (ready < 0 && errno == EINTR) continue;
    if (ready <= 0) return false;  // the deadline passed
    char chunk[4096];
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      close(stdout_fd_);
      stdout_fd_ = -1;
      return false;
    }
    output_.append(chunk, static_cast<size_t>(n));
    return true;
  }
}

bool Subprocess::ReadLine(absl::Time deadline, std::string* line) {
  for (;;) {
    const size_t nl = output_.find('\n', consumed_);
    if (nl != std::string::npos) {
      *line = output_.substr(consumed_, nl - consumed_);
      consumed_ = nl + 1;
      return true;
    }
    if (!ReadSome(deadline)) return false;
  }
}

bool Subprocess::ReadAll(absl::Time deadline) {
  while (ReadSome(deadline)) {
  }
  return stdout_fd_ < 0;
}

void Subprocess::Signal(int signal) {
  if (pid_ > 0 && wait_status_ == -1) kill(pid_, signal);
}

int Subprocess::Wait() {
  if (wait_status_ != -1) return wait_status_;
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  wait_status_ = status;
  return status;
}

bool Subprocess::Running() {
  if (wait_status_ != -1) return false;
  int status = 0;
  if (waitpid(pid_, &status, WNOHANG) != pid_) return true;
  wait_status_ = status;
  return false;
}

std::string DescribeWaitStatus(int wait_status) {
  if (WIFEXITED(wait_status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(wait_status));
  }
  if (WIFSIGNALED(wait_status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(wait_status));
  }
  return absl::StrCat("ended with wait status ", wait_status);
}

int ExitCode(int wait_status) {
  if (WIFEXITED(wait_status)) return WEXITSTATUS(wait_status);
  if (WIFSIGNALED(wait_status)) return 128 + WTERMSIG(wait_status);
  return -1;
}

absl::StatusOr<CommandResult> RunCommand(std::vector<std::string> argv,
                                         bool merge_stderr,
                                         absl::Duration timeout) {
  SubprocessOptions options;
  options.merge_stderr = merge_stderr;
  options.death_signal = SIGKILL;
  absl::StatusOr<std::unique_ptr<Subprocess>> child =
      Subprocess::Start(std::move(argv), options);
  if (!child.ok()) return child.status();
  Subprocess& c = **child;
  if (!c.ReadAll(absl::Now() + timeout)) {
    c.Signal(SIGKILL);
    c.Wait();
    return absl::DeadlineExceededError(absl::StrCat(
        "'", c.argv()[0], "' ran past ", absl::FormatDuration(timeout),
        "; killed. Output: ", c.output()));
  }
  CommandResult result;
  result.exit_code = ExitCode(c.Wait());
  result.output = c.output();
  return result;
}

}  // namespace knnmem
