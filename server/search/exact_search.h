// Exact top-k inner-product search over one layer's snapshot.
//
// For each (query, head), scores every retained key of that head, block by
// block, with the streaming scan for a few queries (few_query_scan.h), the
// bfloat16 prefilter and a float32 rescoring of the few keys
// it lets through (bf16_prefilter.h), or with a float32 GEMM (float16 and
// bfloat16 blocks are widened one block at a time into a per-thread tile),
// and keeps the k best with a threshold buffer (top_k.h).
#ifndef KNNMEM_SERVER_SEARCH_EXACT_SEARCH_H_
#define KNNMEM_SERVER_SEARCH_EXACT_SEARCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/worker_pool.h"
#include "server/memory/layer_memory.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

// A search's answer: per (query, head), the k best entries.
struct Neighbours {
  uint32_t queries = 0;
  uint32_t heads = 0;
  uint32_t k = 0;
  std::vector<float> scores;       // [queries, heads, k], best first
  std::vector<int64_t> positions;  // [queries, heads, k], -1 when empty
  std::string keys;    // [queries, heads, k, key_dim] storage dtype, or empty
  std::string values;  // [queries, heads, k, value_dim] storage dtype, or empty
};

// How ExactSearch scores a block. kAuto: with at most kMaxFewQueries
// queries (a decode step), the streaming scan (few_query_scan.h) where the
// CPU has AVX2 or AVX-512; with more, the bfloat16 prefilter (exact:
// bf16_prefilter.h) where the CPU has AVX512_BF16 and a query tile is large
// enough to fill its registers, float32 sgemm otherwise; it also goes back
// to sgemm for the rest of a tile when the keys are so alike that the
// prefilter lets more than an eighth of them through.
enum class ScoreKernel { kAuto, kSgemm, kBf16Prefilter, kFewQueries };

struct SearchOptions {
  uint32_t k = 32;
  // kBf16Prefilter (for tests) is used without the fallback; it gives way
  // to sgemm on a CPU without AVX512_BF16. kFewQueries (for tests) uses the
  // streaming scan for tiles of up to kMaxFewQueries queries, sgemm for
  // larger ones and on a CPU without AVX2.
  ScoreKernel kernel = ScoreKernel::kAuto;
  bool return_keys = false;
  bool return_values = false;
  // Polled between blocks; when it returns true the search stops early.
  // Empty: never.
  std::function<bool()> cancelled;
};

// `queries` is float32 [n, spec.heads, spec.key_dim]. Work is split over
// (head, query tile) pairs on `pool`; the caller takes part. Returns
// DEADLINE_EXCEEDED when options.cancelled fired before the end.
absl::StatusOr<Neighbours> ExactSearch(const StreamSpec& spec,
                                       const LayerSnapshot& snapshot,
                                       absl::Span<const float> queries,
                                       const SearchOptions& options,
                                       WorkerPool& pool);

// Fills result->keys / values (as options asks) with the stored rows of
// every result position, zero for empty entries.
void GatherNeighbourRows(const StreamSpec& spec, const LayerSnapshot& snapshot,
                         const SearchOptions& options, Neighbours* result);

// Pins OpenBLAS to one thread: the worker pool provides the parallelism.
void PinBlasToOneThread();

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_EXACT_SEARCH_H_
