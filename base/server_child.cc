#include "base/server_child.h"

#include <signal.h>
#include <sys/wait.h>

#include <utility>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"

namespace knnmem {
namespace {

constexpr char kReadyMarker[] = "serving on ";
constexpr absl::Duration kStopTimeout = absl::Seconds(30);

bool CleanExit(int status) {
  return WIFEXITED(status) && WEXITSTATUS(status) == 0;
}

}  // namespace

bool ServerHasFlag(const std::string& binary, const std::string& flag) {
  absl::StatusOr<CommandResult> help =
      RunCommand({binary, "--help"}, /*merge_stderr=*/false, absl::Seconds(30));
  return help.ok() && help->output.find(flag) != std::string::npos;
}

absl::StatusOr<std::unique_ptr<ServerChild>> ServerChild::Start(
    const std::string& binary, const std::string& data_dir,
    const std::vector<std::string>& extra_args) {
  std::vector<std::string> args = {binary, "--listen", "127.0.0.1:0",
                                   "--data-dir", data_dir};
  args.insert(args.end(), extra_args.begin(), extra_args.end());
  absl::StatusOr<std::unique_ptr<Subprocess>> process =
      Subprocess::Start(std::move(args));
  if (!process.ok()) return process.status();
  std::unique_ptr<ServerChild> child(new ServerChild(*std::move(process)));
  absl::Status ready = child->AwaitReady();
  if (!ready.ok()) return ready;
  return child;
}

absl::Status ServerChild::AwaitReady() {
  std::string line;
  while (process_->ReadLine(absl::InfiniteFuture(), &line)) {
    const size_t at = line.find(kReadyMarker);
    if (at == std::string::npos) continue;
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
  const int status = Reap();
  return absl::UnavailableError(
      absl::StrCat("knnmem-server ", DescribeWaitStatus(status),
                   " before it was ready; its output: ",
                   absl::StripTrailingAsciiWhitespace(process_->output())));
}

int ServerChild::Reap() {
  // The end of stdout means the child exited; past the timeout it is killed.
  if (!process_->ReadAll(absl::Now() + kStopTimeout)) {
    process_->Signal(SIGKILL);
  }
  return process_->Wait();
}

absl::Status ServerChild::CheckAlive() {
  if (process_->Running()) return absl::OkStatus();
  process_->ReadAll(absl::Now() + absl::Seconds(1));  // it exited: EOF now
  return absl::UnavailableError(absl::StrCat(
      "knnmem-server ", DescribeWaitStatus(process_->Wait()), "; its output: ",
      absl::StripTrailingAsciiWhitespace(process_->output())));
}

absl::Status ServerChild::Stop() {
  if (!process_->Running()) {
    const int status = process_->Wait();
    return CleanExit(status)
               ? absl::OkStatus()
               : absl::UnavailableError(absl::StrCat(
                     "knnmem-server ", DescribeWaitStatus(status)));
  }
  process_->Signal(SIGTERM);
  const int status = Reap();
  if (CleanExit(status)) return absl::OkStatus();
  return absl::UnavailableError(absl::StrCat(
      "knnmem-server ", DescribeWaitStatus(status), " on SIGTERM; its output: ",
      absl::StripTrailingAsciiWhitespace(process_->output())));
}

ServerChild::~ServerChild() {
  if (process_->Running()) Stop().IgnoreError();
}

}  // namespace knnmem
