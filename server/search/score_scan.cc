#include "server/search/score_scan.h"

#include <immintrin.h>

#include <algorithm>
#include <limits>

namespace knnmem {
namespace {

// The least score that can still enter: the TopK's threshold, or the row's
// own bound if that is higher.
inline float Least(const TopK& top, float bound) {
  return std::max(top.threshold(), bound);
}

void ScanPortable(const float* s, uint32_t count, int64_t first, float bound,
                  TopK& top) {
  float threshold = Least(top, bound);
  for (uint32_t i = 0; i < count; ++i) {
    if (s[i] >= threshold) {
      top.Push(s[i], first + i);
      threshold = Least(top, bound);
    }
  }
}

// Candidates are rare once the heap is full, so the loop is one compare and
// one branch per 16 (or 8) scores; hits are pushed in order.
__attribute__((target("avx512f"))) void ScanAvx512(const float* s,
                                                   uint32_t count,
                                                   int64_t first, float bound,
                                                   TopK& top) {
  uint32_t i = 0;
  __m512 threshold = _mm512_set1_ps(Least(top, bound));
  for (; i + 16 <= count; i += 16) {
    __mmask16 hits =
        _mm512_cmp_ps_mask(_mm512_loadu_ps(s + i), threshold, _CMP_GE_OQ);
    if (hits == 0) continue;
    while (hits != 0) {
      const uint32_t j = static_cast<uint32_t>(__builtin_ctz(hits));
      hits &= hits - 1;
      // The threshold may have risen since the compare.
      if (s[i + j] >= Least(top, bound)) top.Push(s[i + j], first + i + j);
    }
    threshold = _mm512_set1_ps(Least(top, bound));
  }
  ScanPortable(s + i, count - i, first + i, bound, top);
}

__attribute__((target("avx2"))) void ScanAvx2(const float* s, uint32_t count,
                                              int64_t first, float bound,
                                              TopK& top) {
  uint32_t i = 0;
  __m256 threshold = _mm256_set1_ps(Least(top, bound));
  for (; i + 8 <= count; i += 8) {
    uint32_t hits = static_cast<uint32_t>(_mm256_movemask_ps(
        _mm256_cmp_ps(_mm256_loadu_ps(s + i), threshold, _CMP_GE_OQ)));
    if (hits == 0) continue;
    while (hits != 0) {
      const uint32_t j = static_cast<uint32_t>(__builtin_ctz(hits));
      hits &= hits - 1;
      if (s[i + j] >= Least(top, bound)) top.Push(s[i + j], first + i + j);
    }
    threshold = _mm256_set1_ps(Least(top, bound));
  }
  ScanPortable(s + i, count - i, first + i, bound, top);
}

using ScanFn = void (*)(const float*, uint32_t, int64_t, float, TopK&);

struct Dispatch {
  ScanFn fn;
  const char* isa;
};

Dispatch Choose() {
  __builtin_cpu_init();
  if (__builtin_cpu_supports("avx512f")) return {ScanAvx512, "avx512"};
  if (__builtin_cpu_supports("avx2")) return {ScanAvx2, "avx2"};
  return {ScanPortable, "portable"};
}

const Dispatch& Chosen() {
  static const Dispatch d = Choose();
  return d;
}

}  // namespace

float StridedBound(const float* s, uint32_t count, uint32_t k) {
  constexpr float kNone = -std::numeric_limits<float>::infinity();
  if (k == 0 || k > kMaxStridedBoundK || count < k) return kNone;
  float maxima[kMaxStridedBoundK];
  for (uint32_t g = 0; g < k; ++g) maxima[g] = kNone;
  uint32_t base = 0;
  for (; base + k <= count; base += k) {
    for (uint32_t g = 0; g < k; ++g) {
      maxima[g] = s[base + g] > maxima[g] ? s[base + g] : maxima[g];
    }
  }
  for (uint32_t g = 0; base + g < count; ++g) {
    maxima[g] = s[base + g] > maxima[g] ? s[base + g] : maxima[g];
  }
  float bound = maxima[0];
  for (uint32_t g = 1; g < k; ++g) bound = std::min(bound, maxima[g]);
  return bound;
}

void ScanScores(const float* scores, uint32_t count, int64_t first_position,
                TopK& top) {
  Chosen().fn(scores, count, first_position,
              StridedBound(scores, count, top.k()), top);
}

const char* ScanScoresIsa() { return Chosen().isa; }

bool ScanIsaSupported(ScanIsa isa) {
  __builtin_cpu_init();
  switch (isa) {
    case ScanIsa::kPortable:
      return true;
    case ScanIsa::kAvx2:
      return __builtin_cpu_supports("avx2");
    case ScanIsa::kAvx512:
      return __builtin_cpu_supports("avx512f");
  }
  return false;
}

void ScanScoresWith(ScanIsa isa, const float* scores, uint32_t count,
                    int64_t first_position, TopK& top) {
  const float bound = StridedBound(scores, count, top.k());
  switch (isa) {
    case ScanIsa::kPortable:
      return ScanPortable(scores, count, first_position, bound, top);
    case ScanIsa::kAvx2:
      return ScanAvx2(scores, count, first_position, bound, top);
    case ScanIsa::kAvx512:
      return ScanAvx512(scores, count, first_position, bound, top);
  }
}

}  // namespace knnmem
