// Helpers shared by the bfloat16 kernels (bf16_prefilter.cc,
// bf16_list_scan.cc): rounding to bfloat16 pairs, float32 dots and the
// error bound's terms. Internal to those two files.
#ifndef KNNMEM_SERVER_SEARCH_BF16_KERNELS_H_
#define KNNMEM_SERVER_SEARCH_BF16_KERNELS_H_

#include <immintrin.h>

#include <cmath>
#include <cstdint>
#include <cstring>

#include "base/dtype.h"
#include "server/search/bf16_prefilter.h"

namespace knnmem::bf16 {

// Above this, |q| |k| and the approximate scores could overflow float32.
inline constexpr float kLargestNormProduct = 1e30f;

// Elements 2p and 2p + 1 of x as one dword of two bfloat16, zero past dim.
inline uint32_t PairOf(const float* x, uint32_t dim, uint32_t p) {
  const uint32_t i = 2 * p;
  // Rounded to nearest even, as vcvtne2ps2bf16 rounds.
  const uint32_t lo = i < dim ? FloatToBFloat16(x[i]) : 0u;
  const uint32_t hi = i + 1 < dim ? FloatToBFloat16(x[i + 1]) : 0u;
  return lo | hi << 16;
}

// (GCC 12's _mm512_reduce_add_ps trips -Wuninitialized in its own header.)
inline __attribute__((target("avx512f"))) float SumLanes(__m512 v) {
  alignas(64) float lanes[16];
  _mm512_store_ps(lanes, v);
  float sum = 0.0f;
  for (float x : lanes) sum += x;
  return sum;
}

// Packs one float32 row into pairs and returns its squared norm.
inline __attribute__((target("avx512f,avx512bf16"))) float PackRow(
    const float* x, uint32_t dim, uint32_t* out) {
  __m512 sq = _mm512_setzero_ps();
  uint32_t i = 0;
  for (; i + 32 <= dim; i += 32) {
    const __m512 lo = _mm512_loadu_ps(x + i);
    const __m512 hi = _mm512_loadu_ps(x + i + 16);
    sq = _mm512_fmadd_ps(lo, lo, sq);
    sq = _mm512_fmadd_ps(hi, hi, sq);
    _mm512_storeu_si512(out + i / 2,
                        reinterpret_cast<__m512i>(_mm512_cvtne2ps_pbh(hi, lo)));
  }
  float tail = 0.0f;
  for (uint32_t j = i; j < dim; ++j) tail += x[j] * x[j];
  for (uint32_t p = i / 2; p < (dim + 1) / 2; ++p) out[p] = PairOf(x, dim, p);
  return SumLanes(sq) + tail;
}

inline __attribute__((target("avx512f"))) float DotF32(const float* a,
                                                       const float* b,
                                                       uint32_t dim) {
  __m512 sum = _mm512_setzero_ps();
  uint32_t i = 0;
  for (; i + 16 <= dim; i += 16) {
    sum = _mm512_fmadd_ps(_mm512_loadu_ps(a + i), _mm512_loadu_ps(b + i), sum);
  }
  if (i < dim) {
    const __mmask16 tail = static_cast<__mmask16>((1u << (dim - i)) - 1u);
    sum = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(tail, a + i),
                          _mm512_maskz_loadu_ps(tail, b + i), sum);
  }
  return SumLanes(sum);
}

// The bound's absolute term: flushed denormals (inputs, products, sums)
// add at most 2^-126 per term.
inline double FlushedBound(uint32_t dim) {
  return 2.0 * dim * std::ldexp(1.0, -126);
}

// How far below a query's k-th best float32 score an approximate score may
// lie and still belong to a key that beats it (bf16_prefilter.h).
inline float Margin(double query_norm, double max_key_norm, uint32_t dim) {
  return static_cast<float>(kBf16RelativeError * query_norm * max_key_norm +
                            FlushedBound(dim) *
                                (1.0 + query_norm + max_key_norm));
}

}  // namespace knnmem::bf16

#endif  // KNNMEM_SERVER_SEARCH_BF16_KERNELS_H_
