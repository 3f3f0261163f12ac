// The approximate tier's int8 list scan against what it must equal: the
// float32 scan of the same keys (the exact search's kernel, every row
// scored), bit for bit, on ordinary, clustered and lopsided keys; and its
// parts against double-precision arithmetic written here.
#include "server/search/int8_list_scan.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "base/dtype.h"
#include "tests/support/scattered_rows.h"

namespace knnmem {
namespace {

std::vector<FewQueryIsa> IsasOfThisCpu() {
  const FewQueryIsa cpu = FewQueryIsaOfCpu();
  if (cpu == FewQueryIsa::kAvx512) return {FewQueryIsa::kAvx2, cpu};
  if (cpu == FewQueryIsa::kAvx2) return {cpu};
  return {};
}

TEST(Int8ListScanTest, QuantizeRowsBoundsEveryElement) {
  std::mt19937 rng(11);
  std::normal_distribution<float> normal;
  const uint32_t dim = 37, rows = 300;
  std::vector<float> keys(size_t{rows} * dim);
  for (uint32_t r = 0; r < rows; ++r) {
    const float magnitude = std::pow(10.0f, static_cast<float>(r % 9) - 4);
    for (uint32_t d = 0; d < dim; ++d) {
      keys[size_t{r} * dim + d] = magnitude * normal(rng);
    }
  }
  std::fill_n(keys.begin() + 5 * dim, dim, 0.0f);  // a zero row
  keys[7 * dim + 3] = 1e6f;                        // one lopsided row
  std::vector<int8_t> codes(keys.size());
  std::vector<float> scales(rows);
  QuantizeRows(keys.data(), rows, dim, codes.data(), scales.data());
  EXPECT_EQ(scales[5], 0.0f);
  for (uint32_t r = 0; r < rows; ++r) {
    double largest = 0;
    for (uint32_t d = 0; d < dim; ++d) {
      largest = std::max(largest, std::abs(double{keys[size_t{r} * dim + d]}));
    }
    EXPECT_NEAR(scales[r], largest / 127, largest / 127 * 1e-6) << "row " << r;
    for (uint32_t d = 0; d < dim; ++d) {
      const double k = keys[size_t{r} * dim + d];
      const int c = codes[size_t{r} * dim + d];
      ASSERT_LE(std::abs(c), 127);
      ASSERT_LE(std::abs(k - double{scales[r]} * c),
                0.5000077 * scales[r] + 1e-30)
          << "row " << r << " element " << d;
    }
  }
}

TEST(Int8ListScanTest, ScoreInt8RowsEqualsDoublePrecision) {
  const std::vector<FewQueryIsa> isas = IsasOfThisCpu();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512";
  std::mt19937 rng(12);
  std::normal_distribution<float> normal;
  std::uniform_int_distribution<int> code(-127, 127);
  for (const FewQueryIsa isa : isas) {
    for (const uint32_t dim : {8u, 48u, 128u, 131u}) {
      for (uint32_t m = 1; m <= kMaxFewQueries; ++m) {
        const uint32_t rows = 61;  // rows in flight and a ragged end
        std::vector<int8_t> codes(size_t{rows} * dim);
        for (int8_t& c : codes) c = static_cast<int8_t>(code(rng));
        std::vector<float> scales(rows);
        for (float& s : scales) s = std::abs(normal(rng)) * 0.01f;
        const size_t stride = dim + 1;
        std::vector<float> queries(m * stride);
        for (float& x : queries) x = normal(rng);
        std::vector<float> out(size_t{m} * rows);
        ScoreInt8Rows(isa, queries.data(), stride, m, dim, codes.data(),
                      scales.data(), rows, out.data(), rows);
        for (uint32_t j = 0; j < m; ++j) {
          for (uint32_t r = 0; r < rows; ++r) {
            double dot = 0, l1 = 0;
            for (uint32_t d = 0; d < dim; ++d) {
              dot += double{queries[j * stride + d]} * codes[r * dim + d];
              l1 += std::abs(double{queries[j * stride + d]}) * 127;
            }
            ASSERT_NEAR(out[size_t{j} * rows + r], scales[r] * dot,
                        scales[r] * l1 * 1e-6)
                << "isa " << static_cast<int>(isa) << " dim " << dim << " m "
                << m << " query " << j << " row " << r;
          }
        }
      }
    }
  }
}

// Keys of one kind: ordinary (normal), clustered (one direction plus a
// little noise: many near ties, so the bound is what decides) and lopsided
// (one element far larger than the rest: the codes of the rest are coarse).
enum class Keys { kNormal, kClustered, kLopsided };

std::vector<float> MakeKeys(Keys kind, uint32_t rows, uint32_t dim,
                            std::mt19937& rng) {
  std::normal_distribution<float> normal;
  std::vector<float> base(dim);
  for (float& x : base) x = normal(rng);
  std::vector<float> keys(size_t{rows} * dim);
  for (uint32_t r = 0; r < rows; ++r) {
    for (uint32_t d = 0; d < dim; ++d) {
      float& x = keys[size_t{r} * dim + d];
      x = normal(rng);
      if (kind == Keys::kClustered) x = base[d] + 1e-3f * x;
    }
    if (kind == Keys::kLopsided) keys[size_t{r} * dim + r % dim] = 500.0f;
  }
  return keys;
}

// The scan of a list of `rows` keys in `dtype`, held scattered as in a
// layer's blocks, for the odd queries of 2m, split over two calls, against
// every row scored by ScoreFewQueryRows and pushed into a TopK.
void ExpectFloat32Answer(FewQueryIsa isa, Keys kind, DType dtype, uint32_t dim,
                         uint32_t m, uint32_t k, std::mt19937& rng,
                         uint64_t* rescored) {
  const uint32_t rows = 2000, n = 2 * m;
  const int64_t first_index = 5000;
  // The keys as the blocks hold them, in the storage dtype, and the codes
  // made from those (as the tier's Extend does, from the decoded keys).
  const std::string stored = PackFloats(MakeKeys(kind, rows, dim, rng), dtype);
  const std::vector<float> decoded = UnpackFloats(stored, dtype);
  std::vector<int8_t> codes(decoded.size());
  std::vector<float> scales(rows);
  QuantizeRows(decoded.data(), rows, dim, codes.data(), scales.data());
  const testing::ScatteredRows scattered =
      testing::Scatter(stored, size_t{dim} * ElementSize(dtype), rng);
  const std::vector<const char*>& row_at = scattered.row_at;
  std::normal_distribution<float> normal;
  std::vector<float> queries(size_t{n} * dim);
  for (float& x : queries) x = normal(rng);
  std::vector<uint32_t> who;
  std::vector<float> packed;
  for (uint32_t i = 1; i < n; i += 2) {
    who.push_back(i);
    packed.insert(packed.end(), queries.begin() + i * dim,
                  queries.begin() + (i + 1) * dim);
  }
  // The float32 scan: every row's score, pushed in order.
  std::vector<float> all(size_t{m} * rows);
  ScoreFewQueryRows(isa, packed.data(), dim, m, dim, row_at.data(), dtype, rows,
                    all.data(), rows);
  std::vector<TopK> want(m, TopK(k)), got(m, TopK(k));
  std::vector<TopK*> got_ptrs;
  for (uint32_t j = 0; j < m; ++j) {
    for (uint32_t r = 0; r < rows; ++r) {
      want[j].Push(all[size_t{j} * rows + r], first_index + r);
    }
    got_ptrs.push_back(&got[j]);
  }
  Int8ListScan scan(isa, queries.data(), n, dim, k, dtype);
  const uint32_t split = 700;
  for (const auto& [from, count] :
       {std::pair<uint32_t, uint32_t>{0, split}, {split, rows - split}}) {
    scan.Scan(
        packed.data(), who.data(), m, codes.data() + size_t{from} * dim,
        scales.data() + from, count,
        [&](const uint32_t* pick, uint32_t c, const char** out) {
          for (uint32_t i = 0; i < c; ++i) {
            ASSERT_TRUE(i == 0 || pick[i] > pick[i - 1]);
            out[i] = row_at[from + pick[i]];
          }
        },
        first_index + from, got_ptrs.data());
  }
  *rescored = scan.rescored();
  for (uint32_t j = 0; j < m; ++j) {
    std::vector<float> want_scores(k), got_scores(k);
    std::vector<int64_t> want_positions(k), got_positions(k);
    want[j].Finish(want_scores.data(), want_positions.data());
    got[j].Finish(got_scores.data(), got_positions.data());
    EXPECT_EQ(got_scores, want_scores) << "query " << j;
    EXPECT_EQ(got_positions, want_positions) << "query " << j;
  }
}

TEST(Int8ListScanTest, AnswersAsTheFloat32ScanDoes) {
  const std::vector<FewQueryIsa> isas = IsasOfThisCpu();
  if (isas.empty()) GTEST_SKIP() << "this CPU has neither AVX2 nor AVX-512";
  std::mt19937 rng(13);
  for (const FewQueryIsa isa : isas) {
    for (const Keys kind : {Keys::kNormal, Keys::kClustered, Keys::kLopsided}) {
      for (const DType dtype :
           {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
        for (const uint32_t dim : {8u, 48u, 131u}) {
          for (const uint32_t m : {1u, 3u, 8u}) {
            for (const uint32_t k : {1u, 10u, 32u}) {
              SCOPED_TRACE(::testing::Message()
                           << "isa " << static_cast<int>(isa) << " keys "
                           << static_cast<int>(kind) << " " << DTypeName(dtype)
                           << " dim " << dim << " m " << m << " k " << k);
              uint64_t rescored = 0;
              ExpectFloat32Answer(isa, kind, dtype, dim, m, k, rng, &rescored);
              // Ordinary keys: the codes settle most rows by themselves
              // (else the scan would read the scattered keys after all);
              // about 5 m k of the 2,000 are scored again here.
              if (kind == Keys::kNormal) {
                EXPECT_LE(rescored, 8 * m * k + 16);
              }
            }
          }
        }
      }
    }
  }
}

}  // namespace
}  // namespace knnmem
