// Bf16Prefilter: exact top-k of a tile of queries against blocks of keys at
// about twice the float32 GEMM rate.
//
// Every score is first computed with bfloat16 products and float32 sums
// (AVX512_BF16's vdpbf16ps does twice the work of a float32 FMA per cycle).
// The error of that score is bounded: rounding q and k to bfloat16 changes
// each product q_i k_i by at most (2u + u^2)|q_i k_i| with u = 2^-8, and 128
// float32 additions add less than 2^-16 of sum |q_i k_i| <= |q| |k|. So a key
// whose approximate score is below (k-th best exact score so far) -
// kBf16RelativeError |q| |k| cannot enter the top k. The few that pass are
// scored again in float32, and only those exact scores enter the TopK: the
// result is the float32 top k, ties aside.
//
// The scores never reach memory: each 12-key by 32-query tile is compared in
// registers against the 32 queries' thresholds.
#ifndef KNNMEM_SERVER_SEARCH_BF16_PREFILTER_H_
#define KNNMEM_SERVER_SEARCH_BF16_PREFILTER_H_

#include <cstdint>
#include <vector>

#include "base/dtype.h"
#include "server/search/top_k.h"

namespace knnmem {

// The bound's factor, with room for the float32 norms' own rounding.
inline constexpr double kBf16RelativeError = 0.008;

// True when this CPU has AVX512_BF16 (and so the prefilter can run) and
// the build is not under ThreadSanitizer: there every load of these
// kernels is instrumented while OpenBLAS's sgemm is not, and the automatic
// choice keeps to sgemm so that timing-bound tests (a drain within its
// grace period) run at the speed they expect. Tests that force the kernels
// check the CPU alone (Bf16CpuSupported).
bool Bf16PrefilterSupported();
bool Bf16CpuSupported();

class Bf16Prefilter {
 public:
  // `m` queries of `dim` floats, query i at queries + i * stride. They must
  // outlive the prefilter (rescoring reads them).
  Bf16Prefilter(const float* queries, size_t stride, uint32_t m, uint32_t dim);

  // Scans `rows` keys of `dtype`, row-major with `dim` elements each, the
  // first at `first_position`, and pushes the exact float32 score of every
  // key that can still enter top[q] into top[q], for q in [0, m). Returns
  // false, having pushed nothing, when the block's or the queries' norms
  // are too large (or not finite) for the bound; score it in float32 then.
  bool ScanBlock(const char* keys, DType dtype, uint32_t rows,
                 int64_t first_position, TopK* top);

  // Keys scored again in float32 so far (for the fallback and for tests).
  uint64_t rescored() const { return rescored_; }

 private:
  const float* queries_;
  size_t stride_;
  uint32_t m_;
  uint32_t dim_;
  uint32_t pairs_;                // ceil(dim / 2)
  std::vector<uint32_t> packed_;  // [group][pair][32 lanes] bf16 pairs
  std::vector<float> norms_;      // [m] float32 norms of the queries
  float max_query_norm_ = 0.0f;
  std::vector<uint32_t> keys_;  // [padded rows][pair] bf16 pairs
  std::vector<float> decoded_;  // one key row in float32
  uint64_t rescored_ = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_BF16_PREFILTER_H_
