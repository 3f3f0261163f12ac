#include "tests/support/server_process.h"

#include <grpc/grpc.h>
#include <poll.h>
#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

#include <algorithm>
#include <cstdio>
#include <cstring>
#include <regex>

namespace knnmem::testing {

std::string ServerBinary() { return KNNMEM_SERVER_BINARY; }
std::string CliBinary() { return KNNMEM_CLI_BINARY; }

ServerProcess::ServerProcess(std::string data_dir,
                             std::vector<std::string> extra_args,
                             std::string listen)
    : data_dir_(std::move(data_dir)),
      extra_args_(std::move(extra_args)),
      listen_(std::move(listen)) {}

ServerProcess::~ServerProcess() {
  if (pid_ > 0) Kill();
}

namespace {

// gRPC shuts itself down when its last object is destroyed, and that
// shutdown waits up to 10 s for connections still closing (to a server just
// stopped): a test destroying its last client right after a server stopped
// stalled for 10 s. Keep gRPC initialised for the life of the test process.
void KeepGrpcInitialised() {
  static const bool kept = [] {
    grpc_init();
    return true;
  }();
  static_cast<void>(kept);
}

}  // namespace

bool ServerProcess::Start() {
  KeepGrpcInitialised();
  int fds[2];
  if (pipe(fds) != 0) {
    error_ = "pipe failed";
    return false;
  }
  std::vector<std::string> args = {
      ServerBinary(), "--listen",   listen_,  "--metrics-address",
      "127.0.0.1:0",  "--data-dir", data_dir_};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  std::vector<char*> argv;
  for (auto& a : args) argv.push_back(a.data());
  argv.push_back(nullptr);
  pid_ = fork();
  if (pid_ == 0) {
    // A test that dies (an assertion, a sanitizer report) takes its server
    // with it: an orphan would hold ctest's output pipe open forever.
    prctl(PR_SET_PDEATHSIG, SIGKILL);
    dup2(fds[1], 1);
    close(fds[0]);
    close(fds[1]);
    execv(argv[0], argv.data());
    _exit(127);
  }
  close(fds[1]);
  stdout_fd_ = fds[0];
  // Read lines until the ready line, or EOF (the server exited).
  std::string line;
  while (ReadLine(absl::InfiniteFuture(), &line)) {
    std::smatch m;
    static const std::regex kReady("serving on (\\S+) \\(metrics on (\\S+),");
    if (std::regex_search(line, m, kReady)) {
      address_ = m[1];
      metrics_address_ = m[2];
      ready_line_ = line;
      return true;
    }
  }
  const int status = Wait();
  error_ = "server exited with status " + std::to_string(status) +
           " before it was ready; output: " + output_;
  return false;
}

bool ServerProcess::ReadLine(absl::Time deadline, std::string* line) {
  for (;;) {
    const size_t nl = output_.find('\n', consumed_);
    if (nl != std::string::npos) {
      *line = output_.substr(consumed_, nl - consumed_);
      consumed_ = nl + 1;
      return true;
    }
    if (stdout_fd_ < 0) return false;
    pollfd p{stdout_fd_, POLLIN, 0};
    const int64_t ms =
        deadline == absl::InfiniteFuture()
            ? -1
            : std::max<int64_t>(
                  0, absl::ToInt64Milliseconds(deadline - absl::Now()));
    if (poll(&p, 1, static_cast<int>(std::min<int64_t>(ms, 1 << 30))) <= 0) {
      return false;  // the deadline passed
    }
    char chunk[512];
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n <= 0) return false;
    output_.append(chunk, static_cast<size_t>(n));
  }
}

bool ServerProcess::AwaitOutput(const std::string& text,
                                absl::Duration timeout) {
  const absl::Time deadline = absl::Now() + timeout;
  std::string line;
  while (ReadLine(deadline, &line)) {
    if (line.find(text) != std::string::npos) return true;
  }
  return false;
}

int ServerProcess::Wait() {
  if (pid_ <= 0) return -1;
  int status = 0;
  waitpid(pid_, &status, 0);
  pid_ = -1;
  if (stdout_fd_ >= 0) close(stdout_fd_);
  stdout_fd_ = -1;
  if (WIFEXITED(status)) return WEXITSTATUS(status);
  return 128 + WTERMSIG(status);
}

int ServerProcess::Stop() {
  if (pid_ <= 0) return -1;
  kill(pid_, SIGTERM);
  return Wait();
}

void ServerProcess::Signal(int signal) {
  if (pid_ > 0) kill(pid_, signal);
}

void ServerProcess::Kill() {
  if (pid_ <= 0) return;
  kill(pid_, SIGKILL);
  Wait();
}

}  // namespace knnmem::testing
