#include "server/search/int8_list_scan.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

#include "server/search/score_scan.h"

namespace knnmem {
namespace {

// Rows scored per step: their approximate and float32 scores stay in L1.
constexpr uint32_t kChunk = 256;
constexpr float kInf = std::numeric_limits<float>::infinity();

// The bound's factor of s |q|_1 for keys of `dim` elements (the header).
float ErrorFactor(uint32_t dim) {
  return static_cast<float>(0.502 + 127.0 * (2.0 * dim + 8.0) * 0x1p-24);
}

}  // namespace

Int8ListScan::Int8ListScan(FewQueryIsa isa, const float* queries, uint32_t n,
                           uint32_t dim, uint32_t k, DType key_dtype)
    : isa_(isa),
      dim_(dim),
      k_(k),
      key_dtype_(key_dtype),
      error_(n),
      bound_(n, -kInf),
      lowers_(n) {
  const float factor = ErrorFactor(dim);
  for (uint32_t i = 0; i < n; ++i) {
    float l1 = 0.0f;
    for (uint32_t d = 0; d < dim; ++d) {
      l1 += std::abs(queries[size_t{i} * dim + d]);
    }
    error_[i] = factor * l1;
    lowers_[i].reserve(4 * size_t{k} + kChunk);
  }
}

void Int8ListScan::RaiseBound(uint32_t i, const float* approx,
                              const float* scales, uint32_t count,
                              bool settle) {
  const float e = error_[i];
  const float bound = bound_[i];
  std::vector<float>& lowers = lowers_[i];
  const size_t before = lowers.size();
  scratch_.resize(count);
  float* lower = scratch_.data();
  for (uint32_t r = 0; r < count; ++r) lower[r] = approx[r] - e * scales[r];
  // Before any bound (the first chunk, or a small layer observed at once),
  // only the rows at or above their own strided bound (k of them reach it)
  // can be among the k largest.
  const float strided = bound == -kInf ? StridedBound(lower, count, k_) : -kInf;
  if (strided > bound) {
    for (uint32_t r = 0; r < count; ++r) {
      if (lower[r] >= strided) lowers.push_back(lower[r]);
    }
  } else {
    for (uint32_t r = 0; r < count; ++r) {
      if (lower[r] > bound) lowers.push_back(lower[r]);
    }
  }
  if (lowers.size() >= 4 * size_t{k_} || (settle && lowers.size() != before)) {
    Settle(i);
  }
}

void Int8ListScan::Settle(uint32_t i) {
  std::vector<float>& lowers = lowers_[i];
  if (lowers.size() < k_) return;
  // The k largest lower bounds so far: k rows score at least the k-th.
  std::nth_element(lowers.begin(), lowers.begin() + (k_ - 1), lowers.end(),
                   std::greater<float>());
  lowers.resize(k_);
  bound_[i] = lowers[k_ - 1];
}

void Int8ListScan::Observe(const uint32_t* who, uint32_t m, const float* approx,
                           size_t stride, const float* scales, uint32_t count) {
  for (uint32_t j = 0; j < m; ++j) {
    RaiseBound(who[j], approx + j * stride, scales, count, /*settle=*/false);
  }
}

void Int8ListScan::Settle(const uint32_t* who, uint32_t m) {
  for (uint32_t j = 0; j < m; ++j) Settle(who[j]);
}

void Int8ListScan::Rescore(const float* packed, const uint32_t* who, uint32_t m,
                           const float* approx, size_t stride,
                           const float* scales, uint32_t rows, Locate locate,
                           int64_t first_index, TopK* const* top) {
  float exact[kMaxFewQueries * kChunk];
  bool wanted[kChunk];
  uint32_t candidates[kChunk];
  const char* at[kChunk];
  uint32_t n = 0;
  // Candidates are scored kChunk at a time, however many rows they come
  // from: the kernel asks for the rows ahead of the one it scores.
  auto score = [&] {
    rescored_ += n;
    locate(candidates, n, at);
    ScoreFewQueryRows(isa_, packed, dim_, m, dim_, at, key_dtype_, n, exact,
                      kChunk);
    for (uint32_t j = 0; j < m; ++j) {
      TopK& t = *top[j];
      const float* x = exact + size_t{j} * kChunk;
      for (uint32_t i = 0; i < n; ++i) {
        if (x[i] >= t.threshold()) t.Push(x[i], first_index + candidates[i]);
      }
    }
    n = 0;
  };
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t count = std::min(kChunk, rows - r0);
    const float* s = scales + r0;
    std::fill_n(wanted, count, false);
    for (uint32_t j = 0; j < m; ++j) {
      const float* a = approx + j * stride + r0;
      const float e = error_[who[j]];
      const float threshold = std::max(bound_[who[j]], top[j]->threshold());
      for (uint32_t r = 0; r < count; ++r) {
        wanted[r] |= a[r] + e * s[r] >= threshold;
      }
    }
    for (uint32_t r = 0; r < count; ++r) {
      if (!wanted[r]) continue;
      candidates[n++] = r0 + r;
      if (n == kChunk) score();
    }
  }
  if (n > 0) score();
}

void Int8ListScan::Scan(const float* packed, const uint32_t* who, uint32_t m,
                        const int8_t* codes, const float* scales, uint32_t rows,
                        Locate locate, int64_t first_index, TopK* const* top) {
  float approx[kMaxFewQueries * kChunk];
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t count = std::min(kChunk, rows - r0);
    ScoreInt8Rows(isa_, packed, dim_, m, dim_, codes + size_t{r0} * dim_,
                  scales + r0, count, approx, kChunk);
    for (uint32_t j = 0; j < m; ++j) {
      RaiseBound(who[j], approx + size_t{j} * kChunk, scales + r0, count,
                 /*settle=*/true);
    }
    Rescore(
        packed, who, m, approx, kChunk, scales + r0, count,
        [&](const uint32_t* rows_in, uint32_t n, const char** out) {
          uint32_t shifted[kChunk];
          for (uint32_t i = 0; i < n; ++i) shifted[i] = rows_in[i] + r0;
          locate(shifted, n, out);
        },
        first_index + r0, top);
  }
}

}  // namespace knnmem
