#include "server/search/bf16_prefilter.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "server/search/bf16_kernels.h"

namespace knnmem {
namespace {

using bf16::DotF32;
using bf16::kLargestNormProduct;
using bf16::PackRow;
using bf16::PairOf;

constexpr uint32_t kLanes = 32;     // queries per group: two zmm of float32
constexpr uint32_t kTileRows = 12;  // keys per register tile: 24 accumulators

// What the hits of one group of 32 queries need.
struct GroupScan {
  const float* queries;  // query lane 0 of the group
  size_t stride;
  uint32_t dim;
  uint32_t lanes;    // real queries in the group (the rest is padding)
  const char* keys;  // the block's rows in storage dtype
  DType dtype;
  uint32_t rows;
  int64_t first_position;
  TopK* top;  // top of lane 0
  const float* margins;
  float* thresholds;  // [32]: top[lane].threshold() - margins[lane]
  std::vector<float>* decoded;
  uint64_t* rescored;
};

// Scores the keys whose approximate score passed in float32 and pushes the
// ones that can enter; updates the thresholds of the lanes they entered.
__attribute__((noinline)) void TakeHits(GroupScan& g, uint32_t row0,
                                        const uint32_t* masks,
                                        const float* approx) {
  const size_t row_bytes = size_t{g.dim} * ElementSize(g.dtype);
  for (uint32_t i = 0; i < kTileRows; ++i) {
    const uint32_t row = row0 + i;
    if (row >= g.rows) break;
    const float* key = nullptr;
    for (uint32_t hits = masks[i]; hits != 0; hits &= hits - 1) {
      const uint32_t lane = static_cast<uint32_t>(__builtin_ctz(hits));
      // Thresholds may have risen since the compare.
      if (lane >= g.lanes || approx[i * kLanes + lane] < g.thresholds[lane]) {
        continue;
      }
      if (key == nullptr) {
        const char* raw = g.keys + row * row_bytes;
        if (g.dtype == DType::kFloat32) {
          key = reinterpret_cast<const float*>(raw);
        } else {
          DecodeFloats(raw, g.dim, g.dtype, g.decoded->data());
          key = g.decoded->data();
        }
      }
      const float exact = DotF32(g.queries + lane * g.stride, key, g.dim);
      ++*g.rescored;
      TopK& top = g.top[lane];
      if (exact >= top.threshold()) {
        top.Push(exact, g.first_position + row);
        g.thresholds[lane] = top.threshold() - g.margins[lane];
      }
    }
  }
}

// Approximate scores of 32 queries (q: [pair][32] bf16 pairs) against
// `padded_rows` keys (keys: [row][pair]); tiles with a score at or above a
// lane's threshold go to TakeHits.
__attribute__((target("avx512f,avx512bf16"))) void ScanGroup(
    const uint32_t* q, const uint32_t* keys, uint32_t pairs,
    uint32_t padded_rows, GroupScan& g) {
  __m512 t0 = _mm512_loadu_ps(g.thresholds);
  __m512 t1 = _mm512_loadu_ps(g.thresholds + 16);
  for (uint32_t r0 = 0; r0 < padded_rows; r0 += kTileRows) {
    __m512 acc[kTileRows][2];
    for (uint32_t i = 0; i < kTileRows; ++i) {
      acc[i][0] = _mm512_setzero_ps();
      acc[i][1] = _mm512_setzero_ps();
    }
    const uint32_t* kr = keys + size_t{r0} * pairs;
    for (uint32_t p = 0; p < pairs; ++p) {
      const __m512bh q0 = reinterpret_cast<__m512bh>(
          _mm512_loadu_si512(q + size_t{p} * kLanes));
      const __m512bh q1 = reinterpret_cast<__m512bh>(
          _mm512_loadu_si512(q + size_t{p} * kLanes + 16));
#pragma GCC unroll 12
      for (uint32_t i = 0; i < kTileRows; ++i) {
        const __m512bh b = reinterpret_cast<__m512bh>(
            _mm512_set1_epi32(static_cast<int>(kr[i * pairs + p])));
        acc[i][0] = _mm512_dpbf16_ps(acc[i][0], q0, b);
        acc[i][1] = _mm512_dpbf16_ps(acc[i][1], q1, b);
      }
    }
    uint32_t masks[kTileRows];
    uint32_t any = 0;
    for (uint32_t i = 0; i < kTileRows; ++i) {
      masks[i] =
          _mm512_cmp_ps_mask(acc[i][0], t0, _CMP_GE_OQ) |
          static_cast<uint32_t>(_mm512_cmp_ps_mask(acc[i][1], t1, _CMP_GE_OQ))
              << 16;
      any |= masks[i];
    }
    if (any == 0) continue;
    alignas(64) float approx[kTileRows * kLanes];
    for (uint32_t i = 0; i < kTileRows; ++i) {
      _mm512_store_ps(approx + i * kLanes, acc[i][0]);
      _mm512_store_ps(approx + i * kLanes + 16, acc[i][1]);
    }
    TakeHits(g, r0, masks, approx);
    t0 = _mm512_loadu_ps(g.thresholds);
    t1 = _mm512_loadu_ps(g.thresholds + 16);
  }
}

}  // namespace

bool Bf16CpuSupported() {
  static const bool supported = [] {
    __builtin_cpu_init();
    return __builtin_cpu_supports("avx512f") &&
           __builtin_cpu_supports("avx512bf16");
  }();
  return supported;
}

bool Bf16PrefilterSupported() {
#if defined(__SANITIZE_THREAD__)
  return false;
#else
  return Bf16CpuSupported();
#endif
}

Bf16Prefilter::Bf16Prefilter(const float* queries, size_t stride, uint32_t m,
                             uint32_t dim)
    : queries_(queries),
      stride_(stride),
      m_(m),
      dim_(dim),
      pairs_((dim + 1) / 2),
      norms_(m),
      decoded_(dim) {
  const uint32_t groups = (m + kLanes - 1) / kLanes;
  packed_.assign(size_t{groups} * pairs_ * kLanes, 0u);
  for (uint32_t q = 0; q < m; ++q) {
    const float* x = queries + q * stride;
    double sq = 0.0;
    for (uint32_t d = 0; d < dim; ++d) sq += double{x[d]} * x[d];
    norms_[q] = static_cast<float>(std::sqrt(sq));
    // NaN stays NaN here, and fails the bound's check in ScanBlock.
    max_query_norm_ = std::isnan(norms_[q])
                          ? norms_[q]
                          : std::max(max_query_norm_, norms_[q]);
    uint32_t* group = packed_.data() + size_t{q / kLanes} * pairs_ * kLanes;
    for (uint32_t p = 0; p < pairs_; ++p) {
      group[size_t{p} * kLanes + q % kLanes] = PairOf(x, dim, p);
    }
  }
}

bool Bf16Prefilter::ScanBlock(const char* keys, DType dtype, uint32_t rows,
                              int64_t first_position, TopK* top) {
  if (rows == 0 || m_ == 0) return true;
  if (std::isnan(max_query_norm_)) return false;
  const uint32_t padded = (rows + kTileRows - 1) / kTileRows * kTileRows;
  keys_.resize(size_t{padded} * pairs_);
  const size_t row_bytes = size_t{dim_} * ElementSize(dtype);
  float max_sq = 0.0f;
  for (uint32_t r = 0; r < rows; ++r) {
    const char* raw = keys + r * row_bytes;
    const float* x = reinterpret_cast<const float*>(raw);
    if (dtype != DType::kFloat32) {
      DecodeFloats(raw, dim_, dtype, decoded_.data());
      x = decoded_.data();
    }
    const float sq = PackRow(x, dim_, keys_.data() + size_t{r} * pairs_);
    max_sq = std::isnan(sq) ? sq : std::max(max_sq, sq);
  }
  std::fill(keys_.begin() + size_t{rows} * pairs_, keys_.end(), 0u);
  const float max_key_norm = std::sqrt(max_sq);
  if (!(max_key_norm * max_query_norm_ <= kLargestNormProduct)) return false;

  float margins[kLanes];
  alignas(64) float thresholds[kLanes];
  for (uint32_t g0 = 0; g0 < m_; g0 += kLanes) {
    const uint32_t lanes = std::min(kLanes, m_ - g0);
    for (uint32_t lane = 0; lane < kLanes; ++lane) {
      if (lane >= lanes) {
        margins[lane] = 0.0f;
        thresholds[lane] = std::numeric_limits<float>::infinity();
        continue;
      }
      margins[lane] = bf16::Margin(norms_[g0 + lane], max_key_norm, dim_);
      thresholds[lane] = top[g0 + lane].threshold() - margins[lane];
    }
    GroupScan g{queries_ + g0 * stride_,
                stride_,
                dim_,
                lanes,
                keys,
                dtype,
                rows,
                first_position,
                top + g0,
                margins,
                thresholds,
                &decoded_,
                &rescored_};
    ScanGroup(packed_.data() + size_t{g0 / kLanes} * pairs_ * kLanes,
              keys_.data(), pairs_, padded, g);
  }
  return true;
}

}  // namespace knnmem
