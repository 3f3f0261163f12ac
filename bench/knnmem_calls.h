// The knnmem side of the benchmark: stream specs and prepared requests over
// BenchData, and RPC errors with the context of what the benchmark was
// doing. Requests are built before timing so that a measurement covers the
// RPC (serialisation, transport, server work, parsing) and nothing else.
//
// Contract: a stream position p carries data row p % data.shape.entries, so
// appends may continue past the generated rows (W-mixed); a batch never
// wraps because entries is a multiple of batch_rows.
#ifndef KNNMEM_BENCH_KNNMEM_CALLS_H_
#define KNNMEM_BENCH_KNNMEM_CALLS_H_

#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "bench/data.h"
#include "client/memory_client.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

// One layer of the paper shape with `capacity` entries per head.
v1::StreamSpec BenchSpec(const Shape& shape, uint64_t capacity, DType storage);

// Creates `id` on the server `client` places it on (and pins it there); if it
// already exists with the same spec (a rerun against --server), resets it so
// that positions start at 0. Later calls on `id` go to client.For(id).
absl::Status CreateFreshStream(client::ShardedClient& client,
                               const std::string& id,
                               const v1::StreamSpec& spec);
// "NAME=HOST:PORT", or HOST:PORT when the name is the address.
std::string ServerLabel(const client::ServerAddress& server);

// Rows [position, position + rows) sent as `wire` at layer 0, sync = false.
v1::AppendRequest MakeAppendRequest(const std::string& id,
                                    const BenchData& data, int64_t position,
                                    int64_t rows, DType wire);
// Every query of `data`, float32, k = shape.k, positions and scores only
// unless `with_keys_and_values`.
v1::SearchRequest MakeSearchRequest(const std::string& id,
                                    const BenchData& data,
                                    bool with_keys_and_values);
// Every query of `data`, float32, k = shape.k, the default scale.
v1::AttendRequest MakeAttendRequest(const std::string& id,
                                    const BenchData& data);

// Sends `request` and checks the acknowledged next position.
absl::Status AppendChecked(client::MemoryClient& client,
                           v1::AppendRequest request);
// Checks a Search answer's shape (and that float32 scores are returned).
absl::Status CheckSearchResponse(const v1::SearchResponse& response,
                                 const Shape& shape);
// Checks an Attend answer's shape and that every lse is finite.
absl::Status CheckAttendResponse(const v1::AttendResponse& response,
                                 const Shape& shape);

// Polls GetStream (every 100 ms) until layer 0 of `id` has at least
// `want` entries in its APPROXIMATE tier; progress every 10 s under
// `label`; DEADLINE_EXCEEDED when the count has not moved for 300 s.
absl::Status AwaitIndexed(client::MemoryClient& client, const std::string& id,
                          int64_t want, const std::string& label);

// `status` with "`what`: " in front of its message, code kept.
absl::Status WithContext(const absl::Status& status, const std::string& what);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_KNNMEM_CALLS_H_
