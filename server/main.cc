// knnmem-server: serves MemoryStore over gRPC until SIGTERM or SIGINT.
#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <malloc.h>
#include <signal.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <cstdlib>
#include <fstream>
#include <iterator>
#include <optional>
#include <thread>

#include "absl/strings/str_cat.h"
#include "absl/synchronization/mutex.h"
#include "absl/synchronization/notification.h"
#include "absl/time/time.h"
#include "server/search/exact_search.h"
#include "server/service/auth.h"
#include "server/service/memory_service.h"
#include "server/service/metrics.h"
#include "server/service/server_options.h"
#include "server/store/memory_store.h"

namespace {

int Fail(const std::string& message) {
  std::fprintf(stderr, "knnmem-server: %s\n", message.c_str());
  return 1;
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* flag) {
  std::ifstream in(path);
  if (!in)
    return absl::NotFoundError(
        absl::StrCat(flag, ": cannot read '", path, "'"));
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> TlsCredentials(
    const knnmem::ServerOptions& o) {
  grpc::SslServerCredentialsOptions ssl;
  absl::StatusOr<std::string> cert = ReadFile(o.tls_cert, "--tls-cert");
  if (!cert.ok()) return cert.status();
  absl::StatusOr<std::string> key = ReadFile(o.tls_key, "--tls-key");
  if (!key.ok()) return key.status();
  ssl.pem_key_cert_pairs.push_back({*key, *cert});
  if (!o.tls_client_ca.empty()) {
    absl::StatusOr<std::string> ca =
        ReadFile(o.tls_client_ca, "--tls-client-ca");
    if (!ca.ok()) return ca.status();
    ssl.pem_root_certs = *ca;
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

}  // namespace

int main(int argc, char** argv) {
  // absl's deadlock detector (on in Debian's build) keeps a graph of every
  // mutex ever locked: with thousands of streams it costs a tenth of the
  // CPU. The tests run with it.
  absl::SetMutexDeadlockDetectionMode(absl::OnDeadlockCycle::kIgnore);
  // Block the stop signals before any thread starts, so that every thread
  // inherits the mask and main alone receives them through sigwait.
  sigset_t stop_signals;
  sigemptyset(&stop_signals);
  sigaddset(&stop_signals, SIGTERM);
  sigaddset(&stop_signals, SIGINT);
  pthread_sigmask(SIG_BLOCK, &stop_signals, nullptr);

  absl::StatusOr<knnmem::ServerOptions> options = knnmem::ParseServerOptions(
      std::vector<std::string>(argv + 1, argv + argc));
  if (!options.ok()) {
    std::fprintf(stderr, "knnmem-server: %s\n",
                 std::string(options.status().message()).c_str());
    return 2;
  }
  if (options->help) {
    std::fputs(knnmem::ServerHelp().c_str(), stdout);
    return 0;
  }
  knnmem::PinBlasToOneThread();
  if (options->memory_budget_bytes > 0) {
    // glibc gives each busy thread its own arena, and memory freed in one
    // (an unloaded stream) is not reused by another: with a budget, RSS
    // would run well past it. One arena per core keeps it close
    // (W-streams: 1.22x -> 1.08x the budget above the idle server).
    mallopt(M_ARENA_MAX, static_cast<int>(std::max(
                             2u, std::thread::hardware_concurrency())));
  }
  const int workers =
      options->workers > 0
          ? options->workers
          : static_cast<int>(std::max(1u, std::thread::hardware_concurrency()));
  knnmem::WorkerPool pool(workers);

  const auto start = std::chrono::steady_clock::now();
  // Loads happen on requests only, after `metrics` exists.
  knnmem::Metrics* metrics_for_loads = nullptr;
  knnmem::MemoryStore::Options store_options;
  store_options.data_dir = options->data_dir;
  store_options.shards = options->shards;
  store_options.pool = &pool;
  store_options.default_ttl_seconds = options->stream_ttl_seconds;
  store_options.memory_budget_bytes = options->memory_budget_bytes;
  store_options.on_load = [&metrics_for_loads](double seconds) {
    if (metrics_for_loads != nullptr) {
      metrics_for_loads->ObserveStreamLoad(seconds);
    }
  };
  absl::StatusOr<std::unique_ptr<knnmem::MemoryStore>> store =
      knnmem::MemoryStore::Open(store_options);
  if (!store.ok()) return Fail(std::string(store.status().message()));
  const double recover_ms = std::chrono::duration<double, std::milli>(
                                std::chrono::steady_clock::now() - start)
                                .count();

  knnmem::MemoryStore* const core = store->get();
  // Scrapes sample the store until it closes; stopping the metrics HTTP
  // server instead would wait on civetweb's polling (seconds).
  knnmem::Mutex sample_mu;
  bool store_open = true;
  knnmem::Metrics metrics([core, &pool, &sample_mu, &store_open, &options] {
    knnmem::ServerSample s;
    knnmem::MutexLock lock(&sample_mu);
    if (!store_open) return s;
    const knnmem::StoreTotals totals = core->Totals();
    s.streams = totals.streams;
    s.stored_vectors = totals.stored_vectors;
    s.ram_bytes = totals.ram_bytes;
    s.resident_streams = totals.resident_streams;
    s.memory_budget_bytes = options->memory_budget_bytes;
    s.stream_unloads = core->residency().unloads;
    s.disk_bytes = core->storage().ApproximateBytesOnDisk();
    s.worker_queue_depth = pool.queue_depth();
    s.rocksdb_write_stall_micros = core->storage().WriteStallMicros();
    s.rocksdb_compaction_pending_bytes =
        core->storage().CompactionPendingBytes();
    return s;
  });
  metrics_for_loads = &metrics;
  std::string metrics_at = "off";
  if (options->metrics_address != "none") {
    absl::StatusOr<int> metrics_port = metrics.Serve(options->metrics_address);
    if (!metrics_port.ok()) {
      return Fail(std::string(metrics_port.status().message()));
    }
    metrics_at = absl::StrCat(
        options->metrics_address.substr(0, options->metrics_address.rfind(':')),
        ":", *metrics_port);
  }
  std::optional<knnmem::TokenAuth> auth;
  if (!options->auth_token_file.empty()) {
    absl::StatusOr<knnmem::TokenAuth> loaded =
        knnmem::TokenAuth::Load(options->auth_token_file);
    if (!loaded.ok()) return Fail(std::string(loaded.status().message()));
    auth = std::move(*loaded);
  }
  std::shared_ptr<grpc::ServerCredentials> credentials =
      grpc::InsecureServerCredentials();
  if (!options->tls_cert.empty()) {
    absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> tls =
        TlsCredentials(*options);
    if (!tls.ok()) return Fail(std::string(tls.status().message()));
    credentials = *tls;
  }
  knnmem::MemoryService::Limits limits;
  limits.auth = auth ? &*auth : nullptr;
  limits.max_message_bytes = options->max_message_bytes;
  limits.max_inflight_requests = options->max_inflight_requests;
  limits.max_inflight_bytes = options->max_inflight_bytes;
  knnmem::MemoryService service(core, &pool, &metrics, limits);
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection cannot check tokens: it is on only when auth is off.
  if (!auth) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  int port = 0;
  builder.AddListeningPort(options->listen, credentials, &port);
  builder.RegisterService(&service);
  // gRPC sets SO_REUSEPORT by default: a second server on the same address
  // would start, and the kernel would split new connections between the
  // two. Refuse instead.
  builder.AddChannelArgument(GRPC_ARG_ALLOW_REUSEPORT, 0);
  // Appends and answers are megabytes: a large HTTP/2 window and frames
  // save flow-control round trips on every call.
  builder.AddChannelArgument(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
  builder.AddChannelArgument(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1);
  // Twice the limit on the transport: MemoryService refuses what is over the
  // limit itself, with a message that names the field.
  builder.SetMaxReceiveMessageSize(static_cast<int>(
      std::min<size_t>(2 * options->max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(options->max_message_bytes));
  std::unique_ptr<grpc::Server> server = builder.BuildAndStart();
  if (server == nullptr || port == 0) {
    return Fail(absl::StrCat("cannot listen on ", options->listen,
                             " (in use by another process, or not an address "
                             "of this host)"));
  }
  if (options->memory_budget_bytes > 0) {
    // The budget bounds the process: what it holds now, serving with no
    // stream loaded (less the streams' own bookkeeping, counted per
    // stream), is not the streams'.
    const int64_t streams = static_cast<int64_t>(core->stream_count()) *
                            knnmem::MemoryStore::kBytesPerStream;
    core->ReserveForServer(static_cast<uint64_t>(std::max<int64_t>(
        0, static_cast<int64_t>(knnmem::ResidentMemoryBytes()) - streams)));
  }
  const std::string host =
      options->listen.substr(0, options->listen.rfind(':'));
  std::printf(
      "knnmem-server: serving on %s:%d (metrics on %s, data dir %s, %zu "
      "streams recovered in %.0f ms, %d workers, %d shards)\n",
      host.c_str(), port, metrics_at.c_str(), options->data_dir.c_str(),
      core->stream_count(), recover_ms, workers, options->shards);
  std::fflush(stdout);

  // Idle streams are deleted in the background, once a second.
  absl::Notification stopping;
  std::thread reaper([&] {
    while (!stopping.WaitForNotificationWithTimeout(absl::Seconds(1))) {
      const size_t n = core->DeleteIdleStreams();
      if (n > 0) std::printf("knnmem-server: deleted %zu idle stream(s)\n", n);
    }
  });

  int signal = 0;
  sigwait(&stop_signals, &signal);
  std::printf(
      "knnmem-server: signal %d: draining for %u s, then up to %u s for "
      "in-flight calls\n",
      signal, options->drain_seconds, options->grace_seconds);
  std::fflush(stdout);
  server->GetHealthCheckService()->SetServingStatus(false);
  std::this_thread::sleep_for(std::chrono::seconds(options->drain_seconds));
  server->Shutdown(std::chrono::system_clock::now() +
                   std::chrono::seconds(options->grace_seconds));
  server->Wait();  // every call has finished
  stopping.Notify();
  reaper.join();
  pool.WaitIdle();  // and so has every task on the pool
  {
    knnmem::MutexLock lock(
        &sample_mu);  // no scrape samples the store from here on
    store_open = false;
    store->reset();  // closes RocksDB: everything acknowledged is durable
  }
  std::printf("knnmem-server: stopped\n");
  std::fflush(stdout);
  // Destroying the grpc::Server waits for idle clients to acknowledge the
  // GOAWAY, which an idle gRPC client does only on its 5 s backup poll.
  // Nothing is left to flush, so exit without it.
  std::_Exit(0);
}
