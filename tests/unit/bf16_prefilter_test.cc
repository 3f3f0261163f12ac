#include "server/search/bf16_prefilter.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <random>
#include <vector>

#include "server/approximate/bf16_list_scan.h"

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

// Keys a hair apart around one direction (sd 0.01 per element) and queries
// near it (sd 0.3): top scores lie closer than bfloat16 can tell apart.
struct NearTies {
  std::vector<float> queries, keys;
};
NearTies MakeNearTies(uint32_t seed, uint32_t n, uint32_t rows, uint32_t dim) {
  std::mt19937 rng(seed);
  std::normal_distribution<float> normal;
  std::vector<float> base(dim);
  for (float& x : base) x = normal(rng);
  NearTies t{std::vector<float>(size_t{n} * dim),
             std::vector<float>(size_t{rows} * dim)};
  for (size_t i = 0; i < t.keys.size(); ++i) {
    t.keys[i] = base[i % dim] + 0.01f * normal(rng);
  }
  for (size_t i = 0; i < t.queries.size(); ++i) {
    t.queries[i] = base[i % dim] + 0.3f * normal(rng);
  }
  return t;
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
    if (!Bf16CpuSupported()) GTEST_SKIP() << "this CPU lacks AVX512_BF16";
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
  const uint32_t m = 40, rows = 300, dim = 128, k = 16;
  const NearTies data = MakeNearTies(7, m, rows, dim);
  const std::vector<float>& keys = data.keys;
  const std::vector<float>& queries = data.queries;
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

// The list scan: keys in the lanes, a few queries (a subset, in any order)
// per chunk, chunks fed one after another as the approximate tier does.
std::vector<std::vector<int64_t>> ListScan(const std::vector<float>& queries,
                                           const std::vector<float>& keys,
                                           uint32_t dim, uint32_t k,
                                           uint32_t chunk_rows,
                                           const std::vector<uint32_t>& who) {
  const uint32_t n = static_cast<uint32_t>(queries.size() / dim);
  const uint32_t rows = static_cast<uint32_t>(keys.size() / dim);
  Bf16ListScan scan(queries.data(), n, dim);
  std::vector<TopK> top(who.size(), TopK(k));
  std::vector<TopK*> tops;
  for (TopK& t : top) tops.push_back(&t);
  for (uint32_t r0 = 0; r0 < rows; r0 += chunk_rows) {
    const uint32_t c = std::min(chunk_rows, rows - r0);
    EXPECT_TRUE(scan.Scan(keys.data() + size_t{r0} * dim, c, who.data(),
                          static_cast<uint32_t>(who.size()), tops.data(),
                          1000 + r0));
  }
  std::vector<std::vector<int64_t>> out;
  for (TopK& t : top) {
    std::vector<float> scores(k);
    std::vector<int64_t> positions(k);
    t.Finish(scores.data(), positions.data());
    positions.resize(std::min<size_t>(k, rows));
    out.push_back(positions);
  }
  return out;
}

TEST_F(Bf16PrefilterTest, ListScanEqualsBruteForceOverShapes) {
  std::mt19937 rng(8);
  std::normal_distribution<float> normal;
  struct Shape {
    uint32_t n, rows, dim, k, chunk_rows, m;
  };
  // Chunk rows off the 32-key groups, dims off the 16-pair transpose
  // blocks, query subsets off the 4-query tiles.
  for (const Shape& s :
       {Shape{50, 1000, 128, 32, 256, 9}, Shape{20, 300, 40, 8, 77, 4},
        Shape{10, 100, 33, 5, 32, 1}, Shape{60, 2000, 128, 16, 256, 13},
        Shape{5, 7, 128, 10, 5, 3}}) {
    std::vector<float> queries(size_t{s.n} * s.dim),
        keys(size_t{s.rows} * s.dim);
    for (float& x : queries) x = normal(rng);
    for (float& x : keys) x = normal(rng);
    std::vector<uint32_t> who;
    for (uint32_t i = 0; i < s.m; ++i) who.push_back((i * 7 + 3) % s.n);
    const auto got = ListScan(queries, keys, s.dim, s.k, s.chunk_rows, who);
    for (uint32_t r = 0; r < s.m; ++r) {
      ASSERT_EQ(got[r], BruteForce(queries.data() + size_t{who[r]} * s.dim,
                                   keys, s.dim, s.k, 1000))
          << "rows " << s.rows << " dim " << s.dim << " query " << who[r];
    }
  }
}

TEST_F(Bf16PrefilterTest, ListScanNearTiesKeepTheFloat32Order) {
  const uint32_t n = 12, rows = 300, dim = 128, k = 16;
  const NearTies data = MakeNearTies(9, n, rows, dim);
  const std::vector<float>& keys = data.keys;
  const std::vector<float>& queries = data.queries;
  std::vector<uint32_t> who(n);
  for (uint32_t i = 0; i < n; ++i) who[i] = i;
  const auto got = ListScan(queries, keys, dim, k, 256, who);
  for (uint32_t q = 0; q < n; ++q) {
    ASSERT_EQ(got[q], BruteForce(queries.data() + q * dim, keys, dim, k, 1000))
        << "query " << q;
  }
}

}  // namespace
}  // namespace knnmem
