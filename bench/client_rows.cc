#include "bench/client_rows.h"

#include <time.h>

#include <random>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/string_view.h"
#include "base/status_macros.h"
#include "bench/decode.h"
#include "bench/knnmem_calls.h"
#include "bench/stats.h"
#include "client/decode_step.h"
#include "client/memory_client.h"

namespace knnmem::bench {

absl::Status RunClientRows(client::ShardedClient& client, int reps,
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
  RETURN_IF_ERROR(CreateFreshStream(client, id, spec));
  created->push_back(id);
  std::mt19937 rng(7);
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> keys(kRows * kHeads * kDim), values(keys.size());
  for (float& x : keys) x = uniform(rng);
  for (float& x : values) x = uniform(rng);
  client::MemoryClient& c = client.For(id);
  int64_t next = 0;
  Progress("W-client: the C++ client's 512-row Appends");
  ASSIGN_OR_RETURN(Samples appends, Measure(1, reps, [&]() -> absl::Status {
                     ASSIGN_OR_RETURN(
                         v1::AppendRequest req,
                         knnmem::client::MakeAppendRequest(
                             id, 0, next, keys, values, kRows, kHeads));
                     RETURN_IF_ERROR(c.Append(std::move(req)).status());
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
  config.time_request = true;
  Report decode;
  RETURN_IF_ERROR(RunDecode(client, config, decode, created));
  for (Result r : decode.results()) {
    if (r.system != "knnmem") continue;
    r.workload = "W-client";
    r.variant = "decode-step-32";
    r.ratios.clear();
    r.note =
        "the C++ client's DecodeStep of 32 streams x 1 query per head, "
        "1,024 float32 entries each, k = 32 (request built from the "
        "vectors in the timed call, as Python's decode_step)";
    report.Add(r);
  }
  return absl::OkStatus();
}

namespace {

constexpr int kPairedHeads = 8, kPairedDim = 128, kPairedRows = 512;
constexpr int kPairedStreams = 32, kPairedEntries = 1024, kPairedK = 32;

v1::StreamSpec PairedSpec(uint64_t capacity) {
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kPairedHeads);
  spec.set_key_dim(kPairedDim);
  spec.set_value_dim(kPairedDim);
  spec.set_capacity(capacity);
  return spec;
}

// CPU seconds of this process, every thread (gRPC's too).
double CpuSeconds() {
  timespec ts;
  clock_gettime(CLOCK_PROCESS_CPUTIME_ID, &ts);
  return static_cast<double>(ts.tv_sec) +
         1e-9 * static_cast<double>(ts.tv_nsec);
}

std::vector<float> UniformRows(std::mt19937& rng, int64_t rows) {
  std::uniform_real_distribution<float> uniform(-1, 1);
  std::vector<float> out(static_cast<size_t>(rows) * kPairedHeads * kPairedDim);
  for (float& x : out) x = uniform(rng);
  return out;
}

}  // namespace

absl::Status ServeClientRows(client::ShardedClient& client,
                             const std::string& stream_prefix, std::FILE* in,
                             std::FILE* out,
                             std::vector<std::string>* created) {
  std::mt19937 rng(7);
  const std::string append_id = stream_prefix + ".paired-append";
  RETURN_IF_ERROR(
      CreateFreshStream(client, append_id, PairedSpec(uint64_t{1} << 20)));
  created->push_back(append_id);
  const std::vector<float> keys = UniformRows(rng, kPairedRows);
  const std::vector<float> values = UniformRows(rng, kPairedRows);

  Progress("W-client-paired: filling 32 streams of 1,024 entries");
  std::vector<std::string> ids;
  for (int s = 0; s < kPairedStreams; ++s) {
    ids.push_back(absl::StrCat(stream_prefix, ".paired-decode-", s));
    RETURN_IF_ERROR(
        CreateFreshStream(client, ids.back(), PairedSpec(kPairedEntries)));
    created->push_back(ids.back());
    for (int64_t first = 0; first < kPairedEntries; first += kPairedRows) {
      const std::vector<float> rows = UniformRows(rng, kPairedRows);
      ASSIGN_OR_RETURN(
          v1::AppendRequest req,
          knnmem::client::MakeAppendRequest(ids.back(), 0, first, rows, rows,
                                            kPairedRows, kPairedHeads));
      RETURN_IF_ERROR(client.For(ids.back()).Append(std::move(req)).status());
    }
  }
  // The steps (as Python's knnmem.Step objects) are made once; each call
  // builds its request from them.
  std::vector<std::vector<float>> queries;
  std::vector<client::Step> steps(kPairedStreams);
  for (int s = 0; s < kPairedStreams; ++s) {
    queries.push_back(UniformRows(rng, 1));
    steps[s].stream_id = ids[s];
    steps[s].heads = kPairedHeads;
    steps[s].key_dim = steps[s].value_dim = kPairedDim;
    steps[s].queries = queries.back();
  }
  client::StepParams params;
  params.k = kPairedK;

  client::MemoryClient& appender = client.For(append_id);
  client::MemoryClient& decoder = client.At(0);
  int64_t next = 0;
  std::fputs("ready\n", out);
  std::fflush(out);
  char line[64];
  while (std::fgets(line, sizeof line, in) != nullptr) {
    const absl::string_view command = absl::StripAsciiWhitespace(line);
    double seconds = 0;
    const double cpu = CpuSeconds();
    if (command == "append") {
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(
          v1::AppendRequest req,
          knnmem::client::MakeAppendRequest(append_id, 0, next, keys, values,
                                            kPairedRows, kPairedHeads));
      RETURN_IF_ERROR(appender.Append(std::move(req)).status());
      seconds = NowSeconds() - start;
      next += kPairedRows;
    } else if (command == "decode") {
      const double start = NowSeconds();
      ASSIGN_OR_RETURN(v1::DecodeStepRequest req,
                       client::MakeDecodeStepRequest(steps, params));
      ASSIGN_OR_RETURN(v1::DecodeStepResponse resp, decoder.DecodeStep(req));
      for (const v1::StreamStepResult& r : resp.results()) {
        if (r.code() != 0) {
          return absl::Status(
              static_cast<absl::StatusCode>(r.code()),
              absl::StrCat("W-client-paired step: ", r.message()));
        }
      }
      seconds = NowSeconds() - start;
    } else {
      return absl::InvalidArgumentError(absl::StrCat(
          "W-client-paired: command '", command, "' is not append or decode"));
    }
    std::fprintf(out, "%.9f %.9f\n", seconds, CpuSeconds() - cpu);
    std::fflush(out);
  }
  return absl::OkStatus();
}

}  // namespace knnmem::bench
