#include "tests/support/server_process.h"

#include <signal.h>
#include <sys/prctl.h>
#include <sys/wait.h>
#include <unistd.h>

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

bool ServerProcess::Start() {
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
  std::string buffer;
  char chunk[512];
  for (;;) {
    const size_t nl = buffer.find('\n');
    if (nl != std::string::npos) {
      std::string line = buffer.substr(0, nl);
      buffer.erase(0, nl + 1);
      std::smatch m;
      static const std::regex kReady("serving on (\\S+) \\(metrics on (\\S+),");
      if (std::regex_search(line, m, kReady)) {
        address_ = m[1];
        metrics_address_ = m[2];
        ready_line_ = line;
        return true;
      }
      continue;
    }
    const ssize_t n = read(stdout_fd_, chunk, sizeof chunk);
    if (n <= 0) break;
    buffer.append(chunk, static_cast<size_t>(n));
  }
  const int status = Wait();
  error_ = "server exited with status " + std::to_string(status) +
           " before it was ready; output: " + buffer;
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
