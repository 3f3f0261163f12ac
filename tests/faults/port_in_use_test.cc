// A second knnmem-server on an address that one already serves must refuse
// to start, naming the address (issue 16, point 4). gRPC enables
// SO_REUSEPORT by default: both servers then listened, and the kernel split
// new connections between them, so clients met the wrong server's streams.
#include <gtest/gtest.h>

#include <string>

#include "base/temp_dir.h"
#include "client/memory_client.h"
#include "tests/support/cli_runner.h"
#include "tests/support/server_process.h"

namespace knnmem::testing {
namespace {

TEST(PortInUseTest, SecondServerOnTheSameAddressRefusesToStart) {
  TempDir dir;
  ServerProcess first(dir.Sub("first"));
  ASSERT_TRUE(first.Start()) << first.error();
  ServerProcess second(dir.Sub("second"), {}, first.address());
  ASSERT_FALSE(second.Start())
      << "a second server started on " << first.address();
  // What the operator reads (stderr) names the address; exit status 1.
  const CliOutput out =
      RunBinary(ServerBinary(),
                "--listen " + first.address() +
                    " --metrics-address none --data-dir " + dir.Sub("third"),
                /*merge_stderr=*/true);
  EXPECT_EQ(out.status, 1) << out.out;
  EXPECT_NE(out.out.find("cannot listen on " + first.address()),
            std::string::npos)
      << out.out;
  EXPECT_NE(out.out.find("in use"), std::string::npos) << out.out;
  // The first server still answers, every time.
  {
    auto client = client::MemoryClient::Connect(first.address());
    for (int i = 0; i < 20; ++i) {
      EXPECT_EQ(client->GetStream("absent").status().code(),
                absl::StatusCode::kNotFound);
    }
  }
  EXPECT_EQ(first.Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing
