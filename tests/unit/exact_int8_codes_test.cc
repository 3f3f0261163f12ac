// ExactSearch over blocks that keep int8 codes of their keys
// (LayerOptions::int8_codes): a decode step's few queries read the codes and
// score again only the rows that may enter (coded_block_scan.h), small
// layers in two passes, larger ones in one. The answers must be those of
// the same keys without codes, bit for bit, and of brute force.
#include <gtest/gtest.h>

#include <random>
#include <string>
#include <vector>

#include "server/search/exact_search.h"
#include "server/search/few_query_scan.h"
#include "tests/support/oracle.h"

namespace knnmem {
namespace {

using testing::CompareWithOracle;
using testing::OracleMemory;

// How keys run along the positions: at random; rising along the queries'
// direction (attention keys score higher the newer they are), so that
// every row could enter a running top k; or drawn from 5 keys, so that
// scores tie by the hundred and the newest positions must win the ties.
enum class Keys { kRandom, kRising, kRepeated };

struct Case {
  DType dtype;
  uint32_t key_dim;
  uint32_t queries;
  uint32_t k;
  uint64_t capacity;
  int64_t appended;
  Keys keys;
};

class ExactInt8CodesTest : public ::testing::TestWithParam<Case> {};

TEST_P(ExactInt8CodesTest, SameAnswersAsWithoutCodesAndBruteForce) {
  const Case c = GetParam();
  if (FewQueryIsaOfCpu() == FewQueryIsa::kNone) {
    GTEST_SKIP() << "this CPU lacks AVX2: no streaming scan";
  }
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = 3;
  spec.key_dim = c.key_dim;
  spec.value_dim = 4;
  spec.capacity = c.capacity;
  spec.storage_dtype = c.dtype;
  LayerMemory plain(spec);
  LayerMemory coded(spec, LayerOptions{.int8_codes = true});
  OracleMemory oracle{
      static_cast<int>(spec.heads), static_cast<int>(spec.key_dim), {}};
  std::mt19937 rng(21);
  std::normal_distribution<float> normal;
  const size_t key_elems = spec.heads * spec.key_dim;
  const size_t value_elems = spec.heads * spec.value_dim;
  const size_t es = ElementSize(c.dtype);
  std::vector<float> direction(key_elems), pool(5 * key_elems);
  for (float& x : direction) x = normal(rng);
  for (float& x : pool) x = normal(rng);
  for (int64_t p = 0; p < c.appended;) {
    const int64_t n = std::min<int64_t>(c.appended - p, 1 + rng() % 300);
    std::vector<float> k(n * key_elems), v(n * value_elems, 0.5f);
    for (int64_t r = 0; r < n; ++r) {
      const int64_t at = p + r;
      const int64_t repeated = rng() % 5;
      for (size_t e = 0; e < key_elems; ++e) {
        float& x = k[r * key_elems + e];
        switch (c.keys) {
          case Keys::kRandom:
            x = normal(rng);
            break;
          case Keys::kRising:
            x = 0.05f * normal(rng) + 1e-3f * static_cast<float>(at) *
                                          direction[e] /
                                          static_cast<float>(c.key_dim);
            break;
          case Keys::kRepeated:
            x = pool[repeated * key_elems + e];
            break;
        }
      }
    }
    const std::string kb = PackFloats(k, c.dtype), vb = PackFloats(v, c.dtype);
    const std::vector<float> rounded = UnpackFloats(kb, c.dtype);
    for (int64_t r = 0; r < n; ++r) {
      oracle.keys[p + r].assign(rounded.begin() + r * key_elems,
                                rounded.begin() + (r + 1) * key_elems);
    }
    for (LayerMemory* memory : {&plain, &coded}) {
      knnmem::MutexLock lock(&memory->append_mutex());
      memory->AppendRows(kb.data(), key_elems * es, vb.data(), value_elems * es,
                         n);
    }
    p += n;
    while (oracle.keys.size() > c.capacity) {
      oracle.keys.erase(oracle.keys.begin());
    }
  }
  // The codes' RAM: key_dim int8 and a float32 scale per row and head.
  size_t rows = 0;
  for (const auto& block : plain.Snapshot().blocks) {
    rows += block->capacity_rows();
  }
  EXPECT_EQ(coded.BlockBytes() - plain.BlockBytes(),
            rows * spec.heads * (spec.key_dim + sizeof(float)));

  std::vector<float> queries(c.queries * key_elems);
  for (size_t e = 0; e < queries.size(); ++e) {
    queries[e] = c.keys == Keys::kRising
                     ? direction[e % key_elems] + 0.3f * normal(rng)
                     : normal(rng);
  }
  WorkerPool workers(2);
  SearchOptions options;
  options.k = c.k;
  options.kernel = ScoreKernel::kFewQueries;
  const Neighbours want =
      ExactSearch(spec, plain.Snapshot(), queries, options, workers).value();
  const Neighbours got =
      ExactSearch(spec, coded.Snapshot(), queries, options, workers).value();
  ASSERT_EQ(got.positions, want.positions);
  ASSERT_EQ(got.scores, want.scores);
  for (uint32_t q = 0; q < c.queries; ++q) {
    for (uint32_t h = 0; h < spec.heads; ++h) {
      const size_t base = (size_t{q} * spec.heads + h) * c.k;
      ASSERT_EQ(CompareWithOracle(oracle, queries.data() + q * key_elems, h,
                                  c.k, got.scores.data() + base,
                                  got.positions.data() + base, 1e-3),
                "")
          << "query " << q << " head " << h;
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Shapes, ExactInt8CodesTest,
    ::testing::Values(
        Case{DType::kFloat32, 128, 1, 32, 100000, 5000, Keys::kRandom},
        Case{DType::kFloat32, 48, 4, 32, 100000, 5000, Keys::kRising},
        Case{DType::kFloat32, 40, 8, 16, 777, 4000, Keys::kRandom},  // evicts
        Case{DType::kFloat32, 129, 3, 32, 100000, 3000, Keys::kRepeated},
        Case{DType::kFloat32, 64, 2, 32, 100000, 20, Keys::kRandom},  // < k
        Case{DType::kFloat16, 128, 1, 32, 100000, 3000, Keys::kRising},
        Case{DType::kBFloat16, 64, 5, 8, 100000, 3000, Keys::kRandom},
        Case{DType::kFloat16, 48, 16, 32, 100000, 2000, Keys::kRepeated},
        // More than kTwoPassRows: one pass, block after block.
        Case{DType::kFloat32, 64, 2, 32, 100000, 12000, Keys::kRising},
        Case{DType::kFloat32, 128, 1, 32, 100000, 12000, Keys::kRepeated},
        Case{DType::kFloat16, 40, 1, 8, 9000, 20000, Keys::kRandom}));

}  // namespace
}  // namespace knnmem
