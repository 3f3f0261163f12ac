#include "bench/streams.h"

#include <unistd.h>

#include <algorithm>
#include <atomic>
#include <cmath>
#include <cstdio>
#include <memory>
#include <random>
#include <thread>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/server_child.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "bench/stats.h"

namespace knnmem::bench {
namespace {

constexpr int kHeads = 4, kDim = 32, kQueries = 8, kK = 32, kThreads = 8;

uint64_t ResidentBytes(pid_t pid) {
  FILE* f = std::fopen(absl::StrCat("/proc/", pid, "/statm").c_str(), "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2 ? uint64_t{resident} * sysconf(_SC_PAGESIZE) : 0;
}

std::string StreamId(int i) { return absl::StrCat("w-streams.", i); }

// Runs fn(i) for i in [0, n) on kThreads threads; the first error wins.
absl::Status ForEachParallel(int n, const std::function<absl::Status(int)>& fn,
                             Samples* samples) {
  std::atomic<int> next{0};
  std::vector<absl::Status> errors(kThreads);
  std::vector<Samples> per_thread(kThreads);
  std::vector<std::thread> threads;
  for (int t = 0; t < kThreads; ++t) {
    threads.emplace_back([&, t] {
      for (int i; (i = next.fetch_add(1)) < n;) {
        const double start = NowSeconds();
        absl::Status s = fn(i);
        per_thread[t].Add(NowSeconds() - start);
        if (!s.ok()) {
          errors[t] = s;
          next = n;
        }
      }
    });
  }
  for (std::thread& t : threads) t.join();
  if (samples != nullptr) {
    for (const Samples& s : per_thread) {
      samples->seconds.insert(samples->seconds.end(), s.seconds.begin(),
                              s.seconds.end());
    }
  }
  for (const absl::Status& s : errors) RETURN_IF_ERROR(s);
  return absl::OkStatus();
}

Result Row(const std::string& variant) {
  Result r;
  r.workload = "W-streams";
  r.system = "knnmem";
  r.dtype = "float16";
  r.variant = variant;
  return r;
}

}  // namespace

absl::Status RunStreams(const StreamsConfig& config,
                        const client::MemoryClient::Options& client_options,
                        Report& report) {
  const int n = config.streams, tokens = config.tokens;
  const uint64_t row_bytes = uint64_t{kHeads} * 2 * kDim * 2;  // float16
  const uint64_t stream_bytes = tokens * row_bytes;
  const uint64_t budget = n * stream_bytes / 10;
  ASSIGN_OR_RETURN(std::unique_ptr<TempDir> dir,
                   TempDir::Create("knnmem-bench-streams-"));
  const std::vector<std::string> args = {"--memory-budget",
                                         std::to_string(budget),
                                         "--metrics-address", "127.0.0.1:0"};
  Progress(absl::StrFormat(
      "W-streams: a server with --memory-budget %d (a tenth of %d streams "
      "of %d tokens)",
      budget, n, tokens));
  ASSIGN_OR_RETURN(std::unique_ptr<ServerChild> child,
                   ServerChild::Start(config.server_binary, dir->path(), args));
  auto client = client::MemoryClient::Connect(child->address(), client_options);
  RETURN_IF_ERROR(client->Health());
  const uint64_t rss_empty_server = ResidentBytes(child->pid());

  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(kHeads);
  spec.set_key_dim(kDim);
  spec.set_value_dim(kDim);
  spec.set_capacity(tokens);
  spec.set_storage_dtype(v1::FLOAT16);
  Progress(absl::StrFormat("W-streams: creating %d streams", n));
  const double create_start = NowSeconds();
  RETURN_IF_ERROR(ForEachParallel(
      n,
      [&](int i) { return client->CreateStream(StreamId(i), spec).status(); },
      nullptr));
  const double create_seconds = NowSeconds() - create_start;
  const uint64_t rss_created = ResidentBytes(child->pid());

  std::mt19937 rng(static_cast<uint32_t>(config.seed));
  std::normal_distribution<float> normal;
  std::vector<float> keys(static_cast<size_t>(tokens) * kHeads * kDim);
  std::vector<float> values(keys.size()), queries(kQueries * kHeads * kDim);
  for (float& x : keys) x = normal(rng);
  for (float& x : values) x = normal(rng);
  for (float& x : queries) x = normal(rng);
  Progress(
      absl::StrFormat("W-streams: one %d-token Append to each stream", tokens));
  Samples fill;
  RETURN_IF_ERROR(ForEachParallel(
      n,
      [&](int i) {
        return client
            ->Append(StreamId(i), 0, 0, keys, values, tokens, kHeads,
                     DType::kFloat32)
            .status();
      },
      &fill));

  // Zipf over a random order of the streams.
  std::vector<int> order(n);
  for (int i = 0; i < n; ++i) order[i] = i;
  std::shuffle(order.begin(), order.end(), rng);
  std::vector<double> weights(n);
  for (int r = 0; r < n; ++r) weights[r] = 1.0 / std::pow(r + 1, config.zipf_s);
  std::discrete_distribution<int> zipf(weights.begin(), weights.end());
  Progress(absl::StrFormat("W-streams: %d Attends, Zipf(%.1f) over streams",
                           config.accesses, config.zipf_s));
  Samples hits, misses;
  for (int a = 0; a < config.accesses; ++a) {
    const std::string id = StreamId(order[zipf(rng)]);
    ASSIGN_OR_RETURN(v1::StreamInfo info, client->GetStream(id));
    const double start = NowSeconds();
    RETURN_IF_ERROR(
        client->Attend(id, 0, queries, kQueries, kHeads, kK).status());
    (info.resident() ? hits : misses).Add(NowSeconds() - start);
  }
  const uint64_t rss_end = ResidentBytes(child->pid());

  Progress("W-streams: restarting the server on the same data");
  client.reset();
  RETURN_IF_ERROR(child->Stop());
  child.reset();
  const double restart_start = NowSeconds();
  ASSIGN_OR_RETURN(child,
                   ServerChild::Start(config.server_binary, dir->path(), args));
  client = client::MemoryClient::Connect(child->address(), client_options);
  RETURN_IF_ERROR(
      client->Attend(StreamId(order[0]), 0, queries, kQueries, kHeads, kK)
          .status());
  const double restart_seconds = NowSeconds() - restart_start;
  client.reset();
  RETURN_IF_ERROR(child->Stop());

  Result create = Row("create");
  create.runs = 1;
  create.median_seconds = create_seconds;
  create.note = absl::StrFormat(
      "%d CreateStream calls from %d client threads, in all (target: "
      "10,000 in under 1 s)",
      n, kThreads);
  report.Add(create);
  Result empty = Row("empty-stream");
  empty.runs = 1;
  empty.bytes = static_cast<int64_t>(rss_created > rss_empty_server
                                         ? (rss_created - rss_empty_server) / n
                                         : 0);
  empty.note = "server RSS growth per empty stream (target: at most 10 KiB)";
  report.Add(empty);
  Result f = Row("fill");
  f.runs = static_cast<int>(fill.size());
  f.median_seconds = fill.Median();
  f.p99_seconds = fill.P99();
  f.vectors_per_second = tokens / f.median_seconds;
  f.note = absl::StrFormat(
      "one %d-token Append per stream, %d client threads; sustained %.0f "
      "rows/s",
      tokens, kThreads,
      static_cast<double>(n) * tokens / fill.Total() * kThreads);
  report.Add(f);
  const double hit_rate =
      static_cast<double>(hits.size()) / std::max(1, config.accesses);
  Result h = Row("hit");
  h.runs = static_cast<int>(hits.size());
  h.median_seconds = hits.Median();
  h.p99_seconds = hits.P99();
  h.ratios.emplace_back("hit_rate", hit_rate);
  h.note = absl::StrFormat(
      "Attend of %d queries, k=%d, on a resident stream; %d accesses, "
      "Zipf(%.1f), hit rate %.3f",
      kQueries, kK, config.accesses, config.zipf_s, hit_rate);
  report.Add(h);
  Result m = Row("reload");
  m.runs = static_cast<int>(misses.size());
  m.median_seconds = misses.Median();
  m.p99_seconds = misses.P99();
  m.note =
      "the same Attend on a stream that was not resident: the reload "
      "from RocksDB (unloading others) plus the Attend";
  report.Add(m);
  Result rss = Row("rss");
  rss.runs = 1;
  rss.bytes = static_cast<int64_t>(rss_end);
  rss.ratios.emplace_back("rss_over_budget",
                          static_cast<double>(rss_end) / budget);
  rss.ratios.emplace_back(
      "rss_above_empty_server_over_budget",
      static_cast<double>(rss_end - std::min(rss_end, rss_empty_server)) /
          budget);
  rss.note = absl::StrFormat(
      "server RSS after the accesses; budget %d bytes; the empty server "
      "alone (gRPC, RocksDB memtables) had %d",
      budget, rss_empty_server);
  report.Add(rss);
  Result restart = Row("restart");
  restart.runs = 1;
  restart.median_seconds = restart_seconds;
  restart.note = absl::StrFormat(
      "from starting the server on the data of %d streams to the first "
      "answered Attend (target: under 5 s)",
      n);
  report.Add(restart);
  return absl::OkStatus();
}

}  // namespace knnmem::bench
