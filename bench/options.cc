#include "bench/options.h"

#include <utility>

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace knnmem::bench {

std::string BenchHelp() {
  return R"(knnmem-bench: the knnmem reference workloads, with FAISS, cblas_sgemm and
RocksDB measured in the same run on the same data.

Usage: knnmem-bench [flags]

  --server HOST:PORT      use a running knnmem-server instead of starting one
  --servers LIST          use several running servers, as the CLI does: comma-
                          separated [NAME=]HOST:PORT entries, one {A..B} range
                          each; knnmem::ShardedClient places each stream by
                          rendezvous hashing (exclusive with --server)
  --token-file FILE       bearer token for servers started with
                          --auth-token-file: FILE holds the token alone (as
                          the CLI's --token-file); needs --server or --servers
  --tls-ca FILE           TLS to --server/--servers, trusting this CA (PEM)
  --server-binary PATH    knnmem-server to start on 127.0.0.1:0 in a temp dir
                          (default: the one built with this tree)
  --json FILE             also write the results as a JSON array to FILE
  --quick                 about a minute on 2 cores: 3 runs per op, float16 and
                          bfloat16 only at 8K, HNSW on 1 head (times x8), its
                          adds timed up to 8K and its search only at the
                          default efSearch, faiss-flat with default threads
                          timed once at 64K, a smaller W-mixed
  --reps N                measured runs per op after one warm-up (default 7,
                          3 with --quick)
  --only WORKLOAD         run only W-streams, W-large, W-decode, W-real,
                          W-client or W-client-paired (the W-client ones run
                          only when asked)
  --keys DIR              a dump of `knnmem-model dump-keys`: W-real runs
                          on it (with the others, or alone with --only)
  --help                  print this text and exit

Workloads (8 heads x 128 key_dim x 128 value_dim, k = 32, 512 rows or
queries per call, keys and queries L2-normalised):
  W-append      Append of 512 rows vs RocksDB WriteBatch vs HNSW add
  W-search-8K   Search at 8,192 entries per head vs IndexFlatIP, sgemm, HNSW;
                IndexFlatIP twice: variant default (OpenMP and OpenBLAS
                threads = cores) and omp1 (OpenMP 1, OpenBLAS = cores)
  W-search-64K  Search at 65,536 entries per head, likewise
  W-attend-64K  Attend at 65,536 vs sgemm; response bytes vs Search with keys
                and values
  W-mixed       Attend latency on 4 streams from 4 threads, alone and with
                concurrent Appends to the same streams
  W-streams     10,000 streams of 512 tokens (1,000 with --quick) on a server
                of its own whose --memory-budget holds a tenth of them, read
                with a Zipf access pattern: create time, empty-stream cost,
                hit rate, reload latency, RSS, restart to first answer
  W-large       an APPROXIMATE stream of 1,048,576 entries per head (131,072
                with --quick) on keys that cluster: recall@32 and speed of
                the FAISS tier against exact search of the same data
  W-decode      the serving shape: B streams (1 to 128) x 1 query per head,
                one DecodeStep per step, at 1K to 256K entries per head in
                float32, float16 and bfloat16, EXACT and APPROXIMATE; with
                and without a one-token append per stream; against B
                separate Attend calls, the read-bandwidth floor of the key
                bytes, and FAISS Flat, IVF-Flat and HNSW per (stream, head)
                (--quick: 1K to 64K, B up to 32)
  W-real        the APPROXIMATE tier on real attention keys and queries
                (--keys): at 64K and 256K entries per head (what the longest
                dumped document holds), recall@32 and step time (one query
                per head) for nlist 1024 x nprobe 8..128 x exact tail 16384
                and 4096, against the exact scan, FAISS IVF-Flat (same nlist,
                each nprobe) and HNSW (M 15, efSearch 16..256)
  W-client      the C++ client's rows that client/python/bench/bench.py
                compares the Python client with, on the same server: 512-row
                Appends and a DecodeStep of 32 streams x 1K entries
  W-client-paired
                the same calls on command, for client/python/bench/bench.py
                to pair each with a Python call: needs --server; prints
                "ready", then reads "append" or "decode" lines from stdin
                and answers each with that call's wall and CPU seconds
                on stdout (no table); ends at the end of stdin

Progress goes to stderr, the table to stdout. Exit status: 0 on success, 1
when the server or an RPC fails, 2 for a usage error.
)";
}

absl::StatusOr<BenchOptions> ParseBenchOptions(
    const std::vector<std::string>& args,
    const std::string& default_server_binary) {
  BenchOptions o;
  o.server_binary = default_server_binary;
  for (size_t i = 0; i < args.size(); ++i) {
    const std::string& arg = args[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--") || arg.size() == 2) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    std::string name = arg.substr(2);
    std::string value;
    bool has_value = false;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
      has_value = true;
    }
    if (name == "quick") {
      if (has_value) {
        return absl::InvalidArgumentError("--quick: takes no value");
      }
      o.quick = true;
      continue;
    }
    if (name != "server" && name != "servers" && name != "server-binary" &&
        name != "json" && name != "reps" && name != "token-file" &&
        name != "tls-ca" && name != "only" && name != "keys") {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see --help)"));
    }
    if (!has_value) {
      if (i + 1 >= args.size()) {
        return absl::InvalidArgumentError(
            absl::StrCat("--", name, ": missing value"));
      }
      value = args[++i];
    }
    if (value.empty()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": empty value"));
    }
    if (name == "server") {
      const size_t colon = value.rfind(':');
      int port = 0;
      if (colon == std::string::npos || colon == 0 ||
          !absl::SimpleAtoi(value.substr(colon + 1), &port) || port < 1 ||
          port > 65535) {
        return absl::InvalidArgumentError(
            absl::StrCat("--server: '", value, "' is not HOST:PORT"));
      }
      o.server = value;
    } else if (name == "servers") {
      absl::StatusOr<std::vector<client::ServerAddress>> servers =
          client::ParseServerList(value);
      if (!servers.ok()) return servers.status();  // names --servers
      o.servers_spec = value;
      o.servers = std::move(*servers);
    } else if (name == "keys") {
      o.keys_dir = value;
    } else if (name == "token-file") {
      o.token_file = value;
    } else if (name == "tls-ca") {
      o.tls_ca = value;
    } else if (name == "server-binary") {
      o.server_binary = value;
    } else if (name == "json") {
      o.json_path = value;
    } else if (name == "only") {
      if (value != "W-streams" && value != "W-large" && value != "W-decode" &&
          value != "W-real" && value != "W-client" &&
          value != "W-client-paired") {
        return absl::InvalidArgumentError(
            absl::StrCat("--only: '", value,
                         "' is not W-streams, W-large, W-decode, W-real, "
                         "W-client or W-client-paired"));
      }
      o.only = value;
    } else {  // reps
      if (!absl::SimpleAtoi(value, &o.reps) || o.reps < 1 || o.reps > 1000) {
        return absl::InvalidArgumentError(absl::StrCat(
            "--reps: '", value, "' is not an integer in [1, 1000]"));
      }
    }
  }
  if (!o.server.empty() && !o.servers.empty()) {
    return absl::InvalidArgumentError("give --server or --servers, not both");
  }
  if (o.only == "W-real" && o.keys_dir.empty()) {
    return absl::InvalidArgumentError(
        "--only W-real: needs --keys DIR (a knnmem-model dump-keys dump)");
  }
  if (o.only == "W-client-paired" && o.server.empty()) {
    return absl::InvalidArgumentError(
        "--only W-client-paired: needs --server (one running server)");
  }
  // The server this benchmark starts has neither auth nor TLS.
  const bool running = !o.server.empty() || !o.servers.empty();
  if (!running && (!o.token_file.empty() || !o.tls_ca.empty())) {
    return absl::InvalidArgumentError(absl::StrCat(
        o.token_file.empty() ? "--tls-ca" : "--token-file",
        ": needs --server or --servers (the server this benchmark starts "
        "has neither auth nor TLS)"));
  }
  return o;
}

}  // namespace knnmem::bench
