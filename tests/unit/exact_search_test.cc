#include "server/search/exact_search.h"

#include <gtest/gtest.h>

#include <random>
#include <tuple>

#include "server/search/bf16_prefilter.h"
#include "tests/support/oracle.h"

namespace knnmem {
namespace {

using testing::CompareWithOracle;
using testing::OracleMemory;

struct Case {
  DType dtype;
  uint64_t capacity;
  int64_t appended;
  uint32_t k;
  uint32_t queries;
  uint32_t key_dim = 40;
};

class ExactSearchTest
    : public ::testing::TestWithParam<std::tuple<Case, ScoreKernel>> {};

TEST_P(ExactSearchTest, EqualsBruteForce) {
  const Case c = std::get<0>(GetParam());
  const ScoreKernel kernel = std::get<1>(GetParam());
  if (kernel == ScoreKernel::kBf16Prefilter && !Bf16CpuSupported()) {
    GTEST_SKIP() << "this CPU lacks AVX512_BF16";
  }
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = 3;
  spec.key_dim = c.key_dim;
  spec.value_dim = 8;
  spec.capacity = c.capacity;
  spec.storage_dtype = c.dtype;
  LayerMemory memory(spec);
  OracleMemory oracle{
      static_cast<int>(spec.heads), static_cast<int>(spec.key_dim), {}};
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const size_t key_elems = spec.heads * spec.key_dim;
  const size_t value_elems = spec.heads * spec.value_dim;
  const size_t es = ElementSize(c.dtype);
  for (int64_t p = 0; p < c.appended;) {
    const int64_t n = std::min<int64_t>(c.appended - p, 1 + rng() % 300);
    std::vector<float> k(n * key_elems), v(n * value_elems);
    for (float& x : k) x = normal(rng);
    for (float& x : v) x = normal(rng);
    const std::string kb = PackFloats(k, c.dtype), vb = PackFloats(v, c.dtype);
    // The oracle sees the keys as stored (rounded to the dtype).
    const std::vector<float> rounded = UnpackFloats(kb, c.dtype);
    for (int64_t r = 0; r < n; ++r) {
      oracle.keys[p + r].assign(rounded.begin() + r * key_elems,
                                rounded.begin() + (r + 1) * key_elems);
    }
    {
      knnmem::MutexLock lock(&memory.append_mutex());
      memory.AppendRows(kb.data(), key_elems * es, vb.data(), value_elems * es,
                        n);
    }
    p += n;
    while (oracle.keys.size() > c.capacity)
      oracle.keys.erase(oracle.keys.begin());
  }
  std::vector<float> queries(c.queries * key_elems);
  for (float& x : queries) x = normal(rng);
  WorkerPool pool(2);
  SearchOptions options;
  options.k = c.k;
  options.kernel = kernel;
  options.return_keys = true;
  options.return_values = true;
  const Neighbours r =
      ExactSearch(spec, memory.Snapshot(), queries, options, pool).value();
  ASSERT_EQ(r.scores.size(), size_t{c.queries} * spec.heads * c.k);
  for (uint32_t q = 0; q < c.queries; ++q) {
    for (uint32_t h = 0; h < spec.heads; ++h) {
      const size_t base = (size_t{q} * spec.heads + h) * c.k;
      const std::string diff = CompareWithOracle(
          oracle, queries.data() + q * key_elems, h, c.k,
          r.scores.data() + base, r.positions.data() + base, 1e-3);
      ASSERT_EQ(diff, "") << "query " << q << " head " << h;
      // Returned keys are the stored keys of the returned positions.
      for (uint32_t j = 0; j < c.k; ++j) {
        const int64_t p = r.positions[base + j];
        const std::vector<float> got =
            UnpackFloats(absl::string_view(r.keys).substr(
                             (base + j) * spec.key_dim * es, spec.key_dim * es),
                         c.dtype);
        for (uint32_t d = 0; d < spec.key_dim; ++d) {
          const float want =
              p < 0 ? 0.0f : oracle.keys[p][h * spec.key_dim + d];
          ASSERT_EQ(got[d], want) << "rank " << j << " dim " << d;
        }
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ExactSearchTest,
    ::testing::Combine(
        ::testing::Values(Case{DType::kFloat32, 100000, 5000, 32, 300},
                          Case{DType::kFloat16, 100000, 3000, 32, 70},
                          Case{DType::kBFloat16, 100000, 3000, 32, 70},
                          Case{DType::kFloat32, 777, 4000, 16, 20},  // evicted
                          Case{DType::kFloat16, 1000, 10, 32,
                               5},  // fewer than k
                          Case{DType::kFloat32, 5, 5, 1, 3},
                          Case{DType::kFloat32, 100000, 3000, 32, 40, 129},
                          Case{DType::kBFloat16, 100000, 2000, 8, 33, 128},
                          // Decode shapes: a few queries.
                          Case{DType::kFloat32, 100000, 3000, 32, 1, 128},
                          Case{DType::kFloat16, 100000, 3000, 32, 1, 128},
                          Case{DType::kBFloat16, 100000, 3000, 32, 2, 64},
                          Case{DType::kFloat32, 1000, 5000, 8, 3, 40},
                          Case{DType::kFloat16, 100000, 2000, 16, 8, 129}),
        ::testing::Values(ScoreKernel::kAuto, ScoreKernel::kSgemm,
                          ScoreKernel::kBf16Prefilter,
                          ScoreKernel::kFewQueries)));

// Keys so alike that the prefilter would let most through: kAuto goes back
// to sgemm for the rest of the tile. Keys too large for the prefilter's bound
// are scored in float32 from the start. Both stay exact.
TEST(ExactSearchFallbackTest, AlikeAndHugeKeysStillEqualBruteForce) {
  for (const bool alike : {true, false}) {
    const float scale = alike ? 1.0f : 3e16f;
    StreamSpec spec;
    spec.layers = 1;
    spec.heads = 2;
    spec.key_dim = 64;
    spec.value_dim = 4;
    spec.capacity = 100000;
    LayerMemory memory(spec);
    OracleMemory oracle{2, 64, {}};
    std::mt19937 rng(12);
    std::normal_distribution<float> normal;
    const size_t key_elems = spec.heads * spec.key_dim;
    std::vector<float> base(key_elems);
    for (float& x : base) x = normal(rng);
    const int64_t rows = 3000;
    std::vector<float> k(rows * key_elems), v(rows * spec.heads * 4, 0.0f);
    for (size_t i = 0; i < k.size(); ++i) {
      k[i] = alike ? base[i % key_elems] * (1.0f + 1e-3f * normal(rng))
                   : normal(rng) * scale;
    }
    for (int64_t r = 0; r < rows; ++r) {
      oracle.keys[r].assign(k.begin() + r * key_elems,
                            k.begin() + (r + 1) * key_elems);
    }
    {
      knnmem::MutexLock lock(&memory.append_mutex());
      memory.AppendRows(reinterpret_cast<const char*>(k.data()), key_elems * 4,
                        reinterpret_cast<const char*>(v.data()),
                        spec.heads * 4 * 4, rows);
    }
    std::vector<float> queries(64 * key_elems);
    for (size_t i = 0; i < queries.size(); ++i) {
      queries[i] = alike ? base[i % key_elems] + normal(rng) * 0.1f
                         : normal(rng) * scale;
    }
    WorkerPool pool(2);
    SearchOptions options;
    options.k = 8;
    const Neighbours r =
        ExactSearch(spec, memory.Snapshot(), queries, options, pool).value();
    // Top scores lie about 2e-3 (alike) or 0.3 scale^2 apart.
    const double tolerance = alike ? 1e-4 : 1e-4 * scale * scale;
    for (uint32_t q = 0; q < 64; ++q) {
      for (uint32_t h = 0; h < spec.heads; ++h) {
        const size_t at = (size_t{q} * spec.heads + h) * options.k;
        ASSERT_EQ(CompareWithOracle(oracle, queries.data() + q * key_elems, h,
                                    options.k, r.scores.data() + at,
                                    r.positions.data() + at, tolerance),
                  "")
            << (alike ? "alike" : "huge") << " query " << q << " head " << h;
      }
    }
  }
}

}  // namespace
}  // namespace knnmem
