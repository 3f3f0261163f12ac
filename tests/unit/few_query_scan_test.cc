#include "server/search/few_query_scan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "tests/support/oracle.h"
#include "tests/support/scattered_rows.h"

namespace knnmem {
namespace {

using testing::CompareWithOracle;
using testing::OracleMemory;

bool CpuRuns(FewQueryIsa isa) {
  const FewQueryIsa cpu = FewQueryIsaOfCpu();
  return isa == FewQueryIsa::kAvx2 ? cpu != FewQueryIsa::kNone
                                   : cpu == FewQueryIsa::kAvx512;
}

// Each instruction set, dtype, query count and dimension (full vectors
// and tails), packed, gathered and scored rows, against the
// double-precision brute force and each other: the keys are one head's rows, so
// the oracle sees them as [1, dim] entries.
TEST(FewQueryScanTest, EveryKernelEqualsBruteForce) {
  if (FewQueryIsaOfCpu() == FewQueryIsa::kNone) {
    GTEST_SKIP() << "this CPU has neither AVX2+FMA+F16C nor AVX-512";
  }
  std::mt19937 rng(5);
  std::normal_distribution<float> normal;
  for (const FewQueryIsa isa : {FewQueryIsa::kAvx2, FewQueryIsa::kAvx512}) {
    if (!CpuRuns(isa)) continue;
    for (const DType dtype :
         {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
      for (const uint32_t dim : {8u, 40u, 128u, 131u}) {
        for (uint32_t m = 1; m <= kMaxFewQueries; ++m) {
          const uint32_t rows = 700 + m;  // chunks of 256 and a ragged end
          const uint32_t k = 10;
          std::vector<float> keys(size_t{rows} * dim);
          for (float& x : keys) x = normal(rng);
          const std::string stored = PackFloats(keys, dtype);
          const std::vector<float> rounded = UnpackFloats(stored, dtype);
          OracleMemory oracle{1, static_cast<int>(dim), {}};
          const int64_t first = 1000;
          for (uint32_t r = 0; r < rows; ++r) {
            oracle.keys[first + r].assign(rounded.begin() + r * dim,
                                          rounded.begin() + (r + 1) * dim);
          }
          const size_t stride = dim + 3;  // queries need not be packed
          std::vector<float> queries(m * stride);
          for (float& x : queries) x = normal(rng);
          std::vector<TopK> top(m, TopK(k));
          // Two calls: the second block continues the running thresholds.
          const uint32_t split = rows / 3;
          ScanFewQueries(isa, queries.data(), stride, m, dim, stored.data(),
                         dtype, split, first, top.data());
          ScanFewQueries(
              isa, queries.data(), stride, m, dim,
              stored.data() + size_t{split} * dim * ElementSize(dtype), dtype,
              rows - split, first + split, top.data());
          // The same rows gathered: row r lies at a shuffled place of
          // another copy, and the queries' TopKs are reached by pointer.
          const testing::ScatteredRows scattered =
              testing::Scatter(stored, size_t{dim} * ElementSize(dtype), rng);
          const std::vector<const char*>& row_at = scattered.row_at;
          std::vector<TopK> gathered_top(m, TopK(k));
          std::vector<TopK*> gathered_tops;
          for (TopK& t : gathered_top) gathered_tops.push_back(&t);
          ScanFewQueryRows(isa, queries.data(), stride, m, dim, row_at.data(),
                           dtype, rows, first, gathered_tops.data());
          // Their scores themselves, pushed in order.
          std::vector<TopK> scored_top(m, TopK(k));
          std::vector<float> scored(size_t{m} * rows);
          ScoreFewQueryRows(isa, queries.data(), stride, m, dim, row_at.data(),
                            dtype, rows, scored.data(), rows);
          for (uint32_t q = 0; q < m; ++q) {
            for (uint32_t r = 0; r < rows; ++r) {
              scored_top[q].Push(scored[size_t{q} * rows + r], first + r);
            }
          }
          // The packed rows' scores (ScoreFewQueries, the model's
          // SmallLinear).
          std::vector<TopK> packed_scored_top(m, TopK(k));
          std::vector<float> packed_scored(size_t{m} * rows);
          ScoreFewQueries(isa, queries.data(), stride, m, dim, stored.data(),
                          dtype, rows, packed_scored.data(), rows);
          for (uint32_t q = 0; q < m; ++q) {
            for (uint32_t r = 0; r < rows; ++r) {
              packed_scored_top[q].Push(packed_scored[size_t{q} * rows + r],
                                        first + r);
            }
          }
          const char* const kForm[] = {"packed", "gathered", "scored",
                                       "packed scored"};
          for (uint32_t q = 0; q < m; ++q) {
            std::vector<float> scores[4];
            std::vector<int64_t> positions[4];
            int form = 0;
            for (std::vector<TopK>* tops :
                 {&top, &gathered_top, &scored_top, &packed_scored_top}) {
              scores[form].resize(k);
              positions[form].resize(k);
              (*tops)[q].Finish(scores[form].data(), positions[form].data());
              ASSERT_EQ(CompareWithOracle(oracle, queries.data() + q * stride,
                                          0, k, scores[form].data(),
                                          positions[form].data(), 1e-4),
                        "")
                  << "isa " << static_cast<int>(isa) << " " << DTypeName(dtype)
                  << " dim " << dim << " m " << m << " query " << q << " "
                  << kForm[form];
              ++form;
            }
            // The same arithmetic per row, so the same bits: the
            // approximate tier rescores rows by ScoreFewQueryRows and
            // merges them with the exact search's.
            for (int f = 1; f < 4; ++f) {
              EXPECT_EQ(scores[f], scores[0])
                  << "query " << q << " " << kForm[f];
              EXPECT_EQ(positions[f], positions[0])
                  << "query " << q << " " << kForm[f];
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace knnmem
