// ScanScores: feeds one row of scores into a TopK, rejecting most of them
// with SIMD comparisons against the running threshold. Dispatches at run
// time to AVX-512, AVX2 or portable code.
#ifndef KNNMEM_SERVER_SEARCH_SCORE_SCAN_H_
#define KNNMEM_SERVER_SEARCH_SCORE_SCAN_H_

#include <cstdint>

#include "server/search/top_k.h"

namespace knnmem {

// Feeds (scores[i], first_position + i) for i in [0, count) to `top`:
// leaves it holding the k best it would hold had every candidate been
// pushed, pushing only those that may still be among them (at or above
// top.threshold() when reached, and at or above StridedBound of this row of
// scores).
void ScanScores(const float* scores, uint32_t count, int64_t first_position,
                TopK& top);

// A lower bound of the k-th largest of s[0, count): the least of the k
// strided maxima max{s[i] : i = g mod k}, k different values at or above
// it, so a value below it is not among the k largest (of s, nor of
// anything s is part of). Strided, not contiguous, groups: when the values
// rise along s (attention keys score higher the newer they are), it is the
// k-th largest itself. -inf for count < k, for k > kMaxStridedBoundK, and
// for groups holding only NaNs.
inline constexpr uint32_t kMaxStridedBoundK = 128;
float StridedBound(const float* s, uint32_t count, uint32_t k);

// The instruction set ScanScores uses: "avx512", "avx2" or "portable".
const char* ScanScoresIsa();

// For tests: each implementation by name, and whether this CPU runs it.
enum class ScanIsa { kPortable, kAvx2, kAvx512 };
bool ScanIsaSupported(ScanIsa isa);
void ScanScoresWith(ScanIsa isa, const float* scores, uint32_t count,
                    int64_t first_position, TopK& top);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_SCORE_SCAN_H_
