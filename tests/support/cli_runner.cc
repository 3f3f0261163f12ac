#include "tests/support/cli_runner.h"

#include <sys/wait.h>

#include <cstdio>

#include "tests/support/server_process.h"

namespace knnmem::testing {

CliOutput RunCli(const std::string& args, bool merge_stderr) {
  return RunBinary(CliBinary(), args, merge_stderr);
}

CliOutput RunBinary(const std::string& binary, const std::string& args,
                    bool merge_stderr) {
  const std::string cmd = binary + " " + args + (merge_stderr ? " 2>&1" : "");
  CliOutput o;
  FILE* p = popen(cmd.c_str(), "r");
  if (p == nullptr) return o;
  char buf[65536];
  size_t n;
  while ((n = fread(buf, 1, sizeof buf, p)) > 0) o.out.append(buf, n);
  const int st = pclose(p);
  o.status = WIFEXITED(st) ? WEXITSTATUS(st) : -1;
  return o;
}

}  // namespace knnmem::testing
