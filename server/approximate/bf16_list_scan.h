// Bf16ListScan: the bfloat16 prefilter (bf16_prefilter.h) turned around for
// the approximate tier's lists, where only a few queries (about 8 at the
// paper shape) probe each list: keys fill the vector lanes, 32 at a time,
// and each query is a broadcast row, so a list scan with 4 queries keeps the
// FMA pipes as busy as one with 400. The same error bound decides which
// keys are scored again in float32; only float32 scores enter the top k.
#ifndef KNNMEM_SERVER_APPROXIMATE_BF16_LIST_SCAN_H_
#define KNNMEM_SERVER_APPROXIMATE_BF16_LIST_SCAN_H_

#include <cstdint>
#include <vector>

#include "server/search/top_k.h"

namespace knnmem {

class Bf16ListScan {
 public:
  // `queries`: the float32 queries of one head, query i at
  // queries + i * dim; they must outlive the scan.
  Bf16ListScan(const float* queries, uint32_t n, uint32_t dim);

  // Scores `rows` float32 keys (row-major, `dim` each) against the queries
  // `who[0..m)` and pushes into *top[r] (the TopK of query who[r]) the exact
  // score of every key that can still enter it, as index first_index + j.
  // Returns false, having pushed nothing, when the norms are too large for
  // the bound (score the chunk in float32 then).
  bool Scan(const float* keys, uint32_t rows, const uint32_t* who, uint32_t m,
            TopK* const* top, int64_t first_index);

 private:
  const float* queries_;
  uint32_t n_;
  uint32_t dim_;
  uint32_t pairs_;
  std::vector<uint32_t> packed_queries_;  // [query][pair]
  std::vector<float> norms_;              // [query]
  std::vector<uint32_t> row_pairs_;       // one chunk: [row][pair]
  std::vector<uint32_t> packed_keys_;     // the chunk: [group of 32][pair][32]
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_APPROXIMATE_BF16_LIST_SCAN_H_
