#include "exact_search.h"

#include <gtest/gtest.h>

#include <random>

#include "oracle.h"

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
};

class ExactSearchTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExactSearchTest, EqualsBruteForce) {
  const Case c = GetParam();
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = 3;
  spec.key_dim = 40;
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
  options.return_keys = true;
  options.return_values = true;
  const SearchResult r =
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
    ::testing::Values(Case{DType::kFloat32, 100000, 5000, 32, 300},
                      Case{DType::kFloat16, 100000, 3000, 32, 70},
                      Case{DType::kBFloat16, 100000, 3000, 32, 70},
                      Case{DType::kFloat32, 777, 4000, 16, 20},  // evicted
                      Case{DType::kFloat16, 1000, 10, 32, 5},    // fewer than k
                      Case{DType::kFloat32, 5, 5, 1, 3}));

}  // namespace
}  // namespace knnmem
