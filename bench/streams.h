// W-streams: many short documents under a RAM budget that holds a tenth of
// them, read with a Zipf access pattern, as inference workers read theirs.
//
// Contract: starts its own knnmem-server (`server_binary`) in a temp dir
// with --memory-budget = a tenth of what `streams` streams of `tokens`
// tokens take in RAM (float16, 1 layer, 4 heads x (32 + 32)), and adds
// "W-streams" rows to `report`:
//   create        time to create every stream (8 client threads)
//   empty-stream  server RSS growth per empty stream (bytes)
//   fill          one Append of `tokens` tokens per stream (8 threads)
//   hit, reload   Attend latency (8 queries, k = 32) on streams picked with
//                 Zipf(`zipf_s`) over a random order, split by whether the
//                 stream was resident (GetStream, just before); the hit row
//                 carries the hit rate
//   rss           the server's RSS at the end, against the budget
//   restart       from restarting the server on the same data to the first
//                 answered Attend
// Returns the first error.
#ifndef KNNMEM_BENCH_STREAMS_H_
#define KNNMEM_BENCH_STREAMS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "bench/report.h"
#include "client/memory_client.h"

namespace knnmem::bench {

struct StreamsConfig {
  std::string server_binary;
  int streams = 10000;
  int tokens = 512;
  int accesses = 2000;
  double zipf_s = 1.0;
  uint64_t seed = 1;
};

absl::Status RunStreams(const StreamsConfig& config,
                        const client::MemoryClient::Options& client_options,
                        Report& report);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_STREAMS_H_
