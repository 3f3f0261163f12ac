#include "tests/support/cli_runner.h"

#include <utility>
#include <vector>

#include "absl/strings/str_split.h"
#include "base/subprocess.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {

CliOutput RunCli(const std::string& args, bool merge_stderr) {
  return RunBinary(CliBinary(), args, merge_stderr);
}

CliOutput RunBinary(const std::string& binary, const std::string& args,
                    bool merge_stderr) {
  std::vector<std::string> argv = {binary};
  for (absl::string_view arg : absl::StrSplit(args, ' ', absl::SkipEmpty())) {
    argv.emplace_back(arg);
  }
  CliOutput o;
  absl::StatusOr<CommandResult> run = RunCommand(std::move(argv), merge_stderr);
  if (!run.ok()) {
    o.out = run.status().ToString();
    return o;
  }
  o.status = run->exit_code;
  o.out = std::move(run->output);
  return o;
}

}  // namespace knnmem::testing
