// Command-line options of knnmem-bench.
//
// Contract: ParseBenchOptions parses with BenchFlags (base/flags.h: the
// syntax, and errors that name the flag), then checks the rules between
// flags; every error is INVALID_ARGUMENT naming a flag. It never touches the
// file system.
#ifndef KNNMEM_BENCH_OPTIONS_H_
#define KNNMEM_BENCH_OPTIONS_H_

#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/flags.h"
#include "client/sharded_client.h"

namespace knnmem::bench {

struct BenchOptions {
  std::string server;  // HOST:PORT of a running server; empty: a child
  // --servers LIST (ParseServerList syntax), parsed; empty unless given.
  // Exclusive with `server`.
  std::string servers_spec;
  std::vector<client::ServerAddress> servers;
  std::string token_file;     // --token-file: the bearer token (whole file)
  std::string tls_ca;         // --tls-ca: PEM of the CA; TLS when set
  std::string server_binary;  // knnmem-server started when `server` is empty
  std::vector<std::string> server_flags;  // --server-flag: more of its flags
  std::string json_path;                  // --json FILE; empty: no JSON
  bool quick = false;                     // about a minute on 2 cores
  int reps = 0;  // measured runs per op after one warm-up; 0: 7 (3 quick)
  bool help = false;
  std::string only;      // --only: a workload's name; empty: everything
  std::string keys_dir;  // --keys: a dump-keys directory for W-real
  // --decode-shapes: W-decode's shapes to run, as ENTRIES:DTYPE or
  // ENTRIES:DTYPE:approximate (of DefaultDecodeShapes); empty: all.
  std::vector<std::string> decode_shapes;
  // --real-entries, --real-tails: W-real's memory sizes and exact tails
  // (empty: RealKeysConfig's).
  std::vector<int64_t> real_entries, real_tails;

  // The runs per measured op that apply (reps, or the mode's default).
  int EffectiveReps() const { return reps > 0 ? reps : (quick ? 3 : 7); }
};

// The flags of knnmem-bench, each writing into *o; o's values are the
// defaults (--server-binary's shows as "the one built with this tree").
FlagSet BenchFlags(BenchOptions* o);

// Parses argv[1..]; `default_server_binary` is the build-time path.
absl::StatusOr<BenchOptions> ParseBenchOptions(
    const std::vector<std::string>& args,
    const std::string& default_server_binary);

// The text --help prints: every flag of BenchFlags, then the workloads.
std::string BenchHelp();

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_OPTIONS_H_
