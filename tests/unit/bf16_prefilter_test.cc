#include "bf16_prefilter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

namespace knnmem {
namespace {

// The k best positions by a double-precision dot of the float32 values.
std::vector<int64_t> BruteForce(const float* q, const std::vector<float>& keys,
                                uint32_t dim, uint32_t k, int64_t first) {
  std::vector<std::pair<double, int64_t>> all;
  for (size_t r = 0; r < keys.size() / dim; ++r) {
    double s = 0.0;
    for (uint32_t d = 0; d < dim; ++d) s += double{q[d]} * keys[r * dim + d];
    all.push_back({s, first + static_cast<int64_t>(r)});
  }
  std::sort(all.begin(), all.end(),
            [](const auto& a, const auto& b) { return a.first > b.first; });
  std::vector<int64_t> best;
  for (uint32_t i = 0; i < k && i < all.size(); ++i) {
    best.push_back(all[i].second);
  }
  return best;
}

float RoundToBf16(float x) {
  uint32_t u;
  std::memcpy(&u, &x, sizeof u);
  u += 0x7fffu + ((u >> 16) & 1u);
  u &= 0xffff0000u;
  std::memcpy(&x, &u, sizeof u);
  return x;
}

struct Result {
  std::vector<std::vector<int64_t>> positions;  // [query][rank]
  uint64_t rescored = 0;
};

// Feeds `keys` through a prefilter in blocks of `block_rows`.
Result Prefilter(const std::vector<float>& queries,
                 const std::vector<float>& keys, uint32_t dim, uint32_t k,
                 uint32_t block_rows) {
  const uint32_t m = static_cast<uint32_t>(queries.size() / dim);
  const uint32_t rows = static_cast<uint32_t>(keys.size() / dim);
  Bf16Prefilter prefilter(queries.data(), dim, m, dim);
  std::vector<TopK> top(m, TopK(k));
  for (uint32_t r0 = 0; r0 < rows; r0 += block_rows) {
    const uint32_t n = std::min(block_rows, rows - r0);
    EXPECT_TRUE(prefilter.ScanBlock(
        reinterpret_cast<const char*>(keys.data() + size_t{r0} * dim),
        DType::kFloat32, n, 1000 + r0, top.data()));
  }
  Result result;
  result.rescored = prefilter.rescored();
  for (uint32_t q = 0; q < m; ++q) {
    std::vector<float> scores(k);
    std::vector<int64_t> positions(k);
    top[q].Finish(scores.data(), positions.data());
    positions.resize(std::min<size_t>(k, rows));
    result.positions.push_back(positions);
  }
  return result;
}

class Bf16PrefilterTest : public ::testing::Test {
 protected:
  void SetUp() override {
    if (!Bf16PrefilterSupported()) GTEST_SKIP() << "this CPU lacks AVX512_BF16";
  }
};

TEST_F(Bf16PrefilterTest, EqualsBruteForceOverShapes) {
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  struct Shape {
    uint32_t m, rows, dim, k, block_rows;
  };
  // Query counts and rows that fill no tile exactly, odd and tiny dims.
  for (const Shape& s :
       {Shape{45, 2000, 128, 32, 1024}, Shape{32, 777, 33, 10, 100},
        Shape{1, 50, 7, 5, 13}, Shape{70, 3000, 64, 1, 512},
        Shape{33, 20, 128, 32, 7}}) {
    std::vector<float> queries(size_t{s.m} * s.dim),
        keys(size_t{s.rows} * s.dim);
    for (float& x : queries) x = normal(rng);
    for (float& x : keys) x = normal(rng);
    const Result got = Prefilter(queries, keys, s.dim, s.k, s.block_rows);
    for (uint32_t q = 0; q < s.m; ++q) {
      ASSERT_EQ(got.positions[q],
                BruteForce(queries.data() + q * s.dim, keys, s.dim, s.k, 1000))
          << "m " << s.m << " rows " << s.rows << " dim " << s.dim << " query "
          << q;
    }
  }
}

TEST_F(Bf16PrefilterTest, RescoresFewKeysOfRandomData) {
  std::mt19937 rng(6);
  std::normal_distribution<float> normal;
  const uint32_t m = 64, rows = 16384, dim = 128;
  std::vector<float> queries(m * dim), keys(size_t{rows} * dim);
  for (float& x : queries) x = normal(rng);
  for (float& x : keys) x = normal(rng);
  const Result got = Prefilter(queries, keys, dim, 32, 1024);
  // The 2k buffer alone takes a few hundred per query; the bound's margin
  // adds a few dozen. Everything would be m * rows = 1,048,576.
  EXPECT_LT(got.rescored, uint64_t{m} * 1000) << got.rescored;
  for (uint32_t q = 0; q < m; ++q) {
    ASSERT_EQ(got.positions[q],
              BruteForce(queries.data() + q * dim, keys, dim, 32, 1000));
  }
}

// Keys a hair apart: bfloat16 scores alone rank them wrongly, and the
// prefilter must still return the float32 order.
TEST_F(Bf16PrefilterTest, NearTiesKeepTheFloat32Order) {
  std::mt19937 rng(7);
  std::normal_distribution<float> normal;
  const uint32_t m = 40, rows = 300, dim = 128, k = 16;
  std::vector<float> base(dim);
  for (float& x : base) x = normal(rng);
  std::vector<float> keys(size_t{rows} * dim), queries(m * dim);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t d = 0; d < dim; ++d) {
      keys[r * dim + d] = base[d] + 0.01f * normal(rng);
    }
  }
  for (uint32_t q = 0; q < m; ++q) {
    for (uint32_t d = 0; d < dim; ++d) {
      queries[q * dim + d] = base[d] + 0.3f * normal(rng);
    }
  }
  const Result got = Prefilter(queries, keys, dim, k, 128);
  uint32_t bf16_wrong = 0;
  std::vector<float> rounded(keys.size());
  std::transform(keys.begin(), keys.end(), rounded.begin(), RoundToBf16);
  for (uint32_t q = 0; q < m; ++q) {
    const std::vector<int64_t> want =
        BruteForce(queries.data() + q * dim, keys, dim, k, 1000);
    ASSERT_EQ(got.positions[q], want) << "query " << q;
    std::vector<float> rq(dim);
    std::transform(queries.begin() + q * dim, queries.begin() + (q + 1) * dim,
                   rq.begin(), RoundToBf16);
    bf16_wrong += BruteForce(rq.data(), rounded, dim, k, 1000) != want;
  }
  // The case is hard: ranking by the bfloat16 values gets most queries wrong.
  EXPECT_GT(bf16_wrong, m / 2);
}

TEST_F(Bf16PrefilterTest, RefusesNormsBeyondTheBound) {
  const uint32_t dim = 16;
  std::vector<float> queries(dim, 1.0f), keys(4 * dim, 1e30f);
  Bf16Prefilter prefilter(queries.data(), dim, 1, dim);
  std::vector<TopK> top(1, TopK(2));
  EXPECT_FALSE(prefilter.ScanBlock(reinterpret_cast<const char*>(keys.data()),
                                   DType::kFloat32, 4, 0, top.data()));
  keys.assign(4 * dim, 1.0f);
  queries[3] = std::nanf("");
  Bf16Prefilter with_nan(queries.data(), dim, 1, dim);
  EXPECT_FALSE(with_nan.ScanBlock(reinterpret_cast<const char*>(keys.data()),
                                  DType::kFloat32, 4, 0, top.data()));
}

TEST_F(Bf16PrefilterTest, TinyValuesAreNotLostToFlushing) {
  // Products below float32's normal range are flushed to zero by the
  // instruction; the bound's absolute term keeps these keys candidates.
  const uint32_t dim = 8, rows = 5;
  std::vector<float> queries(dim, 1e-20f), keys(rows * dim);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t d = 0; d < dim; ++d) keys[r * dim + d] = 1e-20f * (r + 1);
  }
  const Result got = Prefilter(queries, keys, dim, 2, rows);
  EXPECT_EQ(got.positions[0], (std::vector<int64_t>{1004, 1003}));
}

}  // namespace
}  // namespace knnmem
