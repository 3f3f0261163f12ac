// CodedBlockScan: ExactSearch's scan of one (query tile, head) over blocks
// that keep int8 codes of their keys (LayerOptions::int8_codes): a few
// queries read the codes, a quarter of the float32 bytes, and score again
// in float32 only the rows that may enter the top k (int8_list_scan.h), so
// the answers are those of the float32 scan, bit for bit.
#ifndef KNNMEM_SERVER_SEARCH_CODED_BLOCK_SCAN_H_
#define KNNMEM_SERVER_SEARCH_CODED_BLOCK_SCAN_H_

#include <cstdint>
#include <vector>

#include "server/memory/layer_memory.h"
#include "server/search/int8_list_scan.h"
#include "server/search/top_k.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

// Layers of at most this many retained rows are scanned in two passes
// (ScanSmallLayer): their approximate scores, m x this many floats, stay in
// the core's cache between the passes.
inline constexpr int64_t kTwoPassRows = 8192;

class CodedBlockScan {
 public:
  // Query j (of m <= kMaxFewQueries) of `head` at queries + j * stride,
  // into top[j]; `isa` must not be kNone.
  CodedBlockScan(FewQueryIsa isa, const StreamSpec& spec, uint32_t head,
                 const float* queries, size_t stride, uint32_t m, uint32_t k,
                 TopK* top);

  // Whether the snapshot's blocks carry codes.
  static bool Applies(const LayerSnapshot& snapshot, uint32_t head);

  // Rows [lo, hi) of the block, in one pass: the bound of the k-th best
  // grows as the rows go by.
  void ScanBlock(const Block& block, int64_t lo, int64_t hi);

  // Every retained row of a layer of at most kTwoPassRows, in two passes:
  // all the approximate scores first, so that the bound is that of every
  // row before any is scored again. (One pass scores again each row that
  // may be among the k best so far: 142 of 1,024 random keys at k = 32,
  // against 50 in two passes.)
  void ScanSmallLayer(const LayerSnapshot& snapshot);

 private:
  const FewQueryIsa isa_;
  const uint32_t head_, dim_, m_;
  const size_t row_bytes_;
  std::vector<float> packed_;  // [m, dim]
  std::vector<uint32_t> who_;  // 0 .. m-1
  std::vector<TopK*> tops_;
  Int8ListScan scan_;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_CODED_BLOCK_SCAN_H_
