// RunCli: runs the built `knnmem` CLI and captures its output and status.
#ifndef KNNMEM_TESTS_SUPPORT_CLI_RUNNER_H_
#define KNNMEM_TESTS_SUPPORT_CLI_RUNNER_H_

#include <string>

namespace knnmem::testing {

struct CliOutput {
  int status = -1;
  std::string out;
};

// Runs `knnmem <args>`, args split at spaces (no shell: no quoting, no
// redirection); stderr is folded into out when `merge_stderr`. status is the
// exit status (128 + the signal that killed it).
CliOutput RunCli(const std::string& args, bool merge_stderr = false);
// The same for another binary.
CliOutput RunBinary(const std::string& binary, const std::string& args,
                    bool merge_stderr);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_CLI_RUNNER_H_
