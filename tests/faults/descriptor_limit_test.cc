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

#include "absl/time/clock.h"
#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "tests/support/proc_status.h"
#include "tests/support/raw_http2.h"
#include "tests/support/server_fixture.h"
#include "tests/support/server_process.h"

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

// Idle connections take every descriptor the server may open, as many
// clients would with systemd's 1024 (gRPC 1.51 cannot bound connections).
class DescriptorExhaustionTest : public ::testing::Test {
 protected:
  static constexpr int kHeads = 8, kDim = 128, kRows = 512;  // 4 MiB a batch

  void Start(std::vector<std::string> args) {
    // A small memtable: every few batches need a new WAL and table file.
    args.insert(args.end(), {"--memory-budget", "256MiB"});
    server_ = std::make_unique<ServerProcess>(dir_.Sub("data"), args);
    ASSERT_TRUE(server_->Start()) << server_->error();
    client_ = client::MemoryClient::Connect(server_->address());
    ASSERT_TRUE(client_
                    ->CreateStream("s", ServerFixture::MakeSpec(1, kHeads, kDim,
                                                                kDim, 1 << 20))
                    .ok());
    ASSERT_TRUE(Append().ok());
  }

  absl::Status Append() {
    absl::Status s =
        client_->Append("s", 0, position_, rows_, rows_, kRows, kHeads)
            .status();
    if (s.ok()) position_ += kRows;
    return s;
  }

  // The server may open 24 more descriptors; 64 idle connections try to
  // take them.
  void Exhaust() {
    struct rlimit low;
    low.rlim_cur = low.rlim_max = OpenDescriptors(server_->pid()) + 24;
    ASSERT_EQ(prlimit(server_->pid(), RLIMIT_NOFILE, &low, nullptr), 0);
    for (int i = 0; i < 64; ++i) {
      auto connection = RawHttp2Client::Connect(server_->port());
      ASSERT_TRUE(connection.ok()) << connection.status();
      idle_.push_back(*std::move(connection));
    }
  }

  // Every acknowledged row is there, now and after a restart.
  void ExpectAcknowledgedRowsKept() {
    auto info = client_->GetStream("s");
    ASSERT_TRUE(info.ok()) << info.status();
    EXPECT_EQ(info->layers(0).next_position(), position_);
    client_.reset();
    EXPECT_EQ(server_->Stop(), 0);
    ServerProcess again(dir_.Sub("data"));
    ASSERT_TRUE(again.Start()) << again.error();
    auto reread =
        client::MemoryClient::Connect(again.address())->GetStream("s");
    ASSERT_TRUE(reread.ok()) << reread.status();
    EXPECT_EQ(reread->layers(0).next_position(), position_);
    EXPECT_EQ(again.Stop(), 0);
  }

  TempDir dir_;
  std::unique_ptr<ServerProcess> server_;
  std::unique_ptr<client::MemoryClient> client_;
  std::vector<std::unique_ptr<RawHttp2Client>> idle_;
  int64_t position_ = 0;
  const std::vector<float> rows_ =
      std::vector<float>(size_t{kRows} * kHeads * kDim, 0.25f);
};

// With the default reserve, RocksDB opens its files with reserved
// descriptors: every Append succeeds while connections hold the rest.
TEST_F(DescriptorExhaustionTest,
       TheReserveKeepsWritesGoingWhenConnectionsTakeTheRest) {
  ASSERT_NO_FATAL_FAILURE(Start({}));
  ASSERT_NO_FATAL_FAILURE(Exhaust());
  for (int b = 0; b < 40; ++b) {
    const absl::Status s = Append();
    ASSERT_TRUE(s.ok()) << "batch " << b << ": " << s;
  }
  idle_.clear();
  ExpectAcknowledgedRowsKept();
}

// Without it, RocksDB cannot create the next WAL and stops writes with an
// error it will not resume from (DB::Resume refuses a "fatal" one): every
// Append failed until a restart. Now the server reopens the database once
// descriptors are back.
TEST_F(DescriptorExhaustionTest,
       WithoutAReserveWritesRecoverOnceConnectionsGo) {
  ASSERT_NO_FATAL_FAILURE(Start({"--descriptor-reserve", "0"}));
  ASSERT_NO_FATAL_FAILURE(Exhaust());
  absl::Status failed;
  for (int b = 0; b < 40 && failed.ok(); ++b) failed = Append();
  EXPECT_EQ(failed.code(), absl::StatusCode::kUnavailable) << failed;
  EXPECT_NE(failed.message().find("Too many open files"),
            absl::string_view::npos)
      << failed;
  // Health says NOT_SERVING from the next maintenance tick until the
  // writes resume, once the connections are gone.
  ASSERT_TRUE(server_->AwaitOutput(
      "health NOT_SERVING (storage writes stopped)", absl::Seconds(20)));
  idle_.clear();
  ASSERT_TRUE(server_->AwaitOutput("health SERVING (storage writes resumed)",
                                   absl::Seconds(20)));
  EXPECT_TRUE(client_->Health().ok());
  EXPECT_TRUE(Append().ok());
  EXPECT_TRUE(Append().ok());
  ExpectAcknowledgedRowsKept();
}

}  // namespace
}  // namespace knnmem::testing
