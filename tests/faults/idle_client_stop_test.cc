// SIGTERM with an idle client connected: the server must exit as soon as
// no call is in flight (issue 16, point 8). It used to wait in
// grpc::Server::Shutdown for the idle client to acknowledge GOAWAY, which a
// gRPC client does only on its 5 s backup poll: every rolling restart paid
// it per server.
#include <gtest/gtest.h>
#include <signal.h>

#include <chrono>
#include <memory>

#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

TEST(IdleClientStopTest, DrainedServerExitsAtOnceWithAnIdleClientConnected) {
  TempDir dir;
  ServerProcess server(dir.Sub("data"),
                       {"--drain-seconds", "0", "--grace-seconds", "20"});
  ASSERT_TRUE(server.Start()) << server.error();
  auto client = client::MemoryClient::Connect(server.address());
  ASSERT_TRUE(client->ListStreams().ok());  // the connection is up, idle
  const auto start = std::chrono::steady_clock::now();
  server.Signal(SIGTERM);
  EXPECT_EQ(server.Wait(), 0);
  const double seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  // About 0.3 s (Server::kLinger, 0.25 s, and closing the store); the bound
  // leaves room for a loaded CI machine and stays far below the 5 s of the
  // idle client's poll.
#if defined(__SANITIZE_ADDRESS__) || defined(__SANITIZE_THREAD__)
  constexpr double kBound = 4;  // a sanitizer slows the stop down
#else
  constexpr double kBound = 1.5;
#endif
  EXPECT_LT(seconds, kBound) << "the server waited for the idle client";
}

}  // namespace
}  // namespace knnmem::testing
