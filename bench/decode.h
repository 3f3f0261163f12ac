// W-decode: the serving shape. B streams x E entries per (layer, head),
// 8 heads x 128, k = 32; per step every stream asks one query per head, all
// in one DecodeStep call. Rows per shape and B:
//   knnmem  "exact B=32" (or "approximate ..."): the step's latency (median
//           and p99 over the steps), stream-tokens/s (B / median), the key
//           bytes a step reads and its ratio to the floor;
//           "... +append": each stream first appends one token in the same
//           call (p99 against the plain step's);
//           "... sequential": B Attend calls one after the other (the
//           batched call's speed-up over them), at B = 32 and the largest;
//   floor   those key bytes / the read bandwidth of this machine, measured
//           in the same run by a streaming read of as many bytes on every
//           core (knnmem's server is idle meanwhile);
//   faiss-flat / faiss-ivf / faiss-hnsw: one index per (stream, head) in
//           this process, each searched with its one query, in parallel.
//
// Contract: keys and queries are drawn near 1,024 random centres per head
// (centre + noise, L2-normalised), values uniform; each row is a function
// of (seed, stream, position), so peers rebuild what the server holds. The
// streams are created through `client`, filled with 512-row Appends sent in
// the storage dtype, listed in *created and deleted after their shape. The
// peers hold at most 2 GiB of float32 keys: with more streams than fit, the
// B searches of a step cycle over the streams held (each larger than the
// L3 cache, so every search still streams from RAM).
#ifndef KNNMEM_BENCH_DECODE_H_
#define KNNMEM_BENCH_DECODE_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/dtype.h"
#include "bench/report.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

struct DecodeShape {
  int64_t entries = 8192;  // per (layer, head)
  DType dtype = DType::kFloat32;
  bool approximate = false;
  std::vector<int> streams = {1, 8, 32};  // the Bs measured (ascending)
  bool with_append = true;                // also the "+append" rows
  // Also B separate Attend calls, for the largest B and for B = 32.
  bool sequential = true;
  bool peers = true;  // the FAISS rows
};

struct DecodeConfig {
  std::vector<DecodeShape> shapes;
  int steps = 20;                      // timed steps per row, after 3 untimed
  uint32_t nlist = 1024, nprobe = 32;  // APPROXIMATE shapes and faiss-ivf
  bool tier_int8_codes = false;        // the server runs with --tier-int8-codes
  uint64_t seed = 1;
  std::string stream_prefix;
  // The step's time also covers building its request (MakeDecodeStepRequest
  // from the vectors), as a Python decode_step call's does.
  bool time_request = false;
};

// The shapes `make bench` measures (about 10 GB of RAM at most), or a few
// small ones with `quick`.
std::vector<DecodeShape> DefaultDecodeShapes(bool quick);

// A shape's name for --decode-shapes: ENTRIES:DTYPE, and ":approximate".
std::string DecodeShapeName(const DecodeShape& shape);

// The shapes of `shapes` named in `names` (all when `names` is empty);
// INVALID_ARGUMENT naming --decode-shapes and the names of `shapes` when a
// name matches none.
absl::StatusOr<std::vector<DecodeShape>> SelectDecodeShapes(
    const std::vector<DecodeShape>& shapes,
    const std::vector<std::string>& names);

absl::Status RunDecode(client::ShardedClient& client,
                       const DecodeConfig& config, Report& report,
                       std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_DECODE_H_
