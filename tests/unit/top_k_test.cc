#include "server/search/top_k.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>

namespace knnmem {
namespace {

TEST(TopKTest, KeepsTheKBestBestFirstWithNewerPositionWinningTies) {
  std::mt19937 rng(3);
  for (uint32_t k : {1u, 5u, 32u}) {
    std::vector<ScoredPosition> all;
    TopK top(k);
    for (int64_t p = 0; p < 500; ++p) {
      const float s = static_cast<float>(rng() % 50);  // many ties
      all.push_back({s, p});
      if (s >= top.threshold()) top.Push(s, p);
    }
    std::sort(all.begin(), all.end(), RanksBefore);
    std::vector<float> scores(k);
    std::vector<int64_t> positions(k);
    top.Finish(scores.data(), positions.data());
    for (uint32_t i = 0; i < k; ++i) {
      EXPECT_EQ(positions[i], all[i].position) << "k=" << k << " rank " << i;
      EXPECT_EQ(scores[i], all[i].score);
    }
  }
}

TEST(TopKTest, PadsWithEmptyEntriesWhenFewerThanK) {
  TopK top(4);
  top.Push(1.0f, 7);
  top.Push(2.0f, 3);
  float scores[4];
  int64_t positions[4];
  top.Finish(scores, positions);
  EXPECT_EQ(positions[0], 3);
  EXPECT_EQ(positions[1], 7);
  EXPECT_EQ(positions[2], -1);
  EXPECT_EQ(positions[3], -1);
  EXPECT_TRUE(std::isinf(scores[3]) && scores[3] < 0);
}

}  // namespace
}  // namespace knnmem
