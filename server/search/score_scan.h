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
// top.threshold() when reached, and at or above a bound on the k-th best of
// this row of scores itself).
void ScanScores(const float* scores, uint32_t count, int64_t first_position,
                TopK& top);

// The instruction set ScanScores uses: "avx512", "avx2" or "portable".
const char* ScanScoresIsa();

// For tests: each implementation by name, and whether this CPU runs it.
enum class ScanIsa { kPortable, kAvx2, kAvx512 };
bool ScanIsaSupported(ScanIsa isa);
void ScanScoresWith(ScanIsa isa, const float* scores, uint32_t count,
                    int64_t first_position, TopK& top);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_SCORE_SCAN_H_
