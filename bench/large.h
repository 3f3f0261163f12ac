// W-large: one APPROXIMATE stream of `entries` entries per head (8 heads x
// 128, float16), 512 queries, k = 32: the FAISS tier's recall@32 and speed
// against an exact scan of the same stream (SearchRequest.exact), and
// Append latency while the background indexer runs against an EXACT stream
// with nothing to index.
//
// Contract: keys are drawn near `centres` random centres per head (centre +
// 0.5 N(0, 1) noise, then L2-normalised; attention keys cluster, iid noise
// would not), queries likewise; values N(0, 1). Batches are generated on
// the fly from (seed, batch), so no copy of the data is held here. The
// streams are created through `client` and listed in *created. Waits
// (polling GetStream, with progress) until the tier covers every entry but
// the exact tail before timing searches. Adds "W-large" rows: append
// (exact stream, no indexing), append-while-indexing, search-exact,
// search-approximate (with recall_at_k and the speed-up).
#ifndef KNNMEM_BENCH_LARGE_H_
#define KNNMEM_BENCH_LARGE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/report.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

struct LargeConfig {
  int64_t entries = int64_t{1} << 20;
  int centres = 4096;
  uint32_t nlist = 1024;
  uint32_t nprobe = 16;
  int reps = 3;
  uint64_t seed = 1;
  std::string stream_prefix;
};

absl::Status RunLarge(client::ShardedClient& client, const LargeConfig& config,
                      Report& report, std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_LARGE_H_
