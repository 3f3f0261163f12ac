// Descriptor exhaustion (issue 16, point 7): a server started with a low
// soft RLIMIT_NOFILE (systemd's 1024) raises it to the hard limit, so that
// idle connections cannot starve RocksDB of descriptors, and logs both.
#include <gtest/gtest.h>
#include <sys/resource.h>

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <memory>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/numbers.h"
#include "absl/time/clock.h"
#include "client/memory_client.h"
#include "tests/support/proc_status.h"
#include "tests/support/raw_http2.h"
#include "tests/support/server_fixture.h"
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

// With its descriptors exhausted by idle connections, RocksDB cannot create
// the next WAL and stops writes with an error it will not resume from
// (DB::Resume refuses a "fatal" one): every Append failed until a restart.
// Now the server reopens the database once descriptors are back.
TEST(DescriptorLimitTest, WritesRecoverOnceConnectionsGiveDescriptorsBack) {
  TempDir dir;
  // A small memtable: a few batches fill it, and the next needs a new WAL.
  ServerProcess server(dir.Sub("data"), {"--memory-budget", "256MiB"});
  ASSERT_TRUE(server.Start()) << server.error();
  int port = 0;
  ASSERT_TRUE(absl::SimpleAtoi(
      server.address().substr(server.address().rfind(':') + 1), &port));
  auto client = MemoryClient::Connect(server.address());
  constexpr int kHeads = 8, kDim = 128, kRows = 512;  // 4 MiB per batch
  const v1::StreamSpec spec =
      ServerFixture::MakeSpec(1, kHeads, kDim, kDim, 1 << 20);
  ASSERT_TRUE(client->CreateStream("s", spec).ok());
  const std::vector<float> rows(size_t{kRows} * kHeads * kDim, 0.25f);
  int64_t position = 0;
  const auto append = [&] {
    absl::Status s =
        client->Append("s", 0, position, rows, rows, kRows, kHeads).status();
    if (s.ok()) position += kRows;
    return s;
  };
  ASSERT_TRUE(append().ok());

  // The server may open 24 more descriptors; idle connections take them.
  struct rlimit low;
  low.rlim_cur = low.rlim_max = OpenDescriptors(server.pid()) + 24;
  ASSERT_EQ(prlimit(server.pid(), RLIMIT_NOFILE, &low, nullptr), 0);
  std::vector<std::unique_ptr<RawHttp2Client>> idle;
  for (int i = 0; i < 64; ++i) {
    auto connection = RawHttp2Client::Connect(port);
    ASSERT_TRUE(connection.ok()) << connection.status();
    idle.push_back(*std::move(connection));
  }
  absl::Status failed;
  for (int b = 0; b < 40 && failed.ok(); ++b) failed = append();
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_NE(failed.message().find("Too many open files"),
            absl::string_view::npos)
      << failed;

  // Health says NOT_SERVING from the next maintenance tick until the
  // writes resume, once the connections are gone.
  ASSERT_TRUE(server.AwaitOutput("health NOT_SERVING (storage writes stopped)",
                                 absl::Seconds(20)));
  idle.clear();
  ASSERT_TRUE(server.AwaitOutput("health SERVING (storage writes resumed)",
                                 absl::Seconds(20)));
  EXPECT_TRUE(client->Health().ok());
  const int64_t acknowledged = position;
  EXPECT_TRUE(append().ok());
  EXPECT_TRUE(append().ok());
  // Nothing acknowledged was lost across the reopen.
  auto info = client->GetStream("s");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), acknowledged + 2 * kRows);
  EXPECT_EQ(server.Stop(), 0);
  // And after a restart on the same data.
  ServerProcess again(dir.Sub("data"));
  ASSERT_TRUE(again.Start()) << again.error();
  auto reread = MemoryClient::Connect(again.address())->GetStream("s");
  ASSERT_TRUE(reread.ok()) << reread.status();
  EXPECT_EQ(reread->layers(0).next_position(), acknowledged + 2 * kRows);
  EXPECT_EQ(again.Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing
