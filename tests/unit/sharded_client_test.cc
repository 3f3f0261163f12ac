#include "client/sharded_client.h"

#include <gtest/gtest.h>

#include "absl/strings/match.h"

namespace knnmem {
namespace {

TEST(ShardedClientTest, ParsesListsRangesAndNames) {
  auto list =
      client::ParseServerList("knnmem-{0..2}.knnmem:50051, b=10.0.0.9:7");
  ASSERT_TRUE(list.ok()) << list.status();
  ASSERT_EQ(list->size(), 4u);
  EXPECT_EQ((*list)[0].address, "knnmem-0.knnmem:50051");
  EXPECT_EQ((*list)[0].name, "knnmem-0.knnmem:50051");
  EXPECT_EQ((*list)[2].address, "knnmem-2.knnmem:50051");
  EXPECT_EQ((*list)[3].name, "b");
  EXPECT_EQ((*list)[3].address, "10.0.0.9:7");
}

TEST(ShardedClientTest, BadListsNameTheFlag) {
  for (const char* bad : {"", "a", "a:0", "a:b", "x{2..1}:5", "x{0..}:5",
                          "a:1,a:1", "n=a:1,n=b:2", "=a:1"}) {
    auto list = client::ParseServerList(bad);
    EXPECT_EQ(list.status().code(), absl::StatusCode::kInvalidArgument) << bad;
    EXPECT_TRUE(absl::StartsWith(list.status().message(), "--servers"))
        << list.status();
  }
}

TEST(ShardedClientTest,
     RendezvousSpreadsEvenlyAndMovesOnlyTheRemovedServersStreams) {
  const std::vector<std::string> names = {"s0", "s1", "s2", "s3"};
  auto winner = [](const std::string& id,
                   const std::vector<std::string>& among) {
    std::string best;
    uint64_t w = 0;
    for (const auto& n : among) {
      if (best.empty() || client::RendezvousWeight(id, n) > w) {
        best = n;
        w = client::RendezvousWeight(id, n);
      }
    }
    return best;
  };
  std::map<std::string, int> count;
  int moved = 0;
  const std::vector<std::string> without_s2 = {"s0", "s1", "s3"};
  for (int i = 0; i < 40000; ++i) {
    const std::string id = "doc-" + std::to_string(i);
    const std::string before = winner(id, names);
    ++count[before];
    const std::string after = winner(id, without_s2);
    if (before != "s2") {
      EXPECT_EQ(before, after) << id;
    } else {
      ++moved;
    }
  }
  for (const auto& [name, n] : count) EXPECT_NEAR(n, 10000, 500) << name;
  EXPECT_EQ(moved, count["s2"]);
  // Stable across processes and builds: a fixed value.
  EXPECT_EQ(client::RendezvousWeight("doc-1", "s0"),
            client::RendezvousWeight("doc-1", "s0"));
}

}  // namespace
}  // namespace knnmem
