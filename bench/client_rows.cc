#include "bench/client_rows.h"

#include <random>

#include "absl/strings/str_cat.h"
#include "bench/decode.h"
#include "bench/knnmem_calls.h"
#include "bench/stats.h"
#include "bench/status_macros.h"
#include "client/memory_client.h"

namespace knnmem::bench {

absl::Status RunClientRows(ShardedClient& client, int reps,
                           const std::string& stream_prefix, Report& report,
                           std::vector<std::string>* created) {
  constexpr int kHeads = 8, kDim = 128, kRows = 512;
  const std::string id = stream_prefix + ".client-append";
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kHeads);
  spec.set_key_dim(kDim);
  spec.set_value_dim(kDim);
  spec.set_capacity(uint64_t{1} << 20);
  BENCH_RETURN_IF_ERROR(CreateFreshStream(client, id, spec));
  created->push_back(id);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> keys(kRows * kHeads * kDim), values(keys.size());
  for (float& x : keys) x = uniform(rng);
  for (float& x : values) x = uniform(rng);
  MemoryClient& c = client.For(id);
  int64_t next = 0;
  Progress("W-client: the C++ client's 512-row Appends");
  BENCH_ASSIGN_OR_RETURN(
      Samples appends, Measure(1, reps, [&]() -> absl::Status {
        BENCH_ASSIGN_OR_RETURN(v1::AppendRequest req,
                               knnmem::MakeAppendRequest(
                                   id, 0, next, keys, values, kRows, kHeads));
        BENCH_RETURN_IF_ERROR(c.Append(std::move(req)).status());
        next += kRows;
        return absl::OkStatus();
      }));
  Result a;
  a.workload = "W-client";
  a.system = "knnmem";
  a.dtype = "float32";
  a.variant = "append-512";
  a.runs = static_cast<int>(appends.size());
  a.median_seconds = appends.Median();
  a.p99_seconds = appends.P99();
  a.vectors_per_second = kRows / appends.Median();
  a.note =
      "the C++ client's unary Append of 512 rows (4 MiB), request "
      "built in the timed loop";
  report.Add(a);

  DecodeShape shape;
  shape.entries = 1024;
  shape.streams = {32};
  shape.with_append = shape.sequential = shape.peers = false;
  DecodeConfig config;
  config.shapes = {shape};
  config.steps = reps;
  config.stream_prefix = stream_prefix + ".client";
  Report decode;
  BENCH_RETURN_IF_ERROR(RunDecode(client, config, decode, created));
  for (Result r : decode.results()) {
    if (r.system != "knnmem") continue;
    r.workload = "W-client";
    r.variant = "decode-step-32";
    r.ratios.clear();
    r.note =
        "the C++ client's DecodeStep of 32 streams x 1 query per head, "
        "1,024 float32 entries each, k = 32 (proto built outside the "
        "timed call)";
    report.Add(r);
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
