// The approximate tier on its own, against brute force written here: with
// every list probed an IVF-Flat search is exhaustive, so it must return
// exactly the exact top-k of the indexed positions.
#include "server/approximate/approximate_index.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <limits>
#include <random>
#include <utility>
#include <vector>

#include "absl/types/span.h"
#include "base/worker_pool.h"
#include "server/memory/layer_memory.h"

namespace knnmem {
namespace {

constexpr uint32_t kHeads = 2, kDim = 16, kLists = 16, kK = 5, kQueries = 12;
constexpr int64_t kRows = 2 * 8192 + 1024;  // two indexing chunks + the tail

StreamSpec Spec() {
  StreamSpec s;
  s.layers = 1;
  s.heads = kHeads;
  s.key_dim = kDim;
  s.value_dim = kDim;
  s.capacity = 1 << 20;
  s.index = IndexKind::kApproximate;
  s.nlist = kLists;
  s.nprobe = kLists;  // every list: exhaustive
  s.exact_tail = 1024;
  return s;
}

// The parameter: whether the lists keep int8 codes of their keys
// (TierOptions::int8_codes); either way the answers are the same.
class ApproximateIndexTest : public ::testing::TestWithParam<bool> {
 protected:
  void SetUp() override {
    std::mt19937 rng(7);
    std::normal_distribution<float> normal;
    keys_.resize(size_t{kRows} * kHeads * kDim);
    for (float& x : keys_) x = normal(rng);
    queries_.resize(size_t{kQueries} * kHeads * kDim);
    for (float& x : queries_) x = normal(rng);
    MutexLock lock(&layer_.append_mutex());
    const size_t row_bytes = size_t{kHeads} * kDim * sizeof(float);
    layer_.AppendRows(reinterpret_cast<const char*>(keys_.data()), row_bytes,
                      reinterpret_cast<const char*>(keys_.data()), row_bytes,
                      kRows);
  }

  // Brute force: the k best positions in [lo, hi) for (query q, head h).
  std::vector<std::pair<float, int64_t>> Exact(uint32_t q, uint32_t h,
                                               int64_t lo, int64_t hi) const {
    std::vector<std::pair<float, int64_t>> all;
    for (int64_t p = lo; p < hi; ++p) {
      float dot = 0;
      for (uint32_t d = 0; d < kDim; ++d) {
        dot += queries_[(size_t{q} * kHeads + h) * kDim + d] *
               keys_[(size_t(p) * kHeads + h) * kDim + d];
      }
      all.emplace_back(dot, p);
    }
    std::partial_sort(all.begin(), all.begin() + kK, all.end(),
                      [](const auto& a, const auto& b) { return a > b; });
    all.resize(kK);
    return all;
  }

  // Searches [lo, hi) and checks every (query, head) against Exact over
  // [exact_lo, hi): with 1 and 5 queries (a decode step: the streaming
  // scan reads the keys in place, or the int8 codes) and with 12 (a GEMM
  // per list).
  void ExpectExact(const ApproximateIndex& index, int64_t lo, int64_t hi,
                   int64_t exact_lo) {
    for (const uint32_t n : {1u, 5u, kQueries}) {
      SCOPED_TRACE(testing::Message() << n << " queries");
      ExpectExact(index, lo, hi, exact_lo, n);
    }
  }
  void ExpectExact(const ApproximateIndex& index, int64_t lo, int64_t hi,
                   int64_t exact_lo, uint32_t n) {
    std::vector<float> scores(size_t{n} * kHeads * kK);
    std::vector<int64_t> positions(scores.size());
    index.Search(layer_.Snapshot(),
                 absl::MakeConstSpan(queries_).first(size_t{n} * kHeads * kDim),
                 n, kK, lo, hi, scores.data(), positions.data(), pool_);
    for (uint32_t q = 0; q < n; ++q) {
      for (uint32_t h = 0; h < kHeads; ++h) {
        const auto want = Exact(q, h, exact_lo, hi);
        for (uint32_t i = 0; i < kK; ++i) {
          const size_t at = (size_t{q} * kHeads + h) * kK + i;
          EXPECT_EQ(positions[at], want[i].second)
              << "query " << q << " head " << h << " rank " << i;
          EXPECT_NEAR(scores[at], want[i].first, 1e-4);
        }
      }
    }
  }

  TierOptions Tier() const {
    TierOptions tier;
    tier.int8_codes = GetParam();
    return tier;
  }
  // The lists' bytes for `entries` positions of every head.
  size_t ListBytes(int64_t entries) const {
    const size_t per_row =
        sizeof(int64_t) + (GetParam() ? kDim + sizeof(float) : 0);
    return static_cast<size_t>(entries) * kHeads * per_row;
  }

  const StreamSpec spec_ = Spec();
  LayerMemory layer_{spec_};
  WorkerPool pool_{2};
  std::vector<float> keys_, queries_;
};

TEST_P(ApproximateIndexTest, EveryListProbedEqualsBruteForce) {
  ApproximateIndex index(spec_, Tier());
  EXPECT_EQ(index.indexed_end(), -1);
  EXPECT_TRUE(index.Centroids().empty());  // not trained yet
  const int64_t end = index.IndexableEnd(0, kRows);
  EXPECT_EQ(end, 2 * 8192);  // the chunk grid, short of the exact tail
  ASSERT_TRUE(index.Extend(layer_.Snapshot(), end).ok());
  EXPECT_EQ(index.begin(), 0);
  EXPECT_EQ(index.indexed_end(), end);
  EXPECT_EQ(index.bytes(), ListBytes(end));
  ExpectExact(index, 0, end, 0);
  ExpectExact(index, 3000, end, 3000);  // a range inside the indexed span
}

TEST_P(ApproximateIndexTest, ForgottenPositionsLeaveTheLists) {
  ApproximateIndex index(spec_, Tier());
  const int64_t end = index.IndexableEnd(0, kRows);
  ASSERT_TRUE(index.Extend(layer_.Snapshot(), end).ok());
  EXPECT_EQ(index.Forget(4096), size_t{4096} * kHeads);
  EXPECT_EQ(index.bytes(), ListBytes(end - 4096));
  // Searching from 0 finds nothing below 4096 any more.
  ExpectExact(index, 0, end, 4096);
}

TEST_P(ApproximateIndexTest, RestoredCentroidsAnswerTheSame) {
  ApproximateIndex index(spec_, Tier());
  const int64_t end = index.IndexableEnd(0, kRows);
  ASSERT_TRUE(index.Extend(layer_.Snapshot(), end).ok());
  const std::string centroids = index.Centroids();
  EXPECT_EQ(centroids.size(), size_t{kHeads} * kLists * kDim * sizeof(float));
  ApproximateIndex restored(spec_, Tier());
  ASSERT_TRUE(restored.RestoreCentroids(centroids, 0).ok());
  ASSERT_TRUE(restored.Extend(layer_.Snapshot(), end).ok());
  EXPECT_EQ(restored.Centroids(), centroids);
  ExpectExact(restored, 0, end, 0);
  EXPECT_EQ(restored.RestoreCentroids("short", 0).code(),
            absl::StatusCode::kInvalidArgument);
}

INSTANTIATE_TEST_SUITE_P(Lists, ApproximateIndexTest, ::testing::Bool(),
                         [](const ::testing::TestParamInfo<bool>& info) {
                           return info.param ? "Int8Codes" : "Positions";
                         });

}  // namespace
}  // namespace knnmem
