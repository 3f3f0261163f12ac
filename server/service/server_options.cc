#include "server/service/server_options.h"

#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

absl::Status BadValue(absl::string_view flag, absl::string_view value,
                      absl::string_view want) {
  return absl::InvalidArgumentError(
      absl::StrCat("--", flag, ": '", value, "' is not ", want));
}

// The field of a flag given in seconds, or null.
uint32_t* SecondsFlag(absl::string_view name, ServerOptions* o) {
  if (name == "stream-ttl-seconds") return &o->stream_ttl_seconds;
  if (name == "drain-seconds") return &o->drain_seconds;
  if (name == "grace-seconds") return &o->grace_seconds;
  if (name == "max-connection-idle-seconds") {
    return &o->max_connection_idle_seconds;
  }
  if (name == "max-connection-age-seconds") {
    return &o->max_connection_age_seconds;
  }
  if (name == "max-connection-age-grace-seconds") {
    return &o->max_connection_age_grace_seconds;
  }
  return nullptr;
}

}  // namespace

absl::StatusOr<uint64_t> ParseBytes(absl::string_view text) {
  static constexpr struct {
    const char* suffix;
    uint64_t scale;
  } kUnits[] = {{"TiB", uint64_t{1} << 40},
                {"GiB", uint64_t{1} << 30},
                {"MiB", uint64_t{1} << 20},
                {"KiB", uint64_t{1} << 10},
                {"B", 1}};
  uint64_t scale = 1;
  absl::string_view digits = text;
  for (const auto& unit : kUnits) {
    if (absl::EndsWith(text, unit.suffix)) {
      scale = unit.scale;
      digits.remove_suffix(std::char_traits<char>::length(unit.suffix));
      break;
    }
  }
  uint64_t n = 0;
  if (digits.empty() || !absl::SimpleAtoi(digits, &n) ||
      n > (uint64_t{1} << 60) / scale) {
    return absl::InvalidArgumentError(
        absl::StrCat("'", text, "' is not a byte count"));
  }
  return n * scale;
}

std::string ServerHelp() {
  return R"(knnmem-server: external memory for Memorizing Transformers, over gRPC.

Usage: knnmem-server [flags]

  --listen=HOST:PORT        gRPC address (default 127.0.0.1:50051; port 0
                            picks a free port, printed in the ready line)
  --data-dir=DIR            RocksDB directory, created if missing (default ./data)
  --shards=N                in-process shards; a stream lives in the shard of
                            its id's hash (default 16)
  --workers=N               worker threads for search and storage work
                            (default 0 = one per core)
  --max-message-bytes=N     largest request or response in bytes
                            (default 268435456 = 256 MiB)
  --max-inflight-requests=N requests admitted at once; more get
                            RESOURCE_EXHAUSTED at once (default 1024, 0 = no limit)
  --max-inflight-bytes=N    request bytes admitted at once (default 1073741824
                            = 1 GiB, 0 = no limit; one request alone is always
                            admitted)
  --transport-memory=BYTES  memory gRPC may buffer for requests still
                            arriving (default 1GiB, 0 = no limit; at least
                            --max-message-bytes): past it gRPC resets the
                            streams holding the most (the client sees
                            RESOURCE_EXHAUSTED or UNAVAILABLE). gRPC checks a
                            request's size only once it has all arrived
  --max-connection-idle-seconds=N
                            close connections with no call for N seconds
                            (GOAWAY; clients reconnect on their next call;
                            default 900, 0 = never)
  --max-connection-age-seconds=N
                            send GOAWAY to connections N seconds old (default
                            1800, 0 = never); their calls then get
  --max-connection-age-grace-seconds=N
                            seconds to finish before the connection is closed
                            (default 300, 0 = no limit): no call, and no slow
                            client trickling a request, outlives age + grace
  --metrics-address=HOST:PORT
                            Prometheus metrics endpoint, on its own port
                            (default 127.0.0.1:9464; port 0 picks a free port;
                            "none" turns metrics off)
  --auth-token-file=FILE    bearer tokens, one "TOKEN rw|ro [tenant=NAME]
                            [name=LABEL]" per line; every RPC but health then
                            needs "authorization: Bearer TOKEN", read-only
                            tokens get PERMISSION_DENIED on writes, and a
                            tenant's token reaches only ids "NAME/..." (others
                            are admins); "quota NAME streams=N ram=BYTES
                            disk=BYTES" lines bound a tenant's streams at
                            capacity; SIGHUP reloads it (reflection is off)
  --tls-cert=FILE --tls-key=FILE
                            serve TLS with this PEM certificate chain and key
  --tls-client-ca=FILE      require client certificates signed by this CA
                            (mutual TLS)
  --insecure                allow a non-loopback --listen address without
                            authentication (a token file or mutual TLS)
  --memory-budget=BYTES     RAM the server may take, like 16GiB or 512MiB
                            (default 0 = no limit): RocksDB, the server's own
                            RSS and each stream's bookkeeping first, then
                            keys and values; past it
                            the least recently used idle streams are unloaded
                            (RocksDB keeps them) and load again on next use;
                            an Append the streams in use leave no room for
                            gets RESOURCE_EXHAUSTED
  --disk-reserve=BYTES      disk space kept free on the data dir's disk
                            (default 128MiB) besides what RocksDB needs to
                            flush what it holds: a create, reset or append
                            that would leave less gets RESOURCE_EXHAUSTED
                            naming the disk, and writes resume once there is
                            room; reads and deletes go on
  --descriptor-reserve=N    file descriptors held back for RocksDB (default
                            64, 0 = none): when connections have taken every
                            other one, RocksDB opens its files with these
                            and keeps writing, while new connections wait
  --wal-recovery=MODE       what start does with a WAL damaged in the middle
                            (a torn tail, which a crash leaves, is always
                            dropped): point-in-time (default) replays up to
                            the damage and drops every later record;
                            absolute-consistency refuses to start;
                            skip-any-corrupted replays every intact record.
                            The damaged files are kept in
                            DATA_DIR/damaged-wal-SECONDS/ and the server says
                            so on stderr and in knnmem_storage_wal_damaged
  --stream-ttl-seconds=N    delete streams idle (no create, append, search,
                            attend or reset) for N seconds, unless their spec
                            sets its own ttl_seconds (default 0 = never)
  --drain-seconds=N         on SIGTERM, report NOT_SERVING on health and keep
                            serving for N seconds before stopping (default 0)
  --grace-seconds=N         then give in-flight calls up to N seconds to
                            finish (default 20)
  --help                    print this text and exit

The server logs one line starting "knnmem-server: serving on" when ready.
SIGTERM or SIGINT stops it after in-flight calls finish.
)";
}

absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args) {
  ServerOptions o;
  for (size_t i = 0; i < args.size(); ++i) {
    std::string arg = args[i];
    if (arg == "--help" || arg == "-h") {
      o.help = true;
      continue;
    }
    if (arg == "--insecure") {
      o.insecure = true;
      continue;
    }
    if (!absl::StartsWith(arg, "--")) {
      return absl::InvalidArgumentError(
          absl::StrCat("unexpected argument '", arg, "' (see --help)"));
    }
    std::string name = arg.substr(2), value;
    const size_t eq = name.find('=');
    if (eq != std::string::npos) {
      value = name.substr(eq + 1);
      name = name.substr(0, eq);
    } else if (i + 1 < args.size()) {
      value = args[++i];
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("--", name, ": missing value"));
    }
    if (name == "listen") {
      if (value.rfind(':') == std::string::npos) {
        return BadValue(name, value, "HOST:PORT");
      }
      o.listen = value;
    } else if (uint32_t* seconds = SecondsFlag(name, &o)) {
      if (!absl::SimpleAtoi(value, seconds) || *seconds > (1u << 30)) {
        return BadValue(name, value, "a number of seconds");
      }
    } else if (name == "max-inflight-requests" ||
               name == "max-inflight-bytes") {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(value, &v) || v > (uint64_t{1} << 50)) {
        return BadValue(name, value, "a non-negative integer");
      }
      if (name == "max-inflight-requests") {
        o.max_inflight_requests = static_cast<size_t>(v);
      } else {
        o.max_inflight_bytes = v;
      }
    } else if (name == "memory-budget" || name == "disk-reserve" ||
               name == "transport-memory") {
      absl::StatusOr<uint64_t> bytes = ParseBytes(value);
      if (!bytes.ok()) {
        return BadValue(name, value, "bytes, like 16GiB, 512MiB or 0 (none)");
      }
      (name == "memory-budget"  ? o.memory_budget_bytes
       : name == "disk-reserve" ? o.disk_reserve_bytes
                                : o.transport_memory_bytes) = *bytes;
    } else if (name == "wal-recovery") {
      absl::StatusOr<WalRecovery> mode = ParseWalRecovery(value);
      if (!mode.ok()) {
        return BadValue(
            name, value,
            "point-in-time, absolute-consistency or skip-any-corrupted");
      }
      o.wal_recovery = *mode;
    } else if (name == "metrics-address") {
      if (value != "none" && value.rfind(':') == std::string::npos) {
        return BadValue(name, value, "HOST:PORT or none");
      }
      o.metrics_address = value;
    } else if (name == "auth-token-file" || name == "tls-cert" ||
               name == "tls-key" || name == "tls-client-ca") {
      if (value.empty()) return BadValue(name, value, "a file");
      (name == "auth-token-file" ? o.auth_token_file
       : name == "tls-cert"      ? o.tls_cert
       : name == "tls-key"       ? o.tls_key
                                 : o.tls_client_ca) = value;
    } else if (name == "data-dir") {
      if (value.empty()) return BadValue(name, value, "a directory");
      o.data_dir = value;
    } else if (name == "shards") {
      if (!absl::SimpleAtoi(value, &o.shards) || o.shards < 1 ||
          o.shards > 4096) {
        return BadValue(name, value, "an integer in [1, 4096]");
      }
    } else if (name == "descriptor-reserve") {
      if (!absl::SimpleAtoi(value, &o.descriptor_reserve) ||
          o.descriptor_reserve < 0 || o.descriptor_reserve > 4096) {
        return BadValue(name, value, "an integer in [0, 4096]");
      }
    } else if (name == "workers") {
      if (!absl::SimpleAtoi(value, &o.workers) || o.workers < 0 ||
          o.workers > 1024) {
        return BadValue(name, value, "an integer in [0, 1024]");
      }
    } else if (name == "max-message-bytes") {
      uint64_t v = 0;
      if (!absl::SimpleAtoi(value, &v) || v < 4096 ||
          v > (uint64_t{2} << 30) - 1) {
        return BadValue(name, value, "an integer in [4096, 2^31)");
      }
      o.max_message_bytes = static_cast<size_t>(v);
    } else {
      return absl::InvalidArgumentError(
          absl::StrCat("unknown flag --", name, " (see --help)"));
    }
  }
  if (o.transport_memory_bytes != 0 &&
      o.transport_memory_bytes < o.max_message_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--transport-memory: ", o.transport_memory_bytes,
                     " bytes cannot hold one request of --max-message-bytes ",
                     o.max_message_bytes));
  }
  if (o.tls_cert.empty() != o.tls_key.empty()) {
    return absl::InvalidArgumentError("--tls-cert and --tls-key go together");
  }
  if (!o.tls_client_ca.empty() && o.tls_cert.empty()) {
    return absl::InvalidArgumentError(
        "--tls-client-ca needs --tls-cert and --tls-key");
  }
  const bool authenticated =
      !o.auth_token_file.empty() || !o.tls_client_ca.empty();
  if (!o.help && !o.insecure && !authenticated && !IsLoopback(o.listen)) {
    return absl::InvalidArgumentError(absl::StrCat(
        "--listen: ", o.listen,
        " is not a loopback address; serving it without authentication "
        "(--auth-token-file or --tls-client-ca) needs --insecure"));
  }
  return o;
}

bool IsLoopback(const std::string& listen) {
  const std::string host = listen.substr(0, listen.rfind(':'));
  return host == "localhost" || host == "[::1]" ||
         absl::StartsWith(host, "127.");
}

}  // namespace knnmem
