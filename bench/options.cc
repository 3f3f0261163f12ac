#include "bench/options.h"

#include <utility>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace knnmem::bench {
namespace {

// HOST:PORT with a host and a port in [1, 65535].
bool IsHostPort(absl::string_view value) {
  const size_t colon = value.rfind(':');
  int port = 0;
  return colon != absl::string_view::npos && colon != 0 &&
         absl::SimpleAtoi(value.substr(colon + 1), &port) && port >= 1 &&
         port <= 65535;
}

// The end of --help.
constexpr char kWorkloads[] =
    R"(Workloads (8 heads x 128 key_dim x 128 value_dim, k = 32, 512 rows or
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

}  // namespace

FlagSet BenchFlags(BenchOptions* o) {
  FlagSet f;
  f.String("server", &o->server, "HOST:PORT",
           "use a running knnmem-server instead of starting one")
      .NonEmpty()
      .Check("HOST:PORT", IsHostPort);
  f.String(
       "servers", &o->servers_spec, "LIST",
       "use several running servers, as the CLI does: comma-separated "
       "[NAME=]HOST:PORT entries, one {A..B} range each; "
       "knnmem::client::ShardedClient places each stream by rendezvous hashing "
       "(exclusive with --server)")
      .NonEmpty();
  f.String("token-file", &o->token_file, "FILE",
           "bearer token for servers started with --auth-token-file: FILE "
           "holds the token alone (as the CLI's --token-file); needs --server "
           "or --servers")
      .NonEmpty();
  f.String("tls-ca", &o->tls_ca, "FILE",
           "TLS to --server/--servers, trusting this CA (PEM)")
      .NonEmpty();
  f.String("server-binary", &o->server_binary, "PATH",
           "knnmem-server to start on 127.0.0.1:0 in a temp dir")
      .NonEmpty()
      .DefaultText("the one built with this tree");
  f.Strings("server-flags", &o->server_flags, "LIST",
            "more flags, comma-separated, for the knnmem-server the bench "
            "starts, like --server-flags=--tier-int8-codes");
  f.String("json", &o->json_path, "FILE",
           "also write the results as a JSON array to FILE")
      .NonEmpty();
  f.Bool("quick", &o->quick,
         "about a minute on 2 cores: 3 runs per op, float16 and bfloat16 only "
         "at 8K, HNSW on 1 head (times x8), its adds timed up to 8K and its "
         "search only at the default efSearch, faiss-flat with default "
         "threads timed once at 64K, a smaller W-mixed");
  f.Int("reps", &o->reps, "N", "measured runs per op after one warm-up")
      .Range(1, 1000)
      .DefaultText("7, 3 with --quick");
  f.Choice("only", &o->only,
           {"W-streams", "W-large", "W-decode", "W-real", "W-client",
            "W-client-paired"},
           "run only this workload (the W-client ones run only when asked)");
  f.String("keys", &o->keys_dir, "DIR",
           "a dump of `knnmem-model dump-keys`: W-real runs on it (with the "
           "others, or alone with --only)")
      .NonEmpty();
  f.Strings("decode-shapes", &o->decode_shapes, "LIST",
            "W-decode runs only these of its shapes: comma-separated "
            "ENTRIES:DTYPE[:approximate], like 1024:float32,65536:float16");
  f.Ints("real-entries", &o->real_entries, "LIST",
         "W-real's memory sizes (keys per head), comma-separated")
      .DefaultText("65536,262144; 65536 with --quick");
  f.Ints("real-tails", &o->real_tails, "LIST",
         "W-real's exact tails, comma-separated: its grid's, and its decode "
         "rows' (the server's default without the flag)")
      .DefaultText("16384,4096,1024; 16384 with --quick");
  f.Bool("help", &o->help, "print this text and exit");
  return f;
}

std::string BenchHelp() {
  BenchOptions defaults;
  return absl::StrCat(
      "knnmem-bench: the knnmem reference workloads, with FAISS, cblas_sgemm "
      "and\nRocksDB measured in the same run on the same data.\n\n"
      "Usage: knnmem-bench [flags]\n\n",
      BenchFlags(&defaults).Help(), "\n", kWorkloads);
}

absl::StatusOr<BenchOptions> ParseBenchOptions(
    const std::vector<std::string>& args,
    const std::string& default_server_binary) {
  BenchOptions o;
  o.server_binary = default_server_binary;
  if (absl::Status s = BenchFlags(&o).Parse(args); !s.ok()) return s;
  if (!o.servers_spec.empty()) {
    absl::StatusOr<std::vector<client::ServerAddress>> servers =
        client::ParseServerList(o.servers_spec);
    if (!servers.ok()) return servers.status();  // names --servers
    o.servers = std::move(*servers);
  }
  if (!o.server.empty() && !o.servers.empty()) {
    return absl::InvalidArgumentError("give --server or --servers, not both");
  }
  for (int64_t e : o.real_entries) {
    if (e < 1024) {
      return absl::InvalidArgumentError(
          absl::StrCat("--real-entries: ", e, " is not a size >= 1024"));
    }
  }
  for (int64_t t : o.real_tails) {
    if (t < 1) {
      return absl::InvalidArgumentError(
          absl::StrCat("--real-tails: ", t, " is not a tail >= 1"));
    }
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
  if (running && !o.server_flags.empty()) {
    return absl::InvalidArgumentError(
        "--server-flags: only for the server this benchmark starts (not with "
        "--server or --servers)");
  }
  return o;
}

}  // namespace knnmem::bench
