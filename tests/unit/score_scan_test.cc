#include "server/search/score_scan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <random>
#include <vector>

namespace knnmem {
namespace {

class ScoreScanTest : public ::testing::TestWithParam<ScanIsa> {};

// How the scores run along the rows: at random (with ties), rising (newer
// keys score higher, as attention keys do), falling, or all equal.
enum class Shape { kRandom, kRising, kFalling, kEqual };

float ScoreOf(Shape shape, uint32_t i, std::mt19937& rng) {
  const float noise = static_cast<float>(rng() % 200) / 8.0f;  // ties
  switch (shape) {
    case Shape::kRandom:
      return noise;
    case Shape::kRising:
      return static_cast<float>(i / 3) + noise / 64.0f;
    case Shape::kFalling:
      return -static_cast<float>(i / 3) + noise / 64.0f;
    case Shape::kEqual:
      return 1.5f;
  }
  return 0.0f;
}

TEST_P(ScoreScanTest, FindsTheSameTopKAsAFullSortAcrossManyRows) {
  if (!ScanIsaSupported(GetParam())) GTEST_SKIP() << "this CPU lacks the ISA";
  std::mt19937 rng(9);
  for (Shape shape :
       {Shape::kRandom, Shape::kRising, Shape::kFalling, Shape::kEqual}) {
    for (uint32_t k : {1u, 7u, 32u, 100u, 129u}) {
      for (uint32_t count : {1u, 15u, 16u, 17u, 333u, 5000u}) {
        // Rows are fed in chunks, as the kernel feeds block after block.
        std::vector<float> scores(count);
        for (uint32_t i = 0; i < count; ++i) scores[i] = ScoreOf(shape, i, rng);
        TopK top(k);
        for (uint32_t at = 0; at < count;) {
          const uint32_t n = std::min<uint32_t>(count - at, 1 + rng() % 700);
          ScanScoresWith(GetParam(), scores.data() + at, n, 1000 + at, top);
          at += n;
        }
        std::vector<float> got_scores(k);
        std::vector<int64_t> got_positions(k);
        top.Finish(got_scores.data(), got_positions.data());
        std::vector<ScoredPosition> all;
        for (uint32_t i = 0; i < count; ++i)
          all.push_back({scores[i], 1000 + i});
        std::sort(all.begin(), all.end(), RanksBefore);
        for (uint32_t i = 0; i < k; ++i) {
          const int64_t want = i < count ? all[i].position : -1;
          ASSERT_EQ(got_positions[i], want)
              << "shape " << static_cast<int>(shape) << " k=" << k
              << " count=" << count << " rank " << i;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(Isas, ScoreScanTest,
                         ::testing::Values(ScanIsa::kPortable, ScanIsa::kAvx2,
                                           ScanIsa::kAvx512));

}  // namespace
}  // namespace knnmem
