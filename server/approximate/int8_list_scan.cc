#include "server/approximate/int8_list_scan.h"

#include <algorithm>
#include <cmath>
#include <functional>
#include <limits>

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

void QuantizeRows(const float* keys, uint32_t rows, uint32_t dim, int8_t* codes,
                  float* scales) {
  for (uint32_t r = 0; r < rows; ++r) {
    const float* k = keys + size_t{r} * dim;
    int8_t* c = codes + size_t{r} * dim;
    float largest = 0.0f;
    for (uint32_t d = 0; d < dim; ++d)
      largest = std::max(largest, std::abs(k[d]));
    const float s = largest / 127.0f;
    scales[r] = s;
    for (uint32_t d = 0; d < dim; ++d) {
      const float v = s > 0.0f ? std::nearbyint(k[d] / s) : 0.0f;
      c[d] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

Int8ListScan::Int8ListScan(FewQueryIsa isa, const float* queries, uint32_t n,
                           uint32_t dim, uint32_t k, DType key_dtype)
    : isa_(isa),
      dim_(dim),
      k_(k),
      key_dtype_(key_dtype),
      error_(n),
      bound_(n, -kInf) {
  const float factor = ErrorFactor(dim);
  for (uint32_t i = 0; i < n; ++i) {
    float l1 = 0.0f;
    for (uint32_t d = 0; d < dim; ++d) {
      l1 += std::abs(queries[size_t{i} * dim + d]);
    }
    error_[i] = factor * l1;
  }
}

void Int8ListScan::Scan(const float* packed, const uint32_t* who, uint32_t m,
                        const int8_t* codes, const float* scales, uint32_t rows,
                        Locate locate, int64_t first_index, TopK* const* top) {
  float approx[kMaxFewQueries * kChunk];
  float exact[kMaxFewQueries * kChunk];
  float lower[kChunk];
  bool wanted[kChunk];
  uint32_t candidates[kChunk];
  const char* at[kChunk];
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t count = std::min(kChunk, rows - r0);
    const float* s = scales + r0;
    ScoreInt8Rows(isa_, packed, dim_, m, dim_, codes + size_t{r0} * dim_, s,
                  count, approx, kChunk);
    std::fill_n(wanted, count, false);
    for (uint32_t j = 0; j < m; ++j) {
      const float* a = approx + size_t{j} * kChunk;
      const float e = error_[who[j]];
      float& bound = bound_[who[j]];
      if (count >= k_ && top[j]->threshold() == -kInf) {
        // Until the TopK holds k scores: k rows score at least their
        // a - e, so the k-th best can do no worse.
        for (uint32_t r = 0; r < count; ++r) lower[r] = a[r] - e * s[r];
        std::nth_element(lower, lower + (k_ - 1), lower + count,
                         std::greater<float>());
        bound = std::max(bound, lower[k_ - 1]);
      }
      const float threshold = std::max(bound, top[j]->threshold());
      for (uint32_t r = 0; r < count; ++r) {
        wanted[r] |= a[r] + e * s[r] >= threshold;
      }
    }
    uint32_t n = 0;
    for (uint32_t r = 0; r < count; ++r) {
      if (wanted[r]) candidates[n++] = r0 + r;
    }
    if (n == 0) continue;
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
  }
}

}  // namespace knnmem
