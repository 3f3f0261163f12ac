#include "server/search/few_query_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>

#include "server/search/score_scan.h"

namespace knnmem {
namespace {

// Scores of `rows` keys for M queries into out[j * out_stride + row].
using ScoresFn = void (*)(const float* queries, size_t stride, uint32_t dim,
                          const char* keys, uint32_t rows, float* out,
                          size_t out_stride);

template <DType D>
constexpr size_t kBytes = D == DType::kFloat32 ? 4 : 2;

// Element d of a key row, for the dimensions past the last full vector.
template <DType D>
float ElementAt(const char* row, uint32_t d) {
  if constexpr (D == DType::kFloat32) {
    float f;
    std::memcpy(&f, row + size_t{d} * 4, 4);
    return f;
  } else {
    uint16_t h;
    std::memcpy(&h, row + size_t{d} * 2, 2);
    return D == DType::kFloat16 ? HalfToFloat(h) : BFloat16ToFloat(h);
  }
}

template <DType D>
float TailDot(const float* query, const char* row, uint32_t from,
              uint32_t dim) {
  float s = 0.0f;
  for (uint32_t d = from; d < dim; ++d) s += query[d] * ElementAt<D>(row, d);
  return s;
}

// How far ahead of the rows being scored their lines are asked for.
constexpr size_t kPrefetchBytes = 4096;

// Rows in flight per step: with fewer queries, more rows, so that about
// four independent FMA chains hide the FMA latency.
constexpr int RowsInFlight(int m) { return m == 1 ? 4 : m == 2 ? 2 : 1; }

#define KNNMEM_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define KNNMEM_AVX2 __attribute__((target("avx2,fma,f16c")))

// 16 elements of D widened to float32. (The zero-masking forms, with every
// lane selected: GCC 12 warns that the plain forms' undefined pass-through
// operand may be used uninitialized.)
template <DType D>
KNNMEM_AVX512 inline __m512 Load16(const char* p) {
  constexpr __mmask16 kAll = 0xffff;
  if constexpr (D == DType::kFloat32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (D == DType::kFloat16) {
    return _mm512_maskz_cvtph_ps(
        kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p)));
  } else {
    return _mm512_castsi512_ps(_mm512_maskz_slli_epi32(
        kAll,
        _mm512_maskz_cvtepu16_epi32(
            kAll, _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p))),
        16));
  }
}

// The sum of the 16 lanes, by halving. (GCC 12's _mm512_reduce_add_ps and
// the lane-extracting intrinsics trip -Wmaybe-uninitialized on their own
// undefined operands; vector-extension shuffles do not.)
KNNMEM_AVX512 inline float Sum16(__m512 v) {
  typedef float V16 __attribute__((vector_size(64)));
  V16 x = reinterpret_cast<V16>(v);
  x += __builtin_shufflevector(x, x, 8, 9, 10, 11, 12, 13, 14, 15, 0, 1, 2, 3,
                               4, 5, 6, 7);
  x += __builtin_shufflevector(x, x, 4, 5, 6, 7, 0, 1, 2, 3, 4, 5, 6, 7, 0, 1,
                               2, 3);
  x += __builtin_shufflevector(x, x, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3, 0, 1, 2, 3,
                               0, 1);
  return x[0] + x[1];
}

template <DType D, int M, int R>
KNNMEM_AVX512 void ScoresAvx512(const float* q, size_t stride, uint32_t dim,
                                const char* keys, uint32_t rows, float* out,
                                size_t out_stride) {
  const size_t row_bytes = size_t{dim} * kBytes<D>;
  const uint32_t full = dim / 16 * 16;
  uint32_t r = 0;
  for (; r + R <= rows; r += R) {
    const char* row = keys + r * row_bytes;
    if (kPrefetchBytes > 0) {
      for (size_t line = 0; line < R * row_bytes; line += 64) {
        _mm_prefetch(row + kPrefetchBytes + line, _MM_HINT_T0);
      }
    }
    __m512 acc[R][M];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) acc[i][j] = _mm512_setzero_ps();
    }
    for (uint32_t c = 0; c < full; c += 16) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m512 k = Load16<D>(row + i * row_bytes + c * kBytes<D>);
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          acc[i][j] = _mm512_fmadd_ps(k, _mm512_loadu_ps(q + j * stride + c),
                                      acc[i][j]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) {
        float s = Sum16(acc[i][j]);
        if (full < dim) {
          s += TailDot<D>(q + j * stride, row + i * row_bytes, full, dim);
        }
        out[j * out_stride + r + i] = s;
      }
    }
  }
  if constexpr (R > 1) {
    if (r < rows) {
      ScoresAvx512<D, M, 1>(q, stride, dim, keys + r * row_bytes, rows - r,
                            out + r, out_stride);
    }
  }
}

template <DType D>
KNNMEM_AVX2 inline __m256 Load8(const char* p) {
  if constexpr (D == DType::kFloat32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (D == DType::kFloat16) {
    return _mm256_cvtph_ps(
        _mm_loadu_si128(reinterpret_cast<const __m128i*>(p)));
  } else {
    return _mm256_castsi256_ps(_mm256_slli_epi32(
        _mm256_cvtepu16_epi32(
            _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))),
        16));
  }
}

KNNMEM_AVX2 inline float Sum8(__m256 v) {
  __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
  s = _mm_add_ps(s, _mm_movehl_ps(s, s));
  s = _mm_add_ss(s, _mm_movehdup_ps(s));
  return _mm_cvtss_f32(s);
}

template <DType D, int M, int R>
KNNMEM_AVX2 void ScoresAvx2(const float* q, size_t stride, uint32_t dim,
                            const char* keys, uint32_t rows, float* out,
                            size_t out_stride) {
  const size_t row_bytes = size_t{dim} * kBytes<D>;
  const uint32_t full = dim / 8 * 8;
  uint32_t r = 0;
  for (; r + R <= rows; r += R) {
    const char* row = keys + r * row_bytes;
    __m256 acc[R][M];
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) acc[i][j] = _mm256_setzero_ps();
    }
    for (uint32_t c = 0; c < full; c += 8) {
#pragma GCC unroll 8
      for (int i = 0; i < R; ++i) {
        const __m256 k = Load8<D>(row + i * row_bytes + c * kBytes<D>);
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          acc[i][j] = _mm256_fmadd_ps(k, _mm256_loadu_ps(q + j * stride + c),
                                      acc[i][j]);
        }
      }
    }
#pragma GCC unroll 8
    for (int i = 0; i < R; ++i) {
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) {
        float s = Sum8(acc[i][j]);
        if (full < dim) {
          s += TailDot<D>(q + j * stride, row + i * row_bytes, full, dim);
        }
        out[j * out_stride + r + i] = s;
      }
    }
  }
  if constexpr (R > 1) {
    if (r < rows) {
      ScoresAvx2<D, M, 1>(q, stride, dim, keys + r * row_bytes, rows - r,
                          out + r, out_stride);
    }
  }
}

template <DType D, int M>
ScoresFn Kernel(FewQueryIsa isa) {
  return isa == FewQueryIsa::kAvx512 ? ScoresAvx512<D, M, RowsInFlight(M)>
                                     : ScoresAvx2<D, M, RowsInFlight(M)>;
}

template <DType D>
ScoresFn KernelFor(FewQueryIsa isa, uint32_t m) {
  switch (m) {
    case 1:
      return Kernel<D, 1>(isa);
    case 2:
      return Kernel<D, 2>(isa);
    case 3:
      return Kernel<D, 3>(isa);
    case 4:
      return Kernel<D, 4>(isa);
    case 5:
      return Kernel<D, 5>(isa);
    case 6:
      return Kernel<D, 6>(isa);
    case 7:
      return Kernel<D, 7>(isa);
    default:
      return Kernel<D, 8>(isa);
  }
}

ScoresFn KernelFor(FewQueryIsa isa, DType dtype, uint32_t m) {
  switch (dtype) {
    case DType::kFloat16:
      return KernelFor<DType::kFloat16>(isa, m);
    case DType::kBFloat16:
      return KernelFor<DType::kBFloat16>(isa, m);
    default:
      return KernelFor<DType::kFloat32>(isa, m);
  }
}

}  // namespace

FewQueryIsa FewQueryIsaOfCpu() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f") && __builtin_cpu_supports("avx512bw") &&
      __builtin_cpu_supports("avx512vl")) {
    return FewQueryIsa::kAvx512;
  }
  if (__builtin_cpu_supports("avx2") && __builtin_cpu_supports("fma") &&
      CpuHasF16c()) {
    return FewQueryIsa::kAvx2;
  }
  return FewQueryIsa::kNone;
}

void ScanFewQueries(FewQueryIsa isa, const float* queries, size_t stride,
                    uint32_t m, uint32_t dim, const char* keys, DType dtype,
                    uint32_t rows, int64_t first_position, TopK* top) {
  constexpr uint32_t kChunk = 256;  // rows scored before their selection
  float scores[kMaxFewQueries * kChunk];
  const ScoresFn scores_of = KernelFor(isa, dtype, m);
  const size_t row_bytes = size_t{dim} * ElementSize(dtype);
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t count = std::min(kChunk, rows - r0);
    scores_of(queries, stride, dim, keys + r0 * row_bytes, count, scores,
              kChunk);
    for (uint32_t j = 0; j < m; ++j) {
      ScanScores(scores + size_t{j} * kChunk, count, first_position + r0,
                 top[j]);
    }
  }
}

}  // namespace knnmem
