// The single-stream workloads, each measured for knnmem and its peers in the
// same run on the same BenchData:
//   W-append      the 128 Appends of 512 rows that fill the 64K stream, vs
//                 RocksDB WriteBatch of the same bytes and HNSW add of the
//                 same rows (8 indexes, one per head; a row is 8 head
//                 vectors, so rows/s is comparable with knnmem's rows/s;
//                 --quick indexes one head, scales its times by 8, and times
//                 only the adds up to 8K)
//   W-search-8K   Search (positions and scores) when each head holds 8,192
//                 entries, vs faiss-flat, faiss-hnsw and sgemm; faiss-flat
//                 in two thread settings, each its own row: variant
//                 "default" (OpenMP and OpenBLAS threads = cores, FAISS as a
//                 user gets it) and "omp1" (OpenMP 1 thread, OpenBLAS =
//                 cores); --quick times "default" at 64K once after its
//                 warm-up
//   W-search-64K  the same at 65,536 entries
//   W-attend-64K  Attend at 65,536 entries vs sgemm, and the Attend response
//                 size vs a Search returning keys and values
// and W-search-8K/64K again for float16 and bfloat16 storage.
//
// Contract: every RPC error ends the workload and is returned with what was
// being done; streams created are listed by streams() for the caller to
// delete. Every call on a stream goes to the server the ShardedClient placed
// it on. sgemm, HNSW and faiss-flat "default" run with the thread counts the
// caller pinned; faiss-flat "omp1" sets OpenMP to 1 thread for its runs and
// restores it.
#ifndef KNNMEM_BENCH_WORKLOADS_H_
#define KNNMEM_BENCH_WORKLOADS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/data.h"
#include "bench/recall.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

class FlatPeer;

struct WorkloadConfig {
  int reps = 7;               // timed runs per op, after one warm-up
  bool quick = false;         // storage dtypes only at 8K
  std::string stream_prefix;  // unique per run, valid in a stream id
};

class Workloads {
 public:
  Workloads(client::ShardedClient& client, const BenchData& data,
            const WorkloadConfig& config, Report& report);

  // W-append, W-search-8K, W-search-64K and W-attend-64K on float32 storage,
  // with every peer. Keeps the exact top-k for RunStorageDtype.
  absl::Status RunFloat32();
  // W-search-8K (and, unless quick, W-search-64K) on a stream stored as
  // `storage`; recall against the float32 exact top-k. After RunFloat32.
  absl::Status RunStorageDtype(DType storage);

  const std::vector<std::string>& streams() const { return streams_; }

 private:
  // Appends rows [from, to) to `stream`, one 512-row request each, timing
  // each RPC into `samples` when it is not null.
  absl::Status Fill(const std::string& stream, int64_t from, int64_t to,
                    DType wire, Samples* samples, int64_t* request_bytes);
  // W-append over AppendStream: rows [0, entries) into a fresh stream with
  // two batches unacknowledged, the stream deleted after.
  absl::StatusOr<Result> MeasureAppendStream();
  // Times Search on `stream`; `found` receives the last answer's top-k.
  // The caller sets the recall and adds the result.
  absl::StatusOr<Result> MeasureKnnmemSearch(const std::string& workload,
                                             const std::string& stream,
                                             DType storage, int64_t entries,
                                             TopK* found);
  // Times faiss-flat search in both thread settings, "omp1" first, then
  // "default" (its recall against "omp1", the exact reference); returns the
  // rows "default", "omp1" for the caller to add. `truth` receives the
  // "omp1" answer.
  absl::StatusOr<std::vector<Result>> MeasureFlat(const std::string& workload,
                                                  int64_t entries,
                                                  FlatPeer& flat, TopK* truth);
  // W-attend-64K on `stream` (after W-search-64K, whose sgemm rows it
  // repeats).
  absl::Status MeasureAttend(const std::string& stream);

  client::ShardedClient& client_;
  const BenchData& data_;
  WorkloadConfig config_;
  Report& report_;
  std::vector<std::string> streams_;
  TopK truth_8k_;
  TopK truth_64k_;
};

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_WORKLOADS_H_
