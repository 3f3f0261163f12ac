// knnmem-bench: runs the reference workloads against a knnmem-server (a
// child started on 127.0.0.1:0 in a temp dir, or --server HOST:PORT) and
// measures the peers in-process on the same data; prints a table to stdout
// and optionally writes JSON. This file holds the flags and the order of
// the run; see workloads.h, mixed.h and peers.h for what is measured.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "data.h"
#include "memory_client.h"
#include "mixed.h"
#include "options.h"
#include "peers.h"
#include "report.h"
#include "server_child.h"
#include "stats.h"
#include "status_macros.h"
#include "temp_dir.h"
#include "workloads.h"

namespace knnmem::bench {
namespace {

constexpr uint32_t kSeed = 20220325;

// Deletes what the run created; the first error is returned.
absl::Status DeleteStreams(MemoryClient& client,
                           const std::vector<std::string>& ids) {
  absl::Status first;
  for (const std::string& id : ids) {
    absl::Status s = client.DeleteStream(id);
    if (!s.ok() && first.ok()) {
      first = absl::Status(
          s.code(), absl::StrCat("DeleteStream '", id, "': ", s.message()));
    }
  }
  return first;
}

// Every workload, in order. `streams` collects what was created.
absl::Status RunWorkloads(MemoryClient& client, const BenchData& data,
                          const BenchOptions& options, Report& report,
                          std::vector<std::string>& streams) {
  const std::string prefix = absl::StrCat(
      "knnmem-bench.", getpid(), ".", static_cast<long>(std::time(nullptr)));
  WorkloadConfig config;
  config.reps = options.EffectiveReps();
  config.quick = options.quick;
  config.stream_prefix = prefix;
  Workloads workloads(client, data, config, report);
  absl::Status s = workloads.RunFloat32();
  for (const DType storage : {DType::kFloat16, DType::kBFloat16}) {
    if (s.ok()) s = workloads.RunStorageDtype(storage);
  }
  streams = workloads.streams();
  if (!s.ok()) return s;

  MixedConfig mixed;
  if (options.quick) {
    mixed.rounds = 2;
    mixed.attends_per_round = 2;
  }
  mixed.stream_prefix = prefix;
  return RunMixed(client, data, mixed, report, &streams);
}

// Fails early when FILE cannot be written, rather than after the run.
absl::Status CheckJsonWritable(const std::string& path) {
  if (path.empty()) return absl::OkStatus();
  std::ofstream file(path, std::ios::app);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("--json: cannot open '", path, "' for writing"));
  }
  return absl::OkStatus();
}

absl::Status Run(const BenchOptions& options) {
  const double start = NowSeconds();
  Machine machine = DetectMachine();
  // The peers use every core, as the server's worker pool does.
  SetPeerThreads(machine.cores);
  machine.omp_threads = OmpThreads();
  machine.blas_threads = BlasThreads();
  Progress(absl::StrFormat(
      "machine: %s, %d cores; peers use %d OpenMP threads (FAISS) and %d "
      "OpenBLAS threads (sgemm)",
      machine.cpu, machine.cores, machine.omp_threads, machine.blas_threads));

  std::unique_ptr<TempDir> data_dir;
  std::unique_ptr<ServerChild> child;
  std::string address = options.server;
  if (address.empty()) {
    BENCH_ASSIGN_OR_RETURN(data_dir, TempDir::Create("knnmem-bench-data-"));
    Progress(absl::StrCat("starting ", options.server_binary, " in ",
                          data_dir->path()));
    // Metrics on a free port, so that a server on the default one (make run,
    // another benchmark) does not stop this one from starting.
    std::vector<std::string> extra_args;
    if (ServerHasFlag(options.server_binary, "--metrics-address")) {
      extra_args = {"--metrics-address", "127.0.0.1:0"};
    }
    BENCH_ASSIGN_OR_RETURN(
        child, ServerChild::Start(options.server_binary, data_dir->path(),
                                  extra_args));
    address = child->address();
    machine.server = child->ready_line();
  } else {
    machine.server = absl::StrCat("--server ", address);
  }
  Progress(absl::StrCat("server at ", address));

  MemoryClient::Options client_options;
  client_options.deadline = std::chrono::minutes(10);
  std::unique_ptr<MemoryClient> client =
      MemoryClient::Connect(address, client_options);
  absl::Status status = client->Health();
  if (!status.ok()) {
    status = absl::Status(
        status.code(),
        absl::StrCat("health check of ", address, ": ", status.message()));
  }

  Report report;
  std::vector<std::string> streams;
  if (status.ok()) {
    Progress("generating the data (std::mt19937, N(0,1), 64K rows)");
    const BenchData data = MakeBenchData(Shape(), kSeed);
    status = RunWorkloads(*client, data, options, report, streams);
  }
  if (!status.ok() && child != nullptr) {
    absl::Status alive = child->CheckAlive();
    if (!alive.ok()) {
      status = absl::Status(status.code(), absl::StrCat(status.message(), " (",
                                                        alive.message(), ")"));
    }
  }
  if (status.ok() || child == nullptr) {
    absl::Status deleted = DeleteStreams(*client, streams);
    if (status.ok()) status = deleted;
  }
  client.reset();
  if (child != nullptr) {
    Progress("stopping the server (SIGTERM)");
    absl::Status stopped = child->Stop();
    if (status.ok()) status = stopped;
    child.reset();
  }
  data_dir.reset();
  BENCH_RETURN_IF_ERROR(status);

  report.ComputeRatios();
  RunSettings run;
  run.quick = options.quick;
  run.reps = options.EffectiveReps();
  run.seed = kSeed;
  std::fputs(report.Table(machine, run).c_str(), stdout);
  std::printf("\nwall time: %.1f s\n", NowSeconds() - start);
  std::fflush(stdout);
  if (!options.json_path.empty()) {
    BENCH_RETURN_IF_ERROR(report.WriteJson(options.json_path, machine, run));
    Progress(absl::StrCat("wrote ", options.json_path));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace knnmem::bench

int main(int argc, char** argv) {
  absl::StatusOr<knnmem::bench::BenchOptions> options =
      knnmem::bench::ParseBenchOptions(
          std::vector<std::string>(argv + 1, argv + argc),
          KNNMEM_SERVER_BINARY);
  if (!options.ok()) {
    std::fprintf(stderr, "knnmem-bench: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(knnmem::bench::BenchHelp().c_str(), stdout);
    return 0;
  }
  absl::Status writable = knnmem::bench::CheckJsonWritable(options->json_path);
  if (!writable.ok()) {
    std::fprintf(stderr, "knnmem-bench: %s\n",
                 std::string(writable.message()).c_str());
    return 2;
  }
  absl::Status s = knnmem::bench::Run(*options);
  if (!s.ok()) {
    std::fprintf(stderr, "knnmem-bench: error: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
