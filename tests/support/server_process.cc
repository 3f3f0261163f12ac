#include "tests/support/server_process.h"

#include <grpc/grpc.h>
#include <signal.h>

#include <regex>
#include <utility>

#include "absl/strings/numbers.h"

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
  if (pid() > 0) Kill();
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
  std::vector<std::string> args = {
      ServerBinary(), "--listen",   listen_,  "--metrics-address",
      "127.0.0.1:0",  "--data-dir", data_dir_};
  args.insert(args.end(), extra_args_.begin(), extra_args_.end());
  // A test that dies (an assertion, a sanitizer report) takes its server
  // with it: an orphan would hold ctest's output pipe open forever.
  SubprocessOptions options;
  options.death_signal = SIGKILL;
  options.merge_stderr = merge_stderr_;
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(args), options);
  if (!process.ok()) {
    error_ = process.status().ToString();
    return false;
  }
  process_ = *std::move(process);
  waited_ = false;
  // Read lines until the ready line, or the end (the server exited).
  std::string line;
  while (process_->ReadLine(absl::InfiniteFuture(), &line)) {
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
           " before it was ready; output: " + process_->output();
  return false;
}

bool ServerProcess::AwaitOutput(const std::string& text, absl::Duration timeout,
                                std::string* found) {
  if (process_ == nullptr) return false;
  const absl::Time deadline = absl::Now() + timeout;
  std::string line;
  while (process_->ReadLine(deadline, &line)) {
    if (line.find(text) == std::string::npos) continue;
    if (found != nullptr) *found = line;
    return true;
  }
  return false;
}

int ServerProcess::port() const {
  int port = 0;
  const size_t colon = address_.rfind(':');
  if (colon == std::string::npos ||
      !absl::SimpleAtoi(address_.substr(colon + 1), &port)) {
    return 0;
  }
  return port;
}

pid_t ServerProcess::pid() const {
  return process_ != nullptr && !waited_ ? process_->pid() : -1;
}

bool ServerProcess::Running() { return pid() > 0 && process_->Running(); }

int ServerProcess::Wait() {
  if (pid() <= 0) return -1;
  waited_ = true;
  return ExitCode(process_->Wait());
}

int ServerProcess::Stop() {
  Signal(SIGTERM);
  return Wait();
}

void ServerProcess::Signal(int signal) {
  if (pid() > 0) process_->Signal(signal);
}

void ServerProcess::Kill() {
  Signal(SIGKILL);
  Wait();
}

}  // namespace knnmem::testing
