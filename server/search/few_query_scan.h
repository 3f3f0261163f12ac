// FewQueryScan: the exact scores of a few queries (a decode step asks one
// per head) against a block of keys, as one streaming read of the keys.
//
// With so few queries a search is bound by the bytes of keys it reads, not
// by arithmetic, and a GEMM call only adds its fixed cost and, for float16
// and bfloat16 keys, a float32 copy of every block (written, then read
// again). Here each key row is loaded once, widened in registers (F16C for
// float16, a shift for bfloat16), and multiplied with every query while it
// is there; the scores of 256 rows at a time go through ScanScores' running
// threshold into the queries' TopKs. Rows are read one after another, in
// order (the hardware prefetch streams them); with fewer queries each row's
// chunks feed several accumulators per query, so that the FMA chains
// overlap.
#ifndef KNNMEM_SERVER_SEARCH_FEW_QUERY_SCAN_H_
#define KNNMEM_SERVER_SEARCH_FEW_QUERY_SCAN_H_

#include <cstddef>
#include <cstdint>

#include "base/dtype.h"
#include "server/search/top_k.h"

namespace knnmem {

// Queries per scan at most: beyond, the GEMM (or the bfloat16 prefilter)
// amortises its costs and wins.
inline constexpr uint32_t kMaxFewQueries = 8;

// The instruction sets of the scan; kNone: this CPU has neither.
enum class FewQueryIsa { kNone, kAvx2, kAvx512 };
// The best this CPU runs: AVX-512F, else AVX2 with FMA and F16C, else kNone.
FewQueryIsa FewQueryIsaOfCpu();

// Scores `rows` keys of `dtype` (row-major, `dim` elements per row) against
// `m` (1..kMaxFewQueries) float32 queries, query i at queries + i * stride,
// and pushes (score, first_position + row) into top[i] as ScanScores does.
// `isa` must not be kNone and this CPU must run it.
void ScanFewQueries(FewQueryIsa isa, const float* queries, size_t stride,
                    uint32_t m, uint32_t dim, const char* keys, DType dtype,
                    uint32_t rows, int64_t first_position, TopK* top);

// As ScanFewQueries, for `count` key rows anywhere in memory, row r at
// rows[r] (the approximate tier's lists, whose keys stay scattered over the
// layer's blocks; read in place, in the storage dtype, prefetched by
// address), pushed as (score, first_index + r) into *top[i].
void ScanFewQueryRows(FewQueryIsa isa, const float* queries, size_t stride,
                      uint32_t m, uint32_t dim, const char* const* rows,
                      DType dtype, uint32_t count, int64_t first_index,
                      TopK* const* top);

// The scores of such rows themselves: out[j * out_stride + r] for query j
// and row r. The same arithmetic per row as ScanFewQueries, so the same
// scores.
void ScoreFewQueryRows(FewQueryIsa isa, const float* queries, size_t stride,
                       uint32_t m, uint32_t dim, const char* const* rows,
                       DType dtype, uint32_t count, float* out,
                       size_t out_stride);

// The scores of `rows` packed rows (as ScanFewQueries reads them) against
// `m` queries: out[j * out_stride + r]. With a weight matrix for the rows
// and a few inputs for the queries this is a linear layer of a decode step
// (model/small_linear.h).
void ScoreFewQueries(FewQueryIsa isa, const float* queries, size_t stride,
                     uint32_t m, uint32_t dim, const char* keys, DType dtype,
                     uint32_t rows, float* out, size_t out_stride);

// Int8 code rows with a scale each (the approximate tier's compact copy of
// its keys): out[j * out_stride + r] = scales[r] * (query j .
// codes row r), the dot product summed in float32. Row r at codes + r * dim.
void ScoreInt8Rows(FewQueryIsa isa, const float* queries, size_t stride,
                   uint32_t m, uint32_t dim, const int8_t* codes,
                   const float* scales, uint32_t rows, float* out,
                   size_t out_stride);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_FEW_QUERY_SCAN_H_
