// Command-line options of knnmem-server.
#ifndef KNNMEM_SERVER_SERVICE_SERVER_OPTIONS_H_
#define KNNMEM_SERVER_SERVICE_SERVER_OPTIONS_H_

#include <cstddef>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "base/flags.h"
#include "server/storage/storage.h"

namespace knnmem {

struct ServerOptions {
  std::string listen = "127.0.0.1:50051";
  std::string data_dir = "./data";
  int shards = 16;
  int workers = 0;  // 0: one per core
  size_t max_message_bytes = size_t{256} << 20;
  // Admission limits on work in flight (0: unlimited).
  size_t max_inflight_requests = 1024;
  uint64_t max_inflight_bytes = uint64_t{1} << 30;
  // Memory gRPC's transport may take for requests not yet handed to the
  // service (a gRPC ResourceQuota; 0: no limit); see --help.
  uint64_t transport_memory_bytes = uint64_t{1} << 30;
  // Connections idle (no call) this long get GOAWAY; connections get GOAWAY
  // at this age, and their calls then get the grace to finish (0: never).
  uint32_t max_connection_idle_seconds = 900;
  uint32_t max_connection_age_seconds = 1800;
  uint32_t max_connection_age_grace_seconds = 300;
  // Prometheus metrics endpoint; "none" turns it off.
  std::string metrics_address = "127.0.0.1:9464";
  // Allows listening on a non-loopback address without authentication.
  bool insecure = false;
  // Bearer tokens ("TOKEN rw|ro" per line); empty: no token auth.
  std::string auth_token_file;
  // TLS: PEM files. With tls_client_ca, clients must present a certificate
  // signed by that CA (mutual TLS).
  std::string tls_cert;
  std::string tls_key;
  std::string tls_client_ca;
  // Idle TTL of streams whose spec says 0; 0 = never expire.
  uint32_t stream_ttl_seconds = 0;
  // RAM the streams' entries may take (0: no limit); see --help.
  uint64_t memory_budget_bytes = 0;
  // Disk space kept free on the data dir's disk (see --help).
  uint64_t disk_reserve_bytes = uint64_t{128} << 20;
  // What start does with a WAL damaged in the middle (see --help).
  WalRecovery wal_recovery = WalRecovery::kPointInTime;
  // File descriptors held back for RocksDB, lent to it when connections
  // took every other one (see --help).
  int descriptor_reserve = 64;
  // APPROXIMATE tiers keep int8 codes of their keys (see --help).
  bool tier_int8_codes = false;
  // Every layer's blocks keep int8 codes of their keys (see --help).
  bool exact_int8_codes = false;
  // After SIGTERM: seconds to keep serving while health says NOT_SERVING,
  // then seconds in-flight calls get to finish.
  uint32_t drain_seconds = 0;
  uint32_t grace_seconds = 20;
  bool help = false;
};

// The flags of knnmem-server, each writing into *o; o's values are the
// defaults that help shows.
FlagSet ServerFlags(ServerOptions* o);

// Parses args (argv without the program name) with ServerFlags, then checks
// the rules between flags (TLS files go together, --transport-memory holds
// one request, a non-loopback --listen needs authentication or
// --insecure). Every error is INVALID_ARGUMENT naming the flag (base/flags.h
// words them).
absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args);

// True when `listen` (HOST:PORT) names a loopback host: localhost,
// 127.0.0.0/8 or [::1].
bool IsLoopback(const std::string& listen);

// The text --help prints: every flag of ServerFlags, with its default.
std::string ServerHelp();

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_SERVER_OPTIONS_H_
