#include "server/search/few_query_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <cstring>
#include <type_traits>

#include "server/search/score_scan.h"

namespace knnmem {
namespace {

// Where a kernel finds the key rows of a call: one after another (a
// block), or each anywhere (the approximate tier's lists, whose rows lie
// scattered over the blocks). From(r) is the same rows from row r on.
// Int8 code rows carry a scale each, by which their dot products are
// multiplied (1 for the others).
struct PackedRows {
  const char* base;
  size_t row_bytes;
  const char* operator[](uint32_t r) const { return base + r * row_bytes; }
  PackedRows From(uint32_t r) const { return {(*this)[r], row_bytes}; }
};
struct GatheredRows {
  const char* const* rows;
  uint32_t count;
  size_t row_bytes;
  const char* operator[](uint32_t r) const { return rows[r]; }
  GatheredRows From(uint32_t r) const {
    return {rows + r, count - r, row_bytes};
  }
};
struct ScaledRows {
  PackedRows codes;
  const float* scales;
  const char* operator[](uint32_t r) const { return codes[r]; }
  ScaledRows From(uint32_t r) const { return {codes.From(r), scales + r}; }
};

// The element types of key rows: the storage dtypes, and the approximate
// tier's int8 codes.
enum class Elem { kF32, kF16, kBF16, kI8 };

// Scores of `rows` keys for M queries into out[j * out_stride + row].
template <class Rows>
using ScoresFn = void (*)(const float* queries, size_t stride, uint32_t dim,
                          const Rows& keys, uint32_t rows, float* out,
                          size_t out_stride);

template <Elem D>
constexpr size_t kBytes = D == Elem::kF32  ? 4
                          : D == Elem::kI8 ? 1
                                           : 2;

// Element d of a key row, for the dimensions past the last full vector.
template <Elem D>
float ElementAt(const char* row, uint32_t d) {
  if constexpr (D == Elem::kF32) {
    float f;
    std::memcpy(&f, row + size_t{d} * 4, 4);
    return f;
  } else if constexpr (D == Elem::kI8) {
    return static_cast<float>(static_cast<int8_t>(row[d]));
  } else {
    uint16_t h;
    std::memcpy(&h, row + size_t{d} * 2, 2);
    return D == Elem::kF16 ? HalfToFloat(h) : BFloat16ToFloat(h);
  }
}

// The scale of row r: 1 but for int8 codes.
template <Elem D, class Rows>
inline float ScaleOf(const Rows& keys, uint32_t r) {
  if constexpr (D == Elem::kI8) {
    return keys.scales[r];
  } else {
    return 1.0f;
  }
}

template <Elem D>
float TailDot(const float* query, const char* row, uint32_t from,
              uint32_t dim) {
  float s = 0.0f;
  for (uint32_t d = from; d < dim; ++d) s += query[d] * ElementAt<D>(row, d);
  return s;
}

// How far ahead of the row being scored the tier's scattered rows are asked
// for: rows that many bytes on in the list (their addresses are known, the
// hardware cannot guess them). Rows one after another (a block, the int8
// codes of a list) are left to the hardware's prefetch, which streams them
// at the memory's pace as long as they are read in order.
constexpr size_t kPrefetchBytes = 4096;

inline void PrefetchAhead(const GatheredRows& keys, uint32_t r) {
  const uint32_t i = r + static_cast<uint32_t>(std::max<size_t>(
                             1, kPrefetchBytes / keys.row_bytes));
  if (i >= keys.count) return;
  for (size_t line = 0; line < keys.row_bytes; line += 64) {
    __builtin_prefetch(keys[i] + line);
  }
}

// Accumulators per query: each row is read once, in order, its 16 (or 8)
// element chunks spread over A independent FMA chains per query, so that
// four to eight chains hide the FMA's latency. (Reading several rows at
// once, interleaved, halved the memory's streaming rate on Zen 4: the
// hardware prefetch lost the pattern.)
constexpr int Chains(int m) { return m <= 2 ? 4 / m : m <= 4 ? 2 : 1; }

#define KNNMEM_AVX512 \
  __attribute__((target("avx512f,avx512bw,avx512vl,avx2,fma,f16c")))
#define KNNMEM_AVX2 __attribute__((target("avx2,fma,f16c")))

// 16 elements of D widened to float32. (The zero-masking forms, with every
// lane selected: GCC 12 warns that the plain forms' undefined pass-through
// operand may be used uninitialized.)
template <Elem D>
KNNMEM_AVX512 inline __m512 Load16(const char* p) {
  constexpr __mmask16 kAll = 0xffff;
  if constexpr (D == Elem::kF32) {
    return _mm512_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (D == Elem::kI8) {
    return _mm512_maskz_cvtepi32_ps(
        kAll, _mm512_maskz_cvtepi8_epi32(
                  kAll, _mm_loadu_si128(reinterpret_cast<const __m128i*>(p))));
  } else if constexpr (D == Elem::kF16) {
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

template <Elem D, int M, class Rows>
KNNMEM_AVX512 void ScoresAvx512(const float* q, size_t stride, uint32_t dim,
                                const Rows& keys, uint32_t rows, float* out,
                                size_t out_stride) {
  constexpr int A = Chains(M);
  const uint32_t full = dim / 16 * 16;
  for (uint32_t r = 0; r < rows; ++r) {
    if constexpr (std::is_same_v<Rows, GatheredRows>) PrefetchAhead(keys, r);
    const char* row = keys[r];
    __m512 acc[M][A];
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) acc[j][a] = _mm512_setzero_ps();
    }
    uint32_t c = 0;
    for (; c + 16 * A <= full; c += 16 * A) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) {
        const __m512 k = Load16<D>(row + (c + 16 * a) * kBytes<D>);
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          acc[j][a] = _mm512_fmadd_ps(
              k, _mm512_loadu_ps(q + j * stride + c + 16 * a), acc[j][a]);
        }
      }
    }
    for (; c < full; c += 16) {
      const __m512 k = Load16<D>(row + c * kBytes<D>);
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) {
        acc[j][0] =
            _mm512_fmadd_ps(k, _mm512_loadu_ps(q + j * stride + c), acc[j][0]);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) {
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a)
        acc[j][0] = _mm512_add_ps(acc[j][0], acc[j][a]);
      float s = Sum16(acc[j][0]);
      if (full < dim) s += TailDot<D>(q + j * stride, row, full, dim);
      out[j * out_stride + r] = s * ScaleOf<D>(keys, r);
    }
  }
}

// The sums of four vectors' 16 lanes each, into s[0..4): halves of the
// first two side by side, then of the last two, then quarters of all four,
// each 128-bit lane four partial sums of one vector. (Vector extensions for
// the reasons of Sum16.)
KNNMEM_AVX512 inline void Sum4x16(const __m512* v, float* s) {
  typedef float V16 __attribute__((vector_size(64)));
  const V16 a = reinterpret_cast<V16>(v[0]), b = reinterpret_cast<V16>(v[1]);
  const V16 c = reinterpret_cast<V16>(v[2]), d = reinterpret_cast<V16>(v[3]);
  const V16 ab = __builtin_shufflevector(a, b, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17,
                                         18, 19, 20, 21, 22, 23) +
                 __builtin_shufflevector(a, b, 8, 9, 10, 11, 12, 13, 14, 15, 24,
                                         25, 26, 27, 28, 29, 30, 31);
  const V16 cd = __builtin_shufflevector(c, d, 0, 1, 2, 3, 4, 5, 6, 7, 16, 17,
                                         18, 19, 20, 21, 22, 23) +
                 __builtin_shufflevector(c, d, 8, 9, 10, 11, 12, 13, 14, 15, 24,
                                         25, 26, 27, 28, 29, 30, 31);
  V16 x = __builtin_shufflevector(ab, cd, 0, 1, 2, 3, 8, 9, 10, 11, 16, 17, 18,
                                  19, 24, 25, 26, 27) +
          __builtin_shufflevector(ab, cd, 4, 5, 6, 7, 12, 13, 14, 15, 20, 21,
                                  22, 23, 28, 29, 30, 31);
  x += __builtin_shufflevector(x, x, 2, 3, 0, 1, 6, 7, 4, 5, 10, 11, 8, 9, 14,
                               15, 12, 13);
  x += __builtin_shufflevector(x, x, 1, 0, 3, 2, 5, 4, 7, 6, 9, 8, 11, 10, 13,
                               12, 15, 14);
  for (int i = 0; i < 4; ++i) s[i] = x[4 * i];
}

// Int8 codes for up to 4 queries: four rows at a time, one FMA chain per
// (query, row), each query's chunk loaded once for the four rows, and the
// four rows' sums reduced together. A row of codes is short (128 bytes at
// dim 128), so one row at a time spent more on its reduction than on its
// elements: about 11 ns a row from cache against 3 here.
template <int M>
KNNMEM_AVX512 void Int8RowsAvx512(const float* q, size_t stride, uint32_t dim,
                                  const ScaledRows& keys, uint32_t rows,
                                  float* out, size_t out_stride) {
  constexpr int R = 4;
  const uint32_t full = dim / 16 * 16;
  uint32_t r = 0;
  for (; r + R <= rows; r += R) {
    __m512 acc[M][R];
#pragma GCC unroll 4
    for (int j = 0; j < M; ++j) {
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) acc[j][i] = _mm512_setzero_ps();
    }
    for (uint32_t c = 0; c < full; c += 16) {
      __m512 k[R];
#pragma GCC unroll 4
      for (int i = 0; i < R; ++i) k[i] = Load16<Elem::kI8>(keys[r + i] + c);
#pragma GCC unroll 4
      for (int j = 0; j < M; ++j) {
        const __m512 qv = _mm512_loadu_ps(q + j * stride + c);
#pragma GCC unroll 4
        for (int i = 0; i < R; ++i) {
          acc[j][i] = _mm512_fmadd_ps(k[i], qv, acc[j][i]);
        }
      }
    }
#pragma GCC unroll 4
    for (int j = 0; j < M; ++j) {
      float sums[R];
      Sum4x16(acc[j], sums);
      for (int i = 0; i < R; ++i) {
        float v = sums[i];
        if (full < dim) {
          v += TailDot<Elem::kI8>(q + j * stride, keys[r + i], full, dim);
        }
        out[j * out_stride + r + i] = v * keys.scales[r + i];
      }
    }
  }
  if (r < rows) {
    ScoresAvx512<Elem::kI8, M, ScaledRows>(q, stride, dim, keys.From(r),
                                           rows - r, out + r, out_stride);
  }
}

template <Elem D>
KNNMEM_AVX2 inline __m256 Load8(const char* p) {
  if constexpr (D == Elem::kF32) {
    return _mm256_loadu_ps(reinterpret_cast<const float*>(p));
  } else if constexpr (D == Elem::kI8) {
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(
        _mm_loadl_epi64(reinterpret_cast<const __m128i*>(p))));
  } else if constexpr (D == Elem::kF16) {
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

template <Elem D, int M, class Rows>
KNNMEM_AVX2 void ScoresAvx2(const float* q, size_t stride, uint32_t dim,
                            const Rows& keys, uint32_t rows, float* out,
                            size_t out_stride) {
  constexpr int A = Chains(M);
  const uint32_t full = dim / 8 * 8;
  for (uint32_t r = 0; r < rows; ++r) {
    if constexpr (std::is_same_v<Rows, GatheredRows>) PrefetchAhead(keys, r);
    const char* row = keys[r];
    __m256 acc[M][A];
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) acc[j][a] = _mm256_setzero_ps();
    }
    uint32_t c = 0;
    for (; c + 8 * A <= full; c += 8 * A) {
#pragma GCC unroll 4
      for (int a = 0; a < A; ++a) {
        const __m256 k = Load8<D>(row + (c + 8 * a) * kBytes<D>);
#pragma GCC unroll 8
        for (int j = 0; j < M; ++j) {
          acc[j][a] = _mm256_fmadd_ps(
              k, _mm256_loadu_ps(q + j * stride + c + 8 * a), acc[j][a]);
        }
      }
    }
    for (; c < full; c += 8) {
      const __m256 k = Load8<D>(row + c * kBytes<D>);
#pragma GCC unroll 8
      for (int j = 0; j < M; ++j) {
        acc[j][0] =
            _mm256_fmadd_ps(k, _mm256_loadu_ps(q + j * stride + c), acc[j][0]);
      }
    }
#pragma GCC unroll 8
    for (int j = 0; j < M; ++j) {
#pragma GCC unroll 4
      for (int a = 1; a < A; ++a)
        acc[j][0] = _mm256_add_ps(acc[j][0], acc[j][a]);
      float s = Sum8(acc[j][0]);
      if (full < dim) s += TailDot<D>(q + j * stride, row, full, dim);
      out[j * out_stride + r] = s * ScaleOf<D>(keys, r);
    }
  }
}

template <class Rows, Elem D, int M>
ScoresFn<Rows> Kernel(FewQueryIsa isa) {
  return isa == FewQueryIsa::kAvx512 ? ScoresAvx512<D, M, Rows>
                                     : ScoresAvx2<D, M, Rows>;
}

template <class Rows, Elem D>
ScoresFn<Rows> KernelFor(FewQueryIsa isa, uint32_t m) {
  switch (m) {
    case 1:
      return Kernel<Rows, D, 1>(isa);
    case 2:
      return Kernel<Rows, D, 2>(isa);
    case 3:
      return Kernel<Rows, D, 3>(isa);
    case 4:
      return Kernel<Rows, D, 4>(isa);
    case 5:
      return Kernel<Rows, D, 5>(isa);
    case 6:
      return Kernel<Rows, D, 6>(isa);
    case 7:
      return Kernel<Rows, D, 7>(isa);
    default:
      return Kernel<Rows, D, 8>(isa);
  }
}

template <class Rows>
ScoresFn<Rows> KernelFor(FewQueryIsa isa, DType dtype, uint32_t m) {
  switch (dtype) {
    case DType::kFloat16:
      return KernelFor<Rows, Elem::kF16>(isa, m);
    case DType::kBFloat16:
      return KernelFor<Rows, Elem::kBF16>(isa, m);
    default:
      return KernelFor<Rows, Elem::kF32>(isa, m);
  }
}

// Scores `rows` keys in chunks and feeds each query's scores to its TopK,
// *top(j), as first_index + row.
template <class Rows, class TopOf>
void Scan(FewQueryIsa isa, const float* queries, size_t stride, uint32_t m,
          uint32_t dim, const Rows& keys, DType dtype, uint32_t rows,
          int64_t first_index, TopOf top) {
  constexpr uint32_t kChunk = 256;  // rows scored before their selection
  float scores[kMaxFewQueries * kChunk];
  const ScoresFn<Rows> scores_of = KernelFor<Rows>(isa, dtype, m);
  for (uint32_t r0 = 0; r0 < rows; r0 += kChunk) {
    const uint32_t count = std::min(kChunk, rows - r0);
    scores_of(queries, stride, dim, keys.From(r0), count, scores, kChunk);
    for (uint32_t j = 0; j < m; ++j) {
      ScanScores(scores + size_t{j} * kChunk, count, first_index + r0, *top(j));
    }
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
  const PackedRows packed{keys, size_t{dim} * ElementSize(dtype)};
  Scan(isa, queries, stride, m, dim, packed, dtype, rows, first_position,
       [top](uint32_t j) { return top + j; });
}

void ScanFewQueryRows(FewQueryIsa isa, const float* queries, size_t stride,
                      uint32_t m, uint32_t dim, const char* const* rows,
                      DType dtype, uint32_t count, int64_t first_index,
                      TopK* const* top) {
  const GatheredRows gathered{rows, count, size_t{dim} * ElementSize(dtype)};
  Scan(isa, queries, stride, m, dim, gathered, dtype, count, first_index,
       [top](uint32_t j) { return top[j]; });
}

void ScoreFewQueryRows(FewQueryIsa isa, const float* queries, size_t stride,
                       uint32_t m, uint32_t dim, const char* const* rows,
                       DType dtype, uint32_t count, float* out,
                       size_t out_stride) {
  const GatheredRows gathered{rows, count, size_t{dim} * ElementSize(dtype)};
  KernelFor<GatheredRows>(isa, dtype, m)(queries, stride, dim, gathered, count,
                                         out, out_stride);
}

void ScoreFewQueries(FewQueryIsa isa, const float* queries, size_t stride,
                     uint32_t m, uint32_t dim, const char* keys, DType dtype,
                     uint32_t rows, float* out, size_t out_stride) {
  const PackedRows packed{keys, size_t{dim} * ElementSize(dtype)};
  KernelFor<PackedRows>(isa, dtype, m)(queries, stride, dim, packed, rows, out,
                                       out_stride);
}

void ScoreInt8Rows(FewQueryIsa isa, const float* queries, size_t stride,
                   uint32_t m, uint32_t dim, const int8_t* codes,
                   const float* scales, uint32_t rows, float* out,
                   size_t out_stride) {
  const ScaledRows scaled{{reinterpret_cast<const char*>(codes), dim}, scales};
  ScoresFn<ScaledRows> kernel = KernelFor<ScaledRows, Elem::kI8>(isa, m);
  if (isa == FewQueryIsa::kAvx512 && m <= 4) {
    constexpr ScoresFn<ScaledRows> kFourRows[] = {
        Int8RowsAvx512<1>, Int8RowsAvx512<2>, Int8RowsAvx512<3>,
        Int8RowsAvx512<4>};
    kernel = kFourRows[m - 1];
  }
  kernel(queries, stride, dim, scaled, rows, out, out_stride);
}

}  // namespace knnmem
