// W-client: what the C++ client does in the shapes the Python client's
// benchmark (client/python/bench/bench.py) measures on the same server, so
// that the two are compared in one run:
//   "append-512"     unary Appends of 512 rows x 8 heads x 128 (float32
//                    keys and values, 4 MiB per call) to a fresh stream;
//                    vectors/s column = rows per second
//   "decode-step-32" one DecodeStep of 32 streams x 1 query per head, 1,024
//                    float32 entries per head, k = 32 (W-decode's shape),
//                    timed from the query vectors to the parsed response
//                    (building the request included, as in Python)
#ifndef KNNMEM_BENCH_CLIENT_ROWS_H_
#define KNNMEM_BENCH_CLIENT_ROWS_H_

#include <cstdio>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "bench/report.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

absl::Status RunClientRows(client::ShardedClient& client, int reps,
                           const std::string& stream_prefix, Report& report,
                           std::vector<std::string>* created);

// W-client-paired: the same two calls, one at a time on command, so that
// client/python/bench/bench.py can time each beside a Python call of the
// same kind on the same server (pairs of consecutive calls see the server
// in the same state: its background flushes and compactions, the load of
// the machine). Creates an Append stream and 32 streams of 1,024 entries
// (uniform [-1, 1) float32 keys = values, as bench.py's), prints "ready",
// then reads one command per line from `in`: "append" (the next 512-row
// Append) or "decode" (one DecodeStep of the 32 streams, 1 query per head
// each, k = 32), each timed from the float vectors to the parsed response,
// and prints "SECONDS CPU_SECONDS" on its own line of `out`: the call's
// wall time and this process's CPU time during it. Returns at the
// end of `in`; any other command, or a failed call, ends it with an error.
// One server: every stream is placed by `client`, the DecodeStep goes to
// client.At(0).
absl::Status ServeClientRows(client::ShardedClient& client,
                             const std::string& stream_prefix, std::FILE* in,
                             std::FILE* out, std::vector<std::string>* created);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_CLIENT_ROWS_H_
