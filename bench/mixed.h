// W-mixed: Attend latency when several streams are read from several client
// threads at once, first alone and then with Appends to the same streams
// from other threads.
//
// Contract: creates `streams` float32 streams of capacity `entries` (listed
// in *created for the caller to delete), fills each with rows [0, entries).
// Two phases, alternated over `rounds` rounds (AB, BA, AB, ...) so that
// background work in the server (RocksDB flushes and compactions) falls on
// both alike:
//   A: `attend_threads` threads (thread t reads stream t % streams) each
//      send one warm-up and `attends_per_round` timed Attends of the 512
//      queries;
//   B: the same, while one appender thread per stream sends one 512-row
//      Append (FIFO eviction keeps the stream at `entries`) for every Attend
//      completed on its stream, as a model does once per segment.
// Adds the results "attend-only" (A), "attend+append" (B's Attend latencies)
// and "append-during-attend" (B's Append latencies). The first RPC error
// stops every thread and is returned. Each stream lives on the server
// `client` places it on (with several servers, the streams spread over
// them); its Attends and Appends go there.
#ifndef KNNMEM_BENCH_MIXED_H_
#define KNNMEM_BENCH_MIXED_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/data.h"
#include "bench/report.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

struct MixedConfig {
  int streams = 4;
  int attend_threads = 4;
  int rounds = 4;
  int attends_per_round = 6;  // per thread and phase
  int64_t entries = 8192;
  std::string stream_prefix;
};

absl::Status RunMixed(client::ShardedClient& client, const BenchData& data,
                      const MixedConfig& config, Report& report,
                      std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_MIXED_H_
