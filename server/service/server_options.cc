#include "server/service/server_options.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

bool HasPort(absl::string_view address) {
  return address.rfind(':') != absl::string_view::npos;
}

}  // namespace

FlagSet ServerFlags(ServerOptions* o) {
  FlagSet f;
  // Every *-seconds flag: up to 2^30 seconds.
  auto seconds = [&f](absl::string_view name, uint32_t* dest,
                      absl::string_view help) {
    f.Int(name, dest, "N", help).Range(0, 1 << 30);
  };
  f.String("listen", &o->listen, "HOST:PORT",
           "gRPC address; port 0 picks a free port, printed in the ready line")
      .Check("HOST:PORT", HasPort);
  f.String("data-dir", &o->data_dir, "DIR",
           "RocksDB directory, created if missing")
      .NonEmpty();
  f.Int("shards", &o->shards, "N",
        "in-process shards; a stream lives in the shard of its id's hash")
      .Range(1, 4096);
  f.Int("workers", &o->workers, "N",
        "worker threads for search and storage work (0: one per core)")
      .Range(0, 1024);
  f.Int("max-message-bytes", &o->max_message_bytes, "N",
        "largest request or response, in bytes")
      .Range(4096, (int64_t{2} << 30) - 1);
  f.Int("max-inflight-requests", &o->max_inflight_requests, "N",
        "requests admitted at once; more get RESOURCE_EXHAUSTED at once (0: "
        "no limit)")
      .Range(0, int64_t{1} << 50);
  f.Int("max-inflight-bytes", &o->max_inflight_bytes, "N",
        "request bytes admitted at once (0: no limit; one request alone is "
        "always admitted)")
      .Range(0, int64_t{1} << 50);
  f.Bytes("transport-memory", &o->transport_memory_bytes,
          "memory gRPC may buffer for requests still arriving (0: no limit; "
          "at least --max-message-bytes): past it gRPC resets the streams "
          "holding the most (the client sees RESOURCE_EXHAUSTED or "
          "UNAVAILABLE). gRPC checks a request's size only once it has all "
          "arrived");
  seconds("max-connection-idle-seconds", &o->max_connection_idle_seconds,
          "close connections with no call for N seconds (GOAWAY; clients "
          "reconnect on their next call; 0: never)");
  seconds("max-connection-age-seconds", &o->max_connection_age_seconds,
          "send GOAWAY to connections N seconds old (0: never); their calls "
          "then get --max-connection-age-grace-seconds to finish");
  seconds("max-connection-age-grace-seconds",
          &o->max_connection_age_grace_seconds,
          "seconds the calls of a connection past its age get to finish "
          "before it is closed (0: no limit): no call, and no slow client "
          "trickling a request, outlives age + grace");
  f.String("metrics-address", &o->metrics_address, "HOST:PORT",
           "Prometheus metrics endpoint, on its own port (port 0 picks a free "
           "port; \"none\" turns metrics off)")
      .Check("HOST:PORT or none",
             [](absl::string_view v) { return v == "none" || HasPort(v); });
  f.String("auth-token-file", &o->auth_token_file, "FILE",
           "bearer tokens, one \"TOKEN rw|ro [tenant=NAME] [name=LABEL]\" per "
           "line; every RPC but health then needs \"authorization: Bearer "
           "TOKEN\", read-only tokens get PERMISSION_DENIED on writes, and a "
           "tenant's token reaches only ids \"NAME/...\" (others are "
           "admins); \"quota NAME streams=N ram=BYTES disk=BYTES\" lines "
           "bound a tenant's streams at capacity; SIGHUP reloads it "
           "(reflection is off)")
      .NonEmpty();
  f.String("tls-cert", &o->tls_cert, "FILE",
           "serve TLS with this PEM certificate chain (with --tls-key)")
      .NonEmpty();
  f.String("tls-key", &o->tls_key, "FILE", "the PEM private key of --tls-cert")
      .NonEmpty();
  f.String("tls-client-ca", &o->tls_client_ca, "FILE",
           "require client certificates signed by this CA (mutual TLS)")
      .NonEmpty();
  f.Bool("insecure", &o->insecure,
         "allow a non-loopback --listen address without authentication (a "
         "token file or mutual TLS)");
  f.Bytes("memory-budget", &o->memory_budget_bytes,
          "RAM the server may take, like 16GiB or 512MiB (0: no limit): "
          "RocksDB, the server's own RSS and each stream's bookkeeping "
          "first, then keys and values; past it the least recently used "
          "idle streams are unloaded (RocksDB keeps them) and load again on "
          "next use; an Append the streams in use leave no room for gets "
          "RESOURCE_EXHAUSTED");
  f.Bytes("disk-reserve", &o->disk_reserve_bytes,
          "disk space kept free on the data dir's disk besides what RocksDB "
          "needs to flush what it holds: a create, reset or append that "
          "would leave less gets RESOURCE_EXHAUSTED naming the disk, and "
          "writes resume once there is room; reads and deletes go on");
  f.Int("descriptor-reserve", &o->descriptor_reserve, "N",
        "file descriptors held back for RocksDB (0: none): when connections "
        "have taken every other one, RocksDB opens its files with these and "
        "keeps writing, while new connections wait")
      .Range(0, 4096);
  f.Bool("exact-int8-codes", &o->exact_int8_codes,
         "every stream keeps an int8 copy of its keys beside them (key_dim + "
         "4 bytes of RAM per entry and head: +26% of float32 keys of 128, "
         "+13% of keys and values): a decode step's few queries read the "
         "copy, a quarter of the float32 bytes, and score again in float32 "
         "only the keys that may enter the top k, with the same answers");
  f.Bool("tier-int8-codes", &o->tier_int8_codes,
         "APPROXIMATE streams' tiers keep an int8 copy of their keys in list "
         "order (key_dim + 4 bytes of RAM per indexed entry and head, about "
         "a quarter more than float16 keys and values): a decode step's "
         "few queries read it instead of the keys scattered over RAM, and "
         "score again only the keys that may enter the top k, with the "
         "same answers");
  f.Enum("wal-recovery", &o->wal_recovery, WalRecoveryNames(),
         "what start does with a WAL damaged in the middle (a torn tail, "
         "which a crash leaves, is always dropped): point-in-time replays up "
         "to the damage and drops every later record; absolute-consistency "
         "refuses to start; skip-any-corrupted replays every intact record. "
         "The damaged files are kept in DATA_DIR/damaged-wal-SECONDS/ and "
         "the server says so on stderr and in knnmem_storage_wal_damaged");
  seconds("stream-ttl-seconds", &o->stream_ttl_seconds,
          "delete streams idle (no create, append, search, attend or reset) "
          "for N seconds, unless their spec sets its own ttl_seconds (0: "
          "never)");
  seconds("drain-seconds", &o->drain_seconds,
          "on SIGTERM, report NOT_SERVING on health and keep serving for N "
          "seconds before stopping");
  seconds("grace-seconds", &o->grace_seconds,
          "then give in-flight calls up to N seconds to finish");
  f.Bool("help", &o->help, "print this text and exit");
  return f;
}

std::string ServerHelp() {
  ServerOptions defaults;
  return absl::StrCat(
      "knnmem-server: external memory for Memorizing Transformers, over "
      "gRPC.\n\nUsage: knnmem-server [flags]\n\n",
      ServerFlags(&defaults).Help(),
      "\nThe server logs one line starting \"knnmem-server: serving on\" when "
      "ready.\nSIGTERM or SIGINT stops it after in-flight calls finish.\n");
}

absl::StatusOr<ServerOptions> ParseServerOptions(
    const std::vector<std::string>& args) {
  ServerOptions o;
  if (absl::Status s = ServerFlags(&o).Parse(args); !s.ok()) return s;
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
