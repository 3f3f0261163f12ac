// ApproximateIndex: the approximate tier of one (stream, layer) whose spec
// says APPROXIMATE. Per head, an IVF-Flat index (inner product) over the
// keys of positions [begin, indexed_end): coarse centroids trained once by
// FAISS k-means on the first keys indexed (the stream's own), and inverted
// lists of positions (with TierOptions::int8_codes, and their keys' int8
// codes) that Search scans, each list once for all the queries that probe
// it: a decode step's few queries by the streaming scan over the keys in
// place (few_query_scan.h), or over the codes, scoring again from the
// blocks only the keys that may enter the top k (int8_list_scan.h: the
// answer of a float32 scan of the list at a quarter of its bytes, read in
// order); more queries by the bfloat16 list scan (bf16_list_scan.h) where
// the CPU has AVX512_BF16, else a GEMM, over keys gathered from the blocks
// into float32 a chunk at a time. The blocks hold the one exact copy of a
// key. Keys are
// added in chunks, in the background (MemoryStore's indexer), never on the
// request path; the newest exact_tail entries and whatever is not indexed
// yet are scanned exactly, and TieredSearch merges the two. Positions the
// layer evicted are dropped from every answer, so FIFO eviction stays
// exact; Forget drops them from the lists later.
//
// Thread-safe: searches share a lock that Extend's additions and Forget take
// exclusively, briefly (the expensive assignment runs outside it).
#ifndef KNNMEM_SERVER_APPROXIMATE_APPROXIMATE_INDEX_H_
#define KNNMEM_SERVER_APPROXIMATE_APPROXIMATE_INDEX_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/sync.h"
#include "base/worker_pool.h"
#include "server/memory/layer_memory.h"
#include "server/search/exact_search.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

// How the tier holds its keys, for every stream of a server.
struct TierOptions {
  // Beside each listed position, its key's int8 codes and scale
  // (int8_list_scan.h): a decode step reads a quarter of the float32 bytes,
  // in order, instead of the keys scattered over the blocks, for key_dim +
  // 4 more bytes of RAM per indexed entry and head.
  bool int8_codes = false;
};

class ApproximateIndex final : public SealedTier {
 public:
  ApproximateIndex(const StreamSpec& spec, const TierOptions& options);
  ~ApproximateIndex();

  ApproximateIndex(const ApproximateIndex&) = delete;
  ApproximateIndex& operator=(const ApproximateIndex&) = delete;

  // Positions [begin(), indexed_end()) are in the index (those the layer
  // evicted since are ignored by searches).
  int64_t begin() const { return begin_.load(); }
  // Bytes of the lists: per indexed position and head, the position (and
  // with int8 codes, key_dim bytes of codes and a float32 scale).
  size_t bytes() const override { return bytes_.load(); }
  int64_t indexed_end() const override { return indexed_end_.load(); }

  // Where indexing of a layer holding [first, next) could extend to now:
  // the start of its exact tail, when that is at least a chunk past
  // indexed_end() (and, for the first chunk, enough keys to train on);
  // otherwise indexed_end().
  int64_t IndexableEnd(int64_t first, int64_t next) const;

  // Trains on the first call, then adds the keys of positions
  // [indexed_end(), end) from `snapshot`, which must retain them. For the
  // background indexer only (one caller at a time).
  absl::Status Extend(const LayerSnapshot& snapshot, int64_t end);

  // Drops positions below `first` from the lists; returns how many.
  size_t Forget(int64_t first);

  // Every head's centroids, float32 [heads, nlist, key_dim] as bytes; empty
  // before training.
  std::string Centroids() const;
  // Makes a fresh index trained with `centroids` (from Centroids()), its
  // indexing to start at `begin`. INVALID_ARGUMENT when the size is wrong.
  absl::Status RestoreCentroids(absl::string_view centroids, int64_t begin);

  // For the indexer's queue: true if this call marked it queued.
  bool MarkQueued() { return !queued_.exchange(true); }
  void ClearQueued() { queued_ = false; }

  // Per (query, head), the k best of the probed lists' positions in
  // [lo, hi): scores and positions into [n, heads, k] arrays (best first;
  // -inf / -1 when fewer). `queries` is float32 [n, heads, key_dim];
  // `snapshot` retains [lo, hi) and holds the keys.
  void Search(const LayerSnapshot& snapshot, absl::Span<const float> queries,
              uint32_t n, uint32_t k, int64_t lo, int64_t hi, float* scores,
              int64_t* positions, WorkerPool& pool) const;

 private:
  struct Head;
  size_t ListRowBytes() const;  // per listed position and head

  const StreamSpec spec_;
  const TierOptions options_;
  const uint32_t nlist_, nprobe_;
  std::vector<std::unique_ptr<Head>> heads_;
  mutable Mutex mu_;  // Search shared; additions and Forget exclusive
  std::atomic<int64_t> begin_{-1};  // -1: not trained yet
  std::atomic<int64_t> indexed_end_{-1};
  std::atomic<bool> queued_{false};
  std::atomic<size_t> bytes_{0};
};

// The ApproximateIndex behind a layer's tier, or null. Every tier is one:
// the store attaches no other kind (server/store/stream.h).
inline const ApproximateIndex* TierOf(const LayerSnapshot& snapshot) {
  return static_cast<const ApproximateIndex*>(snapshot.index.get());
}
inline std::shared_ptr<ApproximateIndex> TierOf(const LayerMemory& layer) {
  return std::static_pointer_cast<ApproximateIndex>(layer.index());
}

// Search over a layer whose snapshot has an approximate tier: the tier's
// lists (ApproximateIndex::Search) over the indexed positions, ExactSearch
// over the rest, merged per (query, head); keys and values (when asked for)
// gathered after the merge. Exact but for the indexed positions that the
// probed lists miss.
absl::StatusOr<Neighbours> TieredSearch(const StreamSpec& spec,
                                        const LayerSnapshot& snapshot,
                                        absl::Span<const float> queries,
                                        const SearchOptions& options,
                                        WorkerPool& pool);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_APPROXIMATE_APPROXIMATE_INDEX_H_
