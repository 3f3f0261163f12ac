// knnmem-bench: runs the reference workloads against a knnmem-server (a
// child started on 127.0.0.1:0 in a temp dir, --server HOST:PORT, or several
// running servers with --servers, streams placed by
// knnmem::client::ShardedClient) and measures the peers in-process on the same
// data; prints a table to stdout and optionally writes JSON. This file holds
// the flags and the order of the run; see workloads.h, mixed.h and peers.h for
// what is measured.
#include <unistd.h>

#include <algorithm>
#include <chrono>
#include <cstdio>
#include <ctime>
#include <fstream>
#include <iterator>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/ascii.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/server_child.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "bench/client_rows.h"
#include "bench/data.h"
#include "bench/decode.h"
#include "bench/knnmem_calls.h"
#include "bench/large.h"
#include "bench/mixed.h"
#include "bench/options.h"
#include "bench/peers.h"
#include "bench/real_keys.h"
#include "bench/report.h"
#include "bench/stats.h"
#include "bench/streams.h"
#include "bench/workloads.h"
#include "client/memory_client.h"
#include "client/sharded_client.h"
#include "server/search/bf16_prefilter.h"  // the server's own dispatch, for the header
#include "server/search/score_scan.h"

namespace knnmem::bench {
namespace {

constexpr uint32_t kSeed = 20220325;

// Deletes what the run created; the first error is returned.
absl::Status DeleteStreams(client::ShardedClient& client,
                           const std::vector<std::string>& ids) {
  absl::Status first;
  for (const std::string& id : ids) {
    absl::Status s = client.DeleteStream(id);
    if (!s.ok() && first.ok()) {
      first =
          absl::Status(s.code(), absl::StrCat("DeleteStream '", id, "' on ",
                                              ServerLabel(client.ServerOf(id)),
                                              ": ", s.message()));
    }
  }
  return first;
}

// Unique per run, valid in a stream id.
std::string StreamPrefix() {
  return absl::StrCat("knnmem-bench.", getpid(), ".",
                      static_cast<long>(std::time(nullptr)));
}

// Every workload, in order. `streams` collects what was created.
absl::Status RunWorkloads(client::ShardedClient& client, const BenchData& data,
                          const BenchOptions& options, Report& report,
                          std::vector<std::string>& streams) {
  const std::string prefix = StreamPrefix();
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

// The whole of FILE, or INVALID_ARGUMENT naming `flag`.
absl::StatusOr<std::string> ReadFlagFile(const char* flag,
                                         const std::string& path) {
  std::ifstream file(path, std::ios::binary);
  if (!file) {
    return absl::InvalidArgumentError(
        absl::StrCat("--", flag, ": cannot open '", path, "'"));
  }
  return std::string((std::istreambuf_iterator<char>(file)),
                     std::istreambuf_iterator<char>());
}

// The client options of --token-file and --tls-ca.
absl::StatusOr<client::MemoryClient::Options> ClientOptions(
    const BenchOptions& options) {
  client::MemoryClient::Options o;
  o.deadline = std::chrono::minutes(10);
  if (!options.token_file.empty()) {
    ASSIGN_OR_RETURN(const std::string text,
                     ReadFlagFile("token-file", options.token_file));
    // As the CLI: the file holds the token, surrounding whitespace ignored.
    o.auth_token = std::string(absl::StripAsciiWhitespace(text));
    if (o.auth_token.empty() ||
        o.auth_token.find_first_of(" \t\r\n") != std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--token-file: '", options.token_file,
          "' must hold one token and nothing else (the server's "
          "--auth-token-file lines are \"TOKEN rw\"; give the client only "
          "TOKEN)"));
    }
  }
  if (!options.tls_ca.empty()) {
    ASSIGN_OR_RETURN(o.tls_root_certs, ReadFlagFile("tls-ca", options.tls_ca));
    if (o.tls_root_certs.find("-----BEGIN CERTIFICATE-----") ==
        std::string::npos) {
      return absl::InvalidArgumentError(absl::StrCat(
          "--tls-ca: '", options.tls_ca, "' holds no PEM certificate"));
    }
  }
  return o;
}

// `args` joined by spaces, each quoted for a POSIX shell when it needs it.
std::string CommandLine(const std::vector<std::string>& args) {
  std::vector<std::string> quoted;
  for (const std::string& a : args) {
    const bool plain =
        !a.empty() && a.find_first_not_of(
                          "ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz"
                          "0123456789_-+=./:,@%") == std::string::npos;
    if (plain) {
      quoted.push_back(a);
      continue;
    }
    std::string q = "'";
    for (const char c : a) {
      q += c == '\'' ? std::string("'\\''") : std::string(1, c);
    }
    quoted.push_back(q + "'");
  }
  return absl::StrJoin(quoted, " ");
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

absl::Status Run(const BenchOptions& options,
                 const client::MemoryClient::Options& client_options) {
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
  std::vector<client::ServerAddress> servers = options.servers;
  if (!options.servers.empty()) {
    machine.server = absl::StrCat("--servers ", options.servers_spec, " (",
                                  servers.size(), " servers)");
  } else if (!options.server.empty()) {
    servers.push_back({options.server, options.server});
    machine.server = absl::StrCat("--server ", options.server);
  } else {
    ASSIGN_OR_RETURN(data_dir, TempDir::Create("knnmem-bench-data-"));
    Progress(absl::StrCat("starting ", options.server_binary, " in ",
                          data_dir->path()));
    // Metrics on a free port, so that a server on the default one (make run,
    // another benchmark) does not stop this one from starting.
    std::vector<std::string> extra_args;
    if (ServerHasFlag(options.server_binary, "--metrics-address")) {
      extra_args = {"--metrics-address", "127.0.0.1:0"};
    }
    extra_args.insert(extra_args.end(), options.server_flags.begin(),
                      options.server_flags.end());
    ASSIGN_OR_RETURN(child, ServerChild::Start(options.server_binary,
                                               data_dir->path(), extra_args));
    servers.push_back({child->address(), child->address()});
    machine.server = child->ready_line();
    machine.server_command = CommandLine(child->argv());
    // The server's dispatch depends only on the CPU, which it shares with
    // this process.
    machine.scan_isa =
        absl::StrCat(ScanScoresIsa(),
                     Bf16PrefilterSupported()
                         ? "; float32 blocks scored by the bfloat16 prefilter "
                           "(AVX512_BF16) with float32 rescoring"
                         : "; blocks scored by float32 sgemm (no AVX512_BF16)");
  }
  for (const client::ServerAddress& s : servers) {
    machine.servers.push_back(ServerLabel(s));
  }
  if (!options.token_file.empty()) {
    absl::StrAppend(&machine.server, "; bearer token from --token-file ",
                    options.token_file);
  }
  if (!options.tls_ca.empty()) {
    absl::StrAppend(&machine.server, "; TLS, trusting --tls-ca ",
                    options.tls_ca);
  }
  Progress(
      absl::StrCat("server(s): ", absl::StrJoin(machine.servers, ", "),
                   client_options.tls_root_certs.empty() ? "" : ", TLS",
                   client_options.auth_token.empty() ? "" : ", bearer token"));

  auto client =
      std::make_unique<client::ShardedClient>(servers, client_options);
  absl::Status status;
  for (size_t i = 0; i < servers.size() && status.ok(); ++i) {
    status = client->At(i).Health();
    if (!status.ok()) {
      status = absl::Status(status.code(),
                            absl::StrCat("health check of ", machine.servers[i],
                                         ": ", status.message()));
    }
  }

  Report report;
  std::vector<std::string> streams;
  if (status.ok() && options.only.empty()) {
    Progress("generating the data (std::mt19937, N(0,1), 64K rows)");
    const BenchData data = MakeBenchData(Shape(), kSeed);
    status = RunWorkloads(*client, data, options, report, streams);
  }
  if (status.ok() && (options.only.empty() || options.only == "W-large")) {
    LargeConfig large;
    large.entries = options.quick ? 131072 : (int64_t{1} << 20);
    large.nlist = options.quick ? 256 : 1024;
    large.reps = options.EffectiveReps();
    large.seed = kSeed;
    large.stream_prefix = StreamPrefix();
    status = RunLarge(*client, large, report, &streams);
  }
  if (status.ok() && (options.only.empty() || options.only == "W-decode")) {
    DecodeConfig decode;
    ASSIGN_OR_RETURN(decode.shapes,
                     SelectDecodeShapes(DefaultDecodeShapes(options.quick),
                                        options.decode_shapes));
    decode.steps = options.quick ? 10 : 30;
    if (options.quick) {  // 64K entries: train on 16K keys, as knnmem does
      decode.nlist = 256;
      decode.nprobe = 8;
    }
    decode.tier_int8_codes =
        std::find(options.server_flags.begin(), options.server_flags.end(),
                  "--tier-int8-codes") != options.server_flags.end();
    decode.seed = kSeed;
    decode.stream_prefix = StreamPrefix();
    status = RunDecode(*client, decode, report, &streams);
  }
  if (status.ok() && !options.keys_dir.empty() &&
      (options.only.empty() || options.only == "W-real")) {
    RealKeysConfig real;
    real.dir = options.keys_dir;
    if (options.quick) {
      real.entries = {65536};
      real.nprobes = {8, 32};
      real.exact_tails = {16384};
      real.ef_searches = {32, 128};
      real.steps = 16;
      real.decode_streams = {1, 4};
    }
    if (!options.real_entries.empty()) real.entries = options.real_entries;
    if (!options.real_tails.empty()) {
      real.exact_tails.assign(options.real_tails.begin(),
                              options.real_tails.end());
      real.decode_tails = real.exact_tails;
    }
    real.stream_prefix = StreamPrefix();
    status = RunRealKeys(*client, real, report, &streams);
  }
  if (status.ok() && options.only == "W-client") {
    status = RunClientRows(*client, std::max(options.EffectiveReps(), 20),
                           StreamPrefix(), report, &streams);
  }
  if (status.ok() && options.only == "W-client-paired") {
    status = ServeClientRows(*client, StreamPrefix(), stdin, stdout, &streams);
  }
  for (const std::string& id : streams) {
    machine.placement.emplace_back(id, client->ServerIndexOf(id));
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
  RETURN_IF_ERROR(status);
  // Its stdout carried the timings: no table.
  if (options.only == "W-client-paired") return absl::OkStatus();
  const bool streams_wanted =
      options.only.empty() || options.only == "W-streams";
  if (!streams_wanted) {
  } else if (options.server.empty() && options.servers.empty()) {
    // Its own server (with a budget), once the main one is gone.
    StreamsConfig streams_config;
    streams_config.server_binary = options.server_binary;
    streams_config.streams = options.quick ? 1000 : 10000;
    streams_config.accesses = options.quick ? 500 : 2000;
    streams_config.seed = kSeed;
    RETURN_IF_ERROR(RunStreams(streams_config, client_options, report));
  } else {
    Progress("W-streams: skipped (it starts its own server with a budget)");
  }
  machine.load_at_end = LoadAverage();

  report.ComputeRatios();
  RunSettings run;
  run.quick = options.quick;
  run.reps = options.EffectiveReps();
  run.seed = kSeed;
  std::fputs(report.Table(machine, run).c_str(), stdout);
  std::printf("\nwall time: %.1f s\n", NowSeconds() - start);
  std::fflush(stdout);
  if (!options.json_path.empty()) {
    RETURN_IF_ERROR(report.WriteJson(options.json_path, machine, run));
    Progress(absl::StrCat("wrote ", options.json_path));
  }
  return absl::OkStatus();
}

}  // namespace
}  // namespace knnmem::bench

int main(int argc, char** argv) {
  absl::StatusOr<knnmem::bench::BenchOptions> options =
      knnmem::bench::ParseBenchOptions(knnmem::CommandLineArgs(argc, argv),
                                       KNNMEM_SERVER_BINARY);
  if (!options.ok()) {
    std::fprintf(stderr, "knnmem-bench: %s (see --help)\n",
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
  absl::Status shapes = knnmem::bench::SelectDecodeShapes(
                            knnmem::bench::DefaultDecodeShapes(options->quick),
                            options->decode_shapes)
                            .status();
  if (!shapes.ok()) {
    std::fprintf(stderr, "knnmem-bench: %s\n",
                 std::string(shapes.message()).c_str());
    return 2;
  }
  // --token-file and --tls-ca are read before the run: exit 2 if unusable.
  absl::StatusOr<knnmem::client::MemoryClient::Options> client_options =
      knnmem::bench::ClientOptions(*options);
  if (!client_options.ok()) {
    std::fprintf(stderr, "knnmem-bench: %s\n",
                 std::string(client_options.status().message()).c_str());
    return 2;
  }
  absl::Status s = knnmem::bench::Run(*options, *client_options);
  if (!s.ok()) {
    std::fprintf(stderr, "knnmem-bench: error: %s\n", s.ToString().c_str());
    return 1;
  }
  return 0;
}
