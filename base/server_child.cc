#include "base/server_child.h"

#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <cerrno>
#include <chrono>
#include <cstdio>
#include <cstring>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

constexpr char kReadyMarker[] = "serving on ";
constexpr double kStopTimeoutSeconds = 30;

std::string Describe(int status) {
  if (WIFEXITED(status)) {
    return absl::StrCat("exited with status ", WEXITSTATUS(status));
  }
  if (WIFSIGNALED(status)) {
    return absl::StrCat("was killed by signal ", WTERMSIG(status));
  }
  return absl::StrCat("ended with wait status ", status);
}

bool CleanExit(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

// `s` quoted for /bin/sh.
std::string ShellQuote(const std::string& s) {
  std::string out = "'";
  for (const char c : s) {
    if (c == '\'') {
      out += "'\\''";
    } else {
      out += c;
    }
  }
  return out + "'";
}

}  // namespace

bool ServerHasFlag(const std::string& binary, const std::string& flag) {
  FILE* help = popen((ShellQuote(binary) + " --help 2>/dev/null").c_str(), "r");
  if (help == nullptr) return false;
  std::string text;
  char chunk[512];
  size_t n = 0;
  while ((n = fread(chunk, 1, sizeof chunk, help)) > 0) text.append(chunk, n);
  pclose(help);
  return text.find(flag) != std::string::npos;
}

absl::StatusOr<std::unique_ptr<ServerChild>> ServerChild::Start(
    const std::string& binary, const std::string& data_dir,
    const std::vector<std::string>& extra_args) {
  if (access(binary.c_str(), X_OK) != 0) {
    return absl::NotFoundError(
        absl::StrCat("server binary '", binary, "': ", std::strerror(errno)));
  }
  std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0",
                                   "--data-dir", data_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  std::vector<char*> argv;
  for (std::string& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);

  int fds[2];
  if (pipe2(fds, O_CLOEXEC) != 0) {
    return absl::UnavailableError(absl::StrCat("pipe: ", std::strerror(errno)));
  }
  const pid_t parent = getpid();
  const pid_t pid = fork();
  if (pid < 0) {
    close(fds[0]);
    close(fds[1]);
    return absl::UnavailableError(absl::StrCat("fork: ", std::strerror(errno)));
  }
  if (pid == 0) {
    // Child: only async-signal-safe calls until execv.
    prctl(PR_SET_PDEATHSIG, SIGTERM);
    if (getppid() != parent) _exit(126);
    dup2(fds[1], STDOUT_FILENO);  // dup2 clears O_CLOEXEC on fd 1
    execv(argv[0], argv.data());
    static const char kMsg[] = "knnmem-bench: execv of the server failed\n";
    ssize_t ignored = write(STDERR_FILENO, kMsg, sizeof kMsg - 1);
    (void)ignored;
    _exit(127);
  }
  close(fds[1]);
  std::unique_ptr<ServerChild> child(new ServerChild(pid, fds[0]));
  child->argv_ = args;
  absl::Status ready = child->AwaitReady();
  if (!ready.ok()) return ready;
  return child;
}

absl::Status ServerChild::AwaitReady() {
  std::string line_buffer;
  char chunk[512];
  for (;;) {
    const size_t nl = line_buffer.find('\n');
    if (nl != std::string::npos) {
      const std::string line = line_buffer.substr(0, nl);
      line_buffer.erase(0, nl + 1);
      const size_t at = line.find(kReadyMarker);
      if (at != std::string::npos) {
        const size_t begin = at + sizeof kReadyMarker - 1;
        const size_t end = line.find_first_of(" \t", begin);
        address_ = line.substr(
            begin, end == std::string::npos ? std::string::npos : end - begin);
        ready_line_ = line;
        if (address_.empty() || address_.rfind(':') == std::string::npos) {
          return absl::DataLossError(
              absl::StrCat("server ready line has no HOST:PORT: ", line));
        }
        return absl::OkStatus();
      }
      continue;
    }
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) break;
    output_.append(chunk, static_cast<size_t>(n));
    line_buffer.append(chunk, static_cast<size_t>(n));
  }
  const int status = Reap();
  return absl::UnavailableError(absl::StrCat(
      "knnmem-server ", Describe(status), " before it was ready; its output: ",
      absl::StripTrailingAsciiWhitespace(output_)));
}

bool ServerChild::DrainOutput(double deadline) {
  char chunk[512];
  bool eof = false;
  while (stdout_fd_ >= 0) {
    const double left = deadline - NowSeconds();
    if (left <= 0) break;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int r = poll(&p, 1, static_cast<int>(left * 1000) + 1);
    if (r < 0 && errno != EINTR) break;
    if (r <= 0) continue;  // EINTR or timeout: the loop checks the deadline
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n < 0 && errno == EINTR) continue;
    if (n <= 0) {
      eof = true;
      break;
    }
    output_.append(chunk, static_cast<size_t>(n));
  }
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  return eof;
}

int ServerChild::Reap() {
  if (pid_ <= 0) return exit_status_;
  // EOF on stdout means the child exited; past the timeout it is killed.
  if (!DrainOutput(NowSeconds() + kStopTimeoutSeconds)) kill(pid_, SIGKILL);
  int status = 0;
  while (waitpid(pid_, &status, 0) < 0 && errno == EINTR) {
  }
  pid_ = -1;
  exit_status_ = status;
  return status;
}

absl::Status ServerChild::CheckAlive() {
  if (pid_ > 0) {
    int status = 0;
    if (waitpid(pid_, &status, WNOHANG) != pid_) return absl::OkStatus();
    pid_ = -1;
    exit_status_ = status;
    DrainOutput(NowSeconds() + 1);  // it exited: EOF comes at once
  }
  return absl::UnavailableError(absl::StrCat(
      "knnmem-server ", Describe(exit_status_),
      "; its output: ", absl::StripTrailingAsciiWhitespace(output_)));
}

absl::Status ServerChild::Stop() {
  if (pid_ <= 0) {
    return CleanExit(exit_status_)
               ? absl::OkStatus()
               : absl::UnavailableError(
                     absl::StrCat("knnmem-server ", Describe(exit_status_)));
  }
  kill(pid_, SIGTERM);
  const int status = Reap();
  if (CleanExit(status)) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "knnmem-server ", Describe(status), " on SIGTERM; its output: ",
      absl::StripTrailingAsciiWhitespace(output_)));
}

ServerChild::~ServerChild() {
  if (pid_ > 0) Stop().IgnoreError();
}

}  // namespace knnmem
