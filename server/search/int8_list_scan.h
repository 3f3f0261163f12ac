// Int8ListScan: a decode step's few queries against int8 codes of keys, with
// the answers of a float32 scan all the same. It scans the approximate
// tier's lists (whose keys lie scattered over the blocks, the codes in list
// order) and, with LayerOptions::int8_codes, the blocks of the exact search.
//
// Each key is kept as int8 codes with one float32 scale per row
// (int8_codes.h): c_d = round(k_d / s), s = max_d |k_d| / 127, a quarter of
// the float32 bytes (half of float16's), read in order. The codes' score
// a = s (q . c) is within
//   e = s |q|_1 (0.502 + 127 (2 dim + 8) 2^-24)
// of the float32 score of the key: |k_d - s c_d| <= s/2 (and the division's
// rounding), and the float32 sums of dim products, each at most
// 127 s |q_d|, err by at most dim 2^-24 127 s |q|_1 each (the codes' and
// the key's), with room for the few roundings left. A row whose a + e is
// below a known lower bound of the k-th best score (the TopK's threshold,
// or the k-th largest a - e of every row scanned so far, which that many
// rows reach) cannot enter the top k; the others are scored again in
// float32, by the kernel and arithmetic of the exact search, and only those
// scores enter the TopK.
#ifndef KNNMEM_SERVER_SEARCH_INT8_LIST_SCAN_H_
#define KNNMEM_SERVER_SEARCH_INT8_LIST_SCAN_H_

#include <cstdint>
#include <vector>

#include "absl/functional/function_ref.h"
#include "base/dtype.h"
#include "server/memory/int8_codes.h"
#include "server/search/few_query_scan.h"
#include "server/search/top_k.h"

namespace knnmem {

class Int8ListScan {
 public:
  // Where the float32-scored keys are: for `count` increasing rows of the
  // list being scanned (indexes from its first scanned row), the address
  // of each key in the storage dtype.
  using Locate = absl::FunctionRef<void(const uint32_t* rows, uint32_t count,
                                        const char** out)>;

  // One head's `n` float32 queries, query i at queries + i * dim (they must
  // outlive the scan), whose TopKs keep `k`. `isa` must not be kNone.
  Int8ListScan(FewQueryIsa isa, const float* queries, uint32_t n, uint32_t dim,
               uint32_t k, DType key_dtype);

  // Scans `rows` code rows (row r at codes + r * dim, scale scales[r]) for
  // the queries who[0..m) (m <= kMaxFewQueries), packed at `packed`
  // (m rows of dim), and pushes into *top[j] the float32 score of every row
  // that can still enter it, as first_index + r.
  void Scan(const float* packed, const uint32_t* who, uint32_t m,
            const int8_t* codes, const float* scales, uint32_t rows,
            Locate locate, int64_t first_index, TopK* const* top);

  // The same in two passes, for rows of several places (the blocks of a
  // small layer): Observe each place's approximate scores (ScoreInt8Rows,
  // query j's at approx + j * stride), then Rescore each. The bound is then
  // that of every row before any is scored again: fewer rows are, where a
  // single pass scores again each row that is among the k best so far.
  void Observe(const uint32_t* who, uint32_t m, const float* approx,
               size_t stride, const float* scales, uint32_t count);
  // After the last Observe, before the first Rescore: the bound of every
  // row observed.
  void Settle(const uint32_t* who, uint32_t m);
  void Rescore(const float* packed, const uint32_t* who, uint32_t m,
               const float* approx, size_t stride, const float* scales,
               uint32_t rows, Locate locate, int64_t first_index,
               TopK* const* top);

  // Rows scored again in float32 so far (for tests and the bench).
  uint64_t rescored() const { return rescored_; }

 private:
  const FewQueryIsa isa_;
  const uint32_t dim_, k_;
  const DType key_dtype_;
  // Keeps the a - e s of these `count` rows that are above bound_[i], and
  // (when `settle`, or when 4k are kept) raises bound_[i] to the k-th
  // largest of every row query i has seen.
  void RaiseBound(uint32_t i, const float* approx, const float* scales,
                  uint32_t count, bool settle);
  void Settle(uint32_t i);

  std::vector<float> error_;  // [n] the bound e of a row of scale 1
  std::vector<float> bound_;  // [n] a lower bound of the k-th best score
  // [n] the largest a - e s seen (k of them after each Settle), all above
  // bound_.
  std::vector<std::vector<float>> lowers_;
  std::vector<float> scratch_;  // the a - e s of the rows being observed
  uint64_t rescored_ = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_INT8_LIST_SCAN_H_
