// --memory-budget on a real server: least recently used idle streams leave
// RAM, come back exactly on their next use, and the metrics say so.
#include <gtest/gtest.h>

#include <string>
#include <vector>

#include "tests/support/http_get.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

class MemoryBudgetTest : public ServerFixture {};

TEST_F(MemoryBudgetTest, IdleStreamsUnloadAndReloadExactlyUnderTheBudget) {
  // float16, 2 heads x (16 + 16): 128 bytes a row; 192 rows (three 64-row
  // blocks) are 24,576 bytes a stream. The budget holds three and a half.
  constexpr int kStreams = 6, kRows = 192;
  constexpr uint64_t kStreamBytes = kRows * 128;
  constexpr uint64_t kBudget = 3 * kStreamBytes + kStreamBytes / 2;
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--memory-budget", std::to_string(kBudget)});
  std::vector<Written> written(kStreams);
  for (int i = 0; i < kStreams; ++i) {
    const std::string id = "doc" + std::to_string(i);
    ASSERT_TRUE(
        client_->CreateStream(id, MakeSpec(1, 2, 16, 16, 10000, v1::FLOAT16))
            .ok());
    written[i].capacity = 10000;
    auto r =
        AppendRandom(id, 0, 0, kRows, 2, 16, 16, DType::kFloat16, &written[i]);
    ASSERT_TRUE(r.ok()) << r.status();
  }
  for (int i = 0; i < kStreams; ++i) {
    auto info = client_->GetStream("doc" + std::to_string(i));
    ASSERT_TRUE(info.ok());
    EXPECT_EQ(info->resident(), i >= 3) << i;  // the three oldest left RAM
    EXPECT_EQ(info->bytes_in_ram(), i >= 3 ? kStreamBytes : 0u) << i;
    EXPECT_EQ(info->bytes_on_disk(), kRows * (128u + 21)) << i;  // + keys
    EXPECT_EQ(info->layers(0).next_position(), kRows) << i;
  }
  HttpResponse scrape = HttpGet(server_->metrics_address(), "/metrics");
  EXPECT_EQ(Sample(scrape.body, "knnmem_memory_budget_bytes"), kBudget);
  EXPECT_EQ(Sample(scrape.body, "knnmem_resident_streams"), 3);
  EXPECT_EQ(Sample(scrape.body, "knnmem_stream_unloads_total"), 3);
  EXPECT_EQ(Sample(scrape.body, "knnmem_ram_bytes"), 3 * kStreamBytes);

  // Every stream answers exactly, the unloaded ones after a reload.
  for (int i = 0; i < kStreams; ++i) {
    SearchAndCheck("doc" + std::to_string(i), 0, 10, 24, written[i],
                   DType::kFloat16, 40 + i);
  }
  scrape = HttpGet(server_->metrics_address(), "/metrics");
  EXPECT_EQ(Sample(scrape.body, "knnmem_stream_load_seconds_count"), 6);
  EXPECT_LE(Sample(scrape.body, "knnmem_ram_bytes"), kBudget);

  // After SIGKILL nothing is resident; the first use loads, exactly.
  server_->Kill();
  StartServer({"--memory-budget", std::to_string(kBudget)});
  auto cold = client_->GetStream("doc5");
  ASSERT_TRUE(cold.ok());
  EXPECT_FALSE(cold->resident());
  EXPECT_EQ(cold->layers(0).next_position(), kRows);
  for (int i = kStreams - 1; i >= 0; --i) {
    SearchAndCheck("doc" + std::to_string(i), 0, 10, 24, written[i],
                   DType::kFloat16, 50 + i);
  }
  EXPECT_TRUE(client_->GetStream("doc0")->resident());
  EXPECT_FALSE(client_->GetStream("doc5")->resident());
}

TEST_F(MemoryBudgetTest, AnAppendOverTheWholeBudgetIsResourceExhausted) {
  ASSERT_EQ(StopServer(), 0);
  StartServer({"--memory-budget", "64KiB"});
  ASSERT_TRUE(
      client_->CreateStream("big", MakeSpec(1, 8, 64, 64, 100000)).ok());
  Written written;
  written.capacity = 100000;
  ASSERT_TRUE(
      AppendRandom("big", 0, 0, 8, 8, 64, 64, DType::kFloat32, &written).ok());
  // 128 rows x 4 KiB: more than the whole budget.
  auto r = AppendRandom("big", 0, 8, 128, 8, 64, 64, DType::kFloat32, nullptr);
  ASSERT_EQ(r.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(r.status().message().find("--memory-budget"), std::string::npos)
      << r.status();
  EXPECT_EQ(client_->GetStream("big")->layers(0).next_position(), 8);
  SearchAndCheck("big", 0, 4, 8, written, DType::kFloat32, 9);
  EXPECT_TRUE(client_->Health().ok());
}

}  // namespace
}  // namespace knnmem::testing
