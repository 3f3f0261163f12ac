// Descriptor exhaustion (issue 16, point 7): a server started with a low
// soft RLIMIT_NOFILE (systemd's 1024) raises it to the hard limit, so that
// idle connections cannot starve RocksDB of descriptors, and logs both.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <fstream>
#include <sstream>
#include <string>

#include "tests/support/server_process.h"
#include "tests/support/temp_dir.h"

namespace knnmem::testing {
namespace {

// The soft limit of `pid` from /proc/PID/limits.
std::string SoftLimitOf(pid_t pid) {
  std::ifstream in("/proc/" + std::to_string(pid) + "/limits");
  for (std::string line; std::getline(in, line);) {
    if (line.rfind("Max open files", 0) == 0) {
      std::istringstream fields(line.substr(14));
      std::string soft;
      fields >> soft;
      return soft;
    }
  }
  return "";
}

TEST(DescriptorLimitTest, ServerRaisesItsSoftLimitToTheHardOne) {
  struct rlimit mine;
  ASSERT_EQ(getrlimit(RLIMIT_NOFILE, &mine), 0);
  if (mine.rlim_max <= 1024) {
    GTEST_SKIP() << "the hard limit here is " << mine.rlim_max
                 << ": nothing to raise";
  }
  // The child inherits a soft limit of 1024.
  struct rlimit low = mine;
  low.rlim_cur = 1024;
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &low), 0);
  TempDir dir;
  ServerProcess server(dir.Sub("data"));
  const bool started = server.Start();
  ASSERT_EQ(setrlimit(RLIMIT_NOFILE, &mine), 0);
  ASSERT_TRUE(started) << server.error();
  EXPECT_EQ(SoftLimitOf(server.pid()), std::to_string(mine.rlim_max));
  EXPECT_EQ(server.Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing
