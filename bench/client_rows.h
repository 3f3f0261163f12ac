// W-client: what the C++ client does in the shapes the Python client's
// benchmark (client/python/bench/bench.py) measures on the same server, so
// that the two are compared in one run:
//   "append-512"     unary Appends of 512 rows x 8 heads x 128 (float32
//                    keys and values, 4 MiB per call) to a fresh stream;
//                    vectors/s column = rows per second
//   "decode-step-32" one DecodeStep of 32 streams x 1 query per head, 1,024
//                    float32 entries per head, k = 32 (W-decode's shape)
#ifndef KNNMEM_BENCH_CLIENT_ROWS_H_
#define KNNMEM_BENCH_CLIENT_ROWS_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/report.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

absl::Status RunClientRows(ShardedClient& client, int reps,
                           const std::string& stream_prefix, Report& report,
                           std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_CLIENT_ROWS_H_
