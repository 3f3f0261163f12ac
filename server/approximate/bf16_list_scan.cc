#include "server/approximate/bf16_list_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <limits>

#include "server/search/bf16_kernels.h"
#include "server/search/bf16_prefilter.h"

namespace knnmem {
namespace {

using bf16::DotF32;
using bf16::PackRow;

constexpr uint32_t kLanes = 32;       // keys per group: two zmm of float32
constexpr uint32_t kTileQueries = 4;  // queries per register tile

// All lanes: the maskz forms, because GCC 12's unmasked ones start from an
// "undefined" vector that -Wmaybe-uninitialized flags.
constexpr __mmask16 kAll16 = 0xffff;
constexpr __mmask8 kAll8 = 0xff;

// Transposes 16 rows of 16 dwords in place: r[i][j] becomes r[j][i].
__attribute__((target("avx512f"))) void Transpose16(__m512i r[16]) {
  __m512i t[16], u[16];
  for (int i = 0; i < 8; ++i) {
    t[2 * i] = _mm512_maskz_unpacklo_epi32(kAll16, r[2 * i], r[2 * i + 1]);
    t[2 * i + 1] = _mm512_maskz_unpackhi_epi32(kAll16, r[2 * i], r[2 * i + 1]);
  }
  // u[4i + k], 128-bit lane L: rows 4i..4i+3 of column 4L + k.
  for (int i = 0; i < 4; ++i) {
    u[4 * i + 0] =
        _mm512_maskz_unpacklo_epi64(kAll8, t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 1] =
        _mm512_maskz_unpackhi_epi64(kAll8, t[4 * i + 0], t[4 * i + 2]);
    u[4 * i + 2] =
        _mm512_maskz_unpacklo_epi64(kAll8, t[4 * i + 1], t[4 * i + 3]);
    u[4 * i + 3] =
        _mm512_maskz_unpackhi_epi64(kAll8, t[4 * i + 1], t[4 * i + 3]);
  }
  for (int k = 0; k < 4; ++k) {
    const __m512i x0 = _mm512_maskz_shuffle_i32x4(kAll16, u[k], u[4 + k], 0x44);
    const __m512i x1 = _mm512_maskz_shuffle_i32x4(kAll16, u[k], u[4 + k], 0xee);
    const __m512i y0 =
        _mm512_maskz_shuffle_i32x4(kAll16, u[8 + k], u[12 + k], 0x44);
    const __m512i y1 =
        _mm512_maskz_shuffle_i32x4(kAll16, u[8 + k], u[12 + k], 0xee);
    r[k] = _mm512_maskz_shuffle_i32x4(kAll16, x0, y0, 0x88);
    r[k + 4] = _mm512_maskz_shuffle_i32x4(kAll16, x0, y0, 0xdd);
    r[k + 8] = _mm512_maskz_shuffle_i32x4(kAll16, x1, y1, 0x88);
    r[k + 12] = _mm512_maskz_shuffle_i32x4(kAll16, x1, y1, 0xdd);
  }
}

// rows [rows][pairs] (rows a multiple of 32) -> [group][pair][32].
__attribute__((target("avx512f"))) void ToLanes(const uint32_t* rows,
                                                uint32_t n, uint32_t pairs,
                                                uint32_t* out) {
  const uint32_t full = pairs / 16 * 16;
  for (uint32_t g = 0; g < n / kLanes; ++g) {
    uint32_t* group = out + size_t{g} * pairs * kLanes;
    for (uint32_t half = 0; half < 2; ++half) {
      const uint32_t* src = rows + (size_t{g} * kLanes + half * 16) * pairs;
      for (uint32_t p0 = 0; p0 < full; p0 += 16) {
        __m512i r[16];
        for (int i = 0; i < 16; ++i) {
          r[i] = _mm512_loadu_si512(src + static_cast<size_t>(i) * pairs + p0);
        }
        Transpose16(r);
        for (int i = 0; i < 16; ++i) {
          _mm512_storeu_si512(
              group + (size_t{p0} + static_cast<size_t>(i)) * kLanes +
                  half * 16,
              r[i]);
        }
      }
      for (uint32_t p = full; p < pairs; ++p) {
        for (uint32_t i = 0; i < 16; ++i) {
          group[size_t{p} * kLanes + half * 16 + i] =
              src[size_t{i} * pairs + p];
        }
      }
    }
  }
}

struct TileScan {
  const float* keys;  // the chunk's float32 rows
  uint32_t rows;
  uint32_t dim;
  int64_t first_index;
  const float* query[kTileQueries];  // nullptr: padding
  TopK* top[kTileQueries];
  float margin[kTileQueries];
  float threshold[kTileQueries];
};

__attribute__((noinline)) void TakeHits(TileScan& t, uint32_t key0,
                                        const uint32_t* masks,
                                        const float* approx) {
  for (uint32_t i = 0; i < kTileQueries; ++i) {
    if (t.query[i] == nullptr) continue;
    for (uint32_t hits = masks[i]; hits != 0; hits &= hits - 1) {
      const uint32_t lane = static_cast<uint32_t>(__builtin_ctz(hits));
      const uint32_t key = key0 + lane;
      if (key >= t.rows || approx[i * kLanes + lane] < t.threshold[i]) {
        continue;
      }
      const float exact =
          DotF32(t.query[i], t.keys + size_t{key} * t.dim, t.dim);
      if (exact >= t.top[i]->threshold()) {
        t.top[i]->Push(exact, t.first_index + key);
        t.threshold[i] = t.top[i]->threshold() - t.margin[i];
      }
    }
  }
}

// One group of 32 keys (k: [pair][32]) against one tile of queries (q[i]:
// [pair] bf16 pairs).
__attribute__((target("avx512f,avx512bf16"))) void ScanTile(
    const uint32_t* k, const uint32_t* const* q, uint32_t pairs, uint32_t key0,
    TileScan& t) {
  __m512 acc[kTileQueries][2];
  for (uint32_t i = 0; i < kTileQueries; ++i) {
    acc[i][0] = _mm512_setzero_ps();
    acc[i][1] = _mm512_setzero_ps();
  }
  for (uint32_t p = 0; p < pairs; ++p) {
    const __m512bh k0 =
        reinterpret_cast<__m512bh>(_mm512_loadu_si512(k + size_t{p} * kLanes));
    const __m512bh k1 = reinterpret_cast<__m512bh>(
        _mm512_loadu_si512(k + size_t{p} * kLanes + 16));
#pragma GCC unroll 4
    for (uint32_t i = 0; i < kTileQueries; ++i) {
      const __m512bh b = reinterpret_cast<__m512bh>(
          _mm512_set1_epi32(static_cast<int>(q[i][p])));
      acc[i][0] = _mm512_dpbf16_ps(acc[i][0], k0, b);
      acc[i][1] = _mm512_dpbf16_ps(acc[i][1], k1, b);
    }
  }
  uint32_t masks[kTileQueries];
  uint32_t any = 0;
  for (uint32_t i = 0; i < kTileQueries; ++i) {
    const __m512 thr = _mm512_set1_ps(t.threshold[i]);
    masks[i] =
        _mm512_cmp_ps_mask(acc[i][0], thr, _CMP_GE_OQ) |
        static_cast<uint32_t>(_mm512_cmp_ps_mask(acc[i][1], thr, _CMP_GE_OQ))
            << 16;
    any |= masks[i];
  }
  if (any == 0) return;
  alignas(64) float approx[kTileQueries * kLanes];
  for (uint32_t i = 0; i < kTileQueries; ++i) {
    _mm512_store_ps(approx + i * kLanes, acc[i][0]);
    _mm512_store_ps(approx + i * kLanes + 16, acc[i][1]);
  }
  TakeHits(t, key0, masks, approx);
}

}  // namespace

Bf16ListScan::Bf16ListScan(const float* queries, uint32_t n, uint32_t dim)
    : queries_(queries),
      n_(n),
      dim_(dim),
      pairs_((dim + 1) / 2),
      packed_queries_(size_t{n + 1} * pairs_, 0u),  // + a zero query
      norms_(n) {
  for (uint32_t q = 0; q < n; ++q) {
    const float* x = queries + size_t{q} * dim;
    double sq = 0.0;
    for (uint32_t d = 0; d < dim; ++d) sq += double{x[d]} * x[d];
    norms_[q] = static_cast<float>(std::sqrt(sq));
    for (uint32_t p = 0; p < pairs_; ++p) {
      packed_queries_[size_t{q} * pairs_ + p] = bf16::PairOf(x, dim, p);
    }
  }
}

bool Bf16ListScan::Scan(const float* keys, uint32_t rows, const uint32_t* who,
                        uint32_t m, TopK* const* top, int64_t first_index) {
  if (rows == 0 || m == 0) return true;
  const uint32_t padded = (rows + kLanes - 1) / kLanes * kLanes;
  row_pairs_.assign(size_t{padded} * pairs_, 0u);
  float max_sq = 0.0f;
  for (uint32_t r = 0; r < rows; ++r) {
    const float sq = PackRow(keys + size_t{r} * dim_, dim_,
                             row_pairs_.data() + size_t{r} * pairs_);
    max_sq = std::isnan(sq) ? sq : std::max(max_sq, sq);
  }
  float max_query_norm = 0.0f;
  for (uint32_t r = 0; r < m; ++r) {
    const float qn = norms_[who[r]];
    max_query_norm = std::isnan(qn) ? qn : std::max(max_query_norm, qn);
  }
  const float max_key_norm = std::sqrt(max_sq);
  if (!(max_key_norm * max_query_norm <= bf16::kLargestNormProduct)) {
    return false;
  }
  packed_keys_.resize(size_t{padded} * pairs_);
  ToLanes(row_pairs_.data(), padded, pairs_, packed_keys_.data());

  const uint32_t* zero = packed_queries_.data() + size_t{n_} * pairs_;
  for (uint32_t r0 = 0; r0 < m; r0 += kTileQueries) {
    TileScan t{keys, rows, dim_, first_index, {}, {}, {}, {}};
    const uint32_t* q[kTileQueries];
    for (uint32_t i = 0; i < kTileQueries; ++i) {
      if (r0 + i >= m) {
        t.query[i] = nullptr;
        t.top[i] = nullptr;
        t.margin[i] = 0.0f;
        t.threshold[i] = std::numeric_limits<float>::infinity();
        q[i] = zero;
        continue;
      }
      const uint32_t id = who[r0 + i];
      t.query[i] = queries_ + size_t{id} * dim_;
      t.top[i] = top[r0 + i];
      t.margin[i] = bf16::Margin(norms_[id], max_key_norm, dim_);
      q[i] = packed_queries_.data() + size_t{id} * pairs_;
    }
    for (uint32_t g = 0; g < padded / kLanes; ++g) {
      for (uint32_t i = 0; i < kTileQueries; ++i) {
        if (t.top[i] != nullptr) {
          t.threshold[i] = t.top[i]->threshold() - t.margin[i];
        }
      }
      ScanTile(packed_keys_.data() + size_t{g} * pairs_ * kLanes, q, pairs_,
               g * kLanes, t);
    }
  }
  return true;
}

}  // namespace knnmem
