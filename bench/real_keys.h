// W-real: the approximate tier on real attention keys and queries, dumped
// from a trained model by `knnmem-model dump-keys` (model/recording_memory.h
// documents the files), against the exact scan and FAISS.
//
// For each memory size E the longest dumped document holds: its first E
// keys (and values) go into knnmem streams; the queries are the
// document's, asked once it had appended at least E keys (the model's own
// next queries to that memory), or its last ones if too few were. One
// decode step asks one query per head (k = 32) with Search; the recall of
// each system is its top-k positions shared with a brute-force top-k
// computed here, per (query, head). Rows, per E:
//   knnmem  "exact scan": the same APPROXIMATE stream searched exactly;
//           "nlist N nprobe P tail T": one APPROXIMATE stream per point of
//           the grid, step median and recall, and the speed-up over the
//           exact scan;
//   faiss-ivf  IndexIVFFlat per head, same nlist, each nprobe;
//   faiss-hnsw IndexHNSWFlat per head (M 15), each efSearch.
//   knnmem  "decode B=b, ...": b streams per DecodeStep, one query per head
//           each: EXACT streams, the tier at one point of the grid (with
//           its speed-up), and streams of 64 keys (the call's fixed cost).
// Each row's recall and step time make the curve the defaults are chosen
// from (README, "Choosing EXACT or APPROXIMATE").
#ifndef KNNMEM_BENCH_REAL_KEYS_H_
#define KNNMEM_BENCH_REAL_KEYS_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/report.h"
#include "client/sharded_client.h"
#include "server/spec/stream_spec.h"

namespace knnmem::bench {

struct RealKeysConfig {
  std::string dir;  // the dump
  // Memory sizes per head; those beyond the longest document are reported
  // as skipped.
  std::vector<int64_t> entries = {65536, 262144};
  int steps = 64;  // queries (decode steps) per row
  int k = 32;
  uint32_t nlist = 1024;  // at most: halved until 64 x nlist fit past the tail
  std::vector<uint32_t> nprobes = {8, 16, 32, 64, 128};
  std::vector<uint64_t> exact_tails = {16384, 4096, 1024};
  std::vector<int> ef_searches = {16, 32, 64, 128, 256};
  // The decode shape: B streams per DecodeStep, each B of this list, on the
  // tier at this nprobe and each of these tails, against EXACT streams
  // (empty: not run).
  std::vector<int> decode_streams = {1, 8};
  uint32_t decode_nprobe = 32;
  std::vector<uint64_t> decode_tails = {kDefaultExactTail};
  std::string stream_prefix;
};

absl::Status RunRealKeys(client::ShardedClient& client,
                         const RealKeysConfig& config, Report& report,
                         std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_REAL_KEYS_H_
