// Exact top-k inner-product search over one layer's snapshot.
//
// For each (query, head), scores every retained key of that head with a
// blocked float32 GEMM (float16/bfloat16 blocks are widened one block at a
// time into a per-thread tile) and keeps the k best with a threshold heap.
#ifndef KNNMEM_SERVER_EXACT_SEARCH_H_
#define KNNMEM_SERVER_EXACT_SEARCH_H_

#include <atomic>
#include <cstdint>
#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "layer_memory.h"
#include "stream_spec.h"
#include "worker_pool.h"

namespace knnmem {

struct SearchResult {
  uint32_t queries = 0;
  uint32_t heads = 0;
  uint32_t k = 0;
  std::vector<float> scores;       // [queries, heads, k], best first
  std::vector<int64_t> positions;  // [queries, heads, k], -1 when empty
  std::string keys;    // [queries, heads, k, key_dim] storage dtype, or empty
  std::string values;  // [queries, heads, k, value_dim] storage dtype, or empty
};

struct SearchOptions {
  uint32_t k = 32;
  bool return_keys = false;
  bool return_values = false;
  // Polled between blocks; when it returns true the search stops early.
  // Empty: never.
  std::function<bool()> cancelled;
};

// `queries` is float32 [n, spec.heads, spec.key_dim]. Work is split over
// (head, query tile) pairs on `pool`; the caller takes part. Returns
// DEADLINE_EXCEEDED when options.cancelled fired before the end.
absl::StatusOr<SearchResult> ExactSearch(const StreamSpec& spec,
                                         const LayerSnapshot& snapshot,
                                         absl::Span<const float> queries,
                                         const SearchOptions& options,
                                         WorkerPool& pool);

// Fills result->keys / values (as options asks) with the stored rows of
// every result position, zero for empty entries.
void GatherNeighbourRows(const StreamSpec& spec, const LayerSnapshot& snapshot,
                         const SearchOptions& options, SearchResult* result);

// Pins OpenBLAS to one thread: the worker pool provides the parallelism.
void PinBlasToOneThread();

}  // namespace knnmem

#endif  // KNNMEM_SERVER_EXACT_SEARCH_H_
