// Three real servers on loopback behind a ShardedClient.
#include <gtest/gtest.h>

#include <map>
#include <set>

#include "base/json.h"
#include "client/sharded_client.h"
#include "tests/support/cli_runner.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

TEST(ShardingTest, ThreeServersEachHoldTheirStreamsAndFailAlone) {
  TempDir dir;
  Shards shards = StartShards(dir, 3);
  ASSERT_FALSE(HasFailure());
  std::vector<std::unique_ptr<ServerProcess>>& servers = shards.servers;
  const std::vector<client::ServerAddress>& list = shards.list;
  auto client = std::make_unique<client::ShardedClient>(
      list, client::MemoryClient::Options());
  const v1::StreamSpec spec = ServerFixture::MakeSpec(1, 2, 8, 8, 100);
  std::vector<float> k(5 * 2 * 8, 0.5f), v(5 * 2 * 8, 0.25f);
  for (int i = 0; i < 300; ++i) {
    const std::string id = "doc-" + std::to_string(i);
    ASSERT_TRUE(client->CreateStream(id, spec).ok());
    ASSERT_TRUE(client->For(id).Append(id, 0, 0, k, v, 5, 2).ok());
  }
  // Each stream lives on exactly one server: the one the client names.
  std::map<std::string, int> where;
  for (int s = 0; s < 3; ++s) {
    auto streams = client->At(s).ListStreams();
    ASSERT_TRUE(streams.ok());
    EXPECT_GE(streams->size(), 80u) << "shard " << s;  // 100 +- 20%
    EXPECT_LE(streams->size(), 120u) << "shard " << s;
    for (const auto& info : *streams) {
      EXPECT_EQ(where.count(info.stream_id()), 0u)
          << info.stream_id() << " on two servers";
      where[info.stream_id()] = s;
      EXPECT_EQ(client->ServerIndexOf(info.stream_id()),
                static_cast<size_t>(s));
    }
  }
  EXPECT_EQ(where.size(), 300u);

  // The CLI routes the same way and says where a stream lives.
  std::string servers_flag;
  for (const auto& s : list) {
    servers_flag +=
        (servers_flag.empty() ? "" : ",") + s.name + "=" + s.address;
  }
  for (const std::string id : {"doc-7", "doc-123", "doc-299"}) {
    const CliOutput w = RunCli("--servers " + servers_flag + " where " + id);
    EXPECT_EQ(w.out,
              list[where[id]].name + " " + list[where[id]].address + "\n");
    const CliOutput info =
        RunCli("--servers " + servers_flag + " --json info " + id);
    EXPECT_EQ(info.status, 0) << info.out;
    absl::StatusOr<Json> parsed = ParseJson(info.out);
    ASSERT_TRUE(parsed.ok()) << parsed.status() << "\n" << info.out;
    EXPECT_EQ(parsed->at("stream_id"), id) << info.out;
    EXPECT_EQ(parsed->at("layers").at(0).at("next_position"), 5) << info.out;
  }
  const CliOutput health = RunCli("--servers " + servers_flag + " health");
  EXPECT_EQ(health.out, "SERVING\n");

  // Server 1 dies: only its streams are UNAVAILABLE.
  const std::string address1 = servers[1]->address();
  servers[1]->Kill();
  std::vector<float> q(2 * 8, 1.0f);
  for (const auto& [id, s] : where) {
    auto r = client->For(id).Search(id, 0, q, 1, 2, 3);
    if (s == 1) {
      EXPECT_EQ(r.status().code(), absl::StatusCode::kUnavailable) << id;
    } else {
      ASSERT_TRUE(r.ok()) << id << ": " << r.status();
      EXPECT_EQ(r->positions[0], 4);  // ties: the newest of 5 equal keys
    }
  }
  auto listing = client->ListStreams();
  EXPECT_EQ(listing.status().code(), absl::StatusCode::kUnavailable);

  // It restarts on the same address and data dir: its streams are intact.
  servers[1] = std::make_unique<ServerProcess>(
      dir.Sub("shard1"), std::vector<std::string>{}, address1);
  ASSERT_TRUE(servers[1]->Start()) << servers[1]->error();
  client = std::make_unique<client::ShardedClient>(
      list, client::MemoryClient::Options());
  int on_one = 0;
  for (const auto& [id, s] : where) {
    if (s != 1) continue;
    ++on_one;
    auto info = client->For(id).GetStream(id);
    ASSERT_TRUE(info.ok()) << id << ": " << info.status();
    EXPECT_EQ(info->layers(0).next_position(), 5);
  }
  EXPECT_GT(on_one, 0);
  auto all = client->ListStreams();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 300u);
  client.reset();
  for (auto& s : servers) EXPECT_EQ(s->Stop(), 0);
}

}  // namespace
}  // namespace knnmem::testing
