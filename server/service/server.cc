#include "server/service/server.h"

#include <grpcpp/ext/proto_server_reflection_plugin.h>
#include <grpcpp/grpcpp.h>
#include <grpcpp/health_check_service_interface.h>
#include <grpcpp/resource_quota.h>
#include <malloc.h>

#include <algorithm>
#include <chrono>
#include <cstdint>
#include <cstdio>
#include <fstream>
#include <iterator>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"

namespace knnmem {
namespace {

int WorkerCount(const ServerOptions& o) {
  return o.workers > 0 ? o.workers
                       : static_cast<int>(
                             std::max(1u, std::thread::hardware_concurrency()));
}

absl::StatusOr<std::string> ReadFile(const std::string& path,
                                     const char* flag) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat(flag, ": cannot read '", path, "'"));
  }
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

absl::StatusOr<std::shared_ptr<grpc::ServerCredentials>> Credentials(
    const ServerOptions& o) {
  if (o.tls_cert.empty()) return grpc::InsecureServerCredentials();
  grpc::SslServerCredentialsOptions ssl;
  ASSIGN_OR_RETURN(std::string cert, ReadFile(o.tls_cert, "--tls-cert"));
  ASSIGN_OR_RETURN(std::string key, ReadFile(o.tls_key, "--tls-key"));
  ssl.pem_key_cert_pairs.push_back({key, cert});
  if (!o.tls_client_ca.empty()) {
    ASSIGN_OR_RETURN(ssl.pem_root_certs,
                     ReadFile(o.tls_client_ca, "--tls-client-ca"));
    ssl.client_certificate_request =
        GRPC_SSL_REQUEST_AND_REQUIRE_CLIENT_CERTIFICATE_AND_VERIFY;
  }
  return grpc::SslServerCredentials(ssl);
}

std::string HostOf(const std::string& address) {
  return address.substr(0, address.rfind(':'));
}

}  // namespace

Server::Server(const ServerOptions& options)
    : options_(options), pool_(WorkerCount(options)) {}

absl::StatusOr<std::unique_ptr<Server>> Server::Start(
    const ServerOptions& options) {
  std::unique_ptr<Server> server(new Server(options));
  RETURN_IF_ERROR(server->Open());
  return server;
}

absl::Status Server::Open() {
  // Metrics first: the store reports each stream load to them.
  metrics_ = std::make_unique<Metrics>([this] { return Sample(); });
  const auto start = std::chrono::steady_clock::now();
  MemoryStore::Options store_options;
  store_options.data_dir = options_.data_dir;
  store_options.shards = options_.shards;
  store_options.pool = &pool_;
  store_options.default_ttl_seconds = options_.stream_ttl_seconds;
  store_options.memory_budget_bytes = options_.memory_budget_bytes;
  store_options.disk_reserve_bytes = options_.disk_reserve_bytes;
  store_options.wal_recovery = options_.wal_recovery;
  store_options.descriptor_reserve = options_.descriptor_reserve;
  store_options.tier.int8_codes = options_.tier_int8_codes;
  store_options.layer.int8_codes = options_.exact_int8_codes;
  Metrics* metrics = metrics_.get();
  store_options.on_load = [metrics](double seconds) {
    metrics->ObserveStreamLoad(seconds);
  };
  {
    ASSIGN_OR_RETURN(std::unique_ptr<MemoryStore> store,
                     MemoryStore::Open(store_options));
    MutexLock lock(&store_mu_);
    store_ = std::move(store);
    core_ = store_.get();
  }
  recover_ms_ = std::chrono::duration<double, std::milli>(
                    std::chrono::steady_clock::now() - start)
                    .count();
  streams_recovered_ = core_->stream_count();

  if (options_.metrics_address != "none") {
    ASSIGN_OR_RETURN(int metrics_port,
                     metrics_->Serve(options_.metrics_address));
    metrics_address_ =
        absl::StrCat(HostOf(options_.metrics_address), ":", metrics_port);
  }
  if (!options_.auth_token_file.empty()) {
    ASSIGN_OR_RETURN(tokens_, TokenFile::Open(options_.auth_token_file));
  }
  ASSIGN_OR_RETURN(std::shared_ptr<grpc::ServerCredentials> credentials,
                   Credentials(options_));

  MemoryService::Limits limits;
  limits.tokens = tokens_.get();
  limits.max_message_bytes = options_.max_message_bytes;
  limits.max_inflight_requests = options_.max_inflight_requests;
  limits.max_inflight_bytes = options_.max_inflight_bytes;
  {
    MutexLock lock(&store_mu_);  // scrapes read service_ under it
    service_ =
        std::make_unique<MemoryService>(core_, &pool_, metrics_.get(), limits);
  }
  grpc::EnableDefaultHealthCheckService(true);
  // Reflection cannot check tokens: it is on only when auth is off.
  if (!tokens_) grpc::reflection::InitProtoReflectionServerBuilderPlugin();
  grpc::ServerBuilder builder;
  builder.AddListeningPort(options_.listen, credentials, &port_);
  builder.RegisterService(service_.get());
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
      std::min<size_t>(2 * options_.max_message_bytes, INT32_MAX)));
  builder.SetMaxSendMessageSize(static_cast<int>(options_.max_message_bytes));
  // gRPC buffers a request until all of it has arrived, and opens its
  // flow-control window to the size the request declares: a slow client
  // holds that memory, unseen by the service's admission. The quota bounds
  // the total (past it gRPC resets the streams holding the most), and
  // connection age bounds how long (a connection gets GOAWAY at its age,
  // and is closed once its calls had the grace).
  if (options_.transport_memory_bytes > 0) {
    grpc::ResourceQuota quota("knnmem-transport");
    quota.Resize(options_.transport_memory_bytes);
    builder.SetResourceQuota(quota);
  }
  const auto set_ms = [&builder](const char* arg, uint32_t seconds) {
    if (seconds > 0) {
      builder.AddChannelArgument(arg, static_cast<int>(std::min<int64_t>(
                                          int64_t{seconds} * 1000, INT32_MAX)));
    }
  };
  set_ms(GRPC_ARG_MAX_CONNECTION_IDLE_MS, options_.max_connection_idle_seconds);
  set_ms(GRPC_ARG_MAX_CONNECTION_AGE_MS, options_.max_connection_age_seconds);
  set_ms(GRPC_ARG_MAX_CONNECTION_AGE_GRACE_MS,
         options_.max_connection_age_grace_seconds);
  grpc_server_ = builder.BuildAndStart();
  if (grpc_server_ == nullptr || port_ == 0) {
    return absl::UnavailableError(
        absl::StrCat("cannot listen on ", options_.listen,
                     " (in use by another process, or not an address "
                     "of this host)"));
  }
  if (options_.memory_budget_bytes > 0) {
    // The budget bounds the process: what it holds now, serving with no
    // stream loaded (less the streams' own bookkeeping, counted per
    // stream), is not the streams'.
    const int64_t streams = static_cast<int64_t>(core_->stream_count()) *
                            MemoryStore::kBytesPerStream;
    core_->ReserveForServer(static_cast<uint64_t>(std::max<int64_t>(
        0, static_cast<int64_t>(ResidentMemoryBytes()) - streams)));
  }
  maintenance_ = std::thread([this] { Maintain(); });
  return absl::OkStatus();
}

std::string Server::Describe() const {
  return absl::StrFormat(
      "serving on %s:%d (metrics on %s, data dir %s, %zu streams recovered "
      "in %.0f ms, %d workers, %d shards)",
      HostOf(options_.listen), port_, metrics_address_, options_.data_dir,
      streams_recovered_, recover_ms_, WorkerCount(options_), options_.shards);
}

ServerSample Server::Sample() const {
  ServerSample s;
  MutexLock lock(&store_mu_);
  if (store_ == nullptr) return s;  // opening, or closed
  const StoreTotals totals = store_->Totals();
  s.streams = totals.streams;
  s.stored_vectors = totals.stored_vectors;
  s.ram_bytes = totals.ram_bytes;
  s.resident_streams = totals.resident_streams;
  s.memory_budget_bytes = options_.memory_budget_bytes;
  s.stream_unloads = store_->residency().unloads;
  s.disk_bytes = store_->storage().ApproximateBytesOnDisk();
  s.worker_queue_depth = pool_.queue_depth();
  if (service_ != nullptr)
    s.requests_in_flight = service_->requests_in_flight();
  s.rocksdb_write_stall_micros = store_->storage().WriteStallMicros();
  s.rocksdb_compaction_pending_bytes =
      store_->storage().CompactionPendingBytes();
  s.storage_background_errors = store_->storage().background_errors();
  s.storage_writes_stopped = store_->storage().writes_stopped();
  s.storage_wal_damaged = store_->storage().wal_damaged_at_open();
  if (tokens_ != nullptr) {
    const std::shared_ptr<const TokenAuth> auth = tokens_->current();
    for (const std::string& tenant : auth->tenants()) {
      const Quota* quota = auth->QuotaOf(tenant);
      s.tenants.push_back({tenant, store_->NamespaceCharge(tenant),
                           quota != nullptr ? *quota : Quota()});
    }
  }
  return s;
}

absl::Status Server::ReloadTokens() {
  if (tokens_ == nullptr) {
    return absl::FailedPreconditionError(
        "no --auth-token-file: there are no tokens to reload");
  }
  RETURN_IF_ERROR(tokens_->Reload());
  const std::shared_ptr<const TokenAuth> auth = tokens_->current();
  std::printf("knnmem-server: reloaded %s: %zu token(s), %zu tenant(s)\n",
              tokens_->path().c_str(), auth->token_count(),
              auth->tenants().size());
  std::fflush(stdout);
  return absl::OkStatus();
}

namespace {
constexpr int64_t kTrimAfterFreeing = int64_t{64} << 20;
constexpr int64_t kTrimOnceSettled = int64_t{4} << 20;
}  // namespace

void Server::Maintain() {
  // Once a second: idle streams are deleted, freed memory goes back to the
  // system, and storage writes stopped by a background error resume.
  while (!stopping_.WaitForNotificationWithTimeout(absl::Seconds(1))) {
    const size_t n = core_->DeleteIdleStreams();
    if (n > 0) {
      std::printf("knnmem-server: deleted %zu idle stream(s)\n", n);
      std::fflush(stdout);
    }
    TrimFreedMemory();
    core_->storage().RefillDescriptorReserve();
    ResumeWrites();
  }
}

void Server::TrimFreedMemory() {
  // glibc keeps freed memory for reuse instead of returning it: RSS stayed
  // at 693 MiB after 10,000 small streams were deleted (39 MiB after
  // malloc_trim). Once the streams' RAM fell 64 MiB below its high mark,
  // or fell 4 MiB and then held still for a tick, give the freed memory back;
  // not every tick, as a trim walks the heap with its lock held (~10 ms with
  // 700 MiB live).
  const int64_t ram = static_cast<int64_t>(core_->resident_bytes());
  const bool settled = ram == last_ram_;
  last_ram_ = ram;
  ram_high_ = std::max(ram_high_, ram);
  const int64_t freed = ram_high_ - ram;
  if (freed < kTrimAfterFreeing && !(settled && freed >= kTrimOnceSettled)) {
    return;
  }
  const uint64_t before = ResidentMemoryBytes();
  malloc_trim(0);
  ram_high_ = ram;
  std::printf(
      "knnmem-server: returned freed memory to the system (RSS %llu -> %llu "
      "MiB)\n",
      static_cast<unsigned long long>(before >> 20),
      static_cast<unsigned long long>(ResidentMemoryBytes() >> 20));
  std::fflush(stdout);
}

void Server::ResumeWrites() {
  // Health says NOT_SERVING from the tick that finds writes stopped until
  // they resume (the same tick, when the cause is already gone).
  if (!core_->storage().writes_stopped()) return;
  SetServing(false, "storage writes stopped");
  const absl::Status resumed = core_->TryResumeWrites();
  if (resumed.ok()) {
    last_resume_error_.clear();
    SetServing(true, "storage writes resumed");
  } else if (resumed.ToString() != last_resume_error_) {
    // Said once per distinct reason, not once a second.
    last_resume_error_ = resumed.ToString();
    std::fprintf(stderr, "knnmem-server: writes not resumed yet: %s\n",
                 last_resume_error_.c_str());
  }
}

void Server::SetServing(bool serving, const char* why) {
  if (serving == serving_ || draining_.load()) return;
  serving_ = serving;
  grpc_server_->GetHealthCheckService()->SetServingStatus(serving);
  std::printf("knnmem-server: health %s (%s)\n",
              serving ? "SERVING" : "NOT_SERVING", why);
  std::fflush(stdout);
}

void Server::Shutdown(absl::Duration drain, absl::Duration grace) {
  if (shut_down_) return;
  shut_down_ = true;
  draining_.store(true);
  if (grpc_server_ != nullptr) {
    grpc_server_->GetHealthCheckService()->SetServingStatus(false);
    absl::SleepFor(drain);
    const auto deadline = std::chrono::system_clock::now() +
                          absl::ToChronoMilliseconds(grace + kAbortTime);
    // gRPC stops accepting calls at once, cancels those still running at
    // the deadline, and returns only when every idle client connection has
    // acknowledged its GOAWAY (an idle gRPC client does that on its 5 s
    // backup poll): nothing here waits for that.
    grpc_shutdown_ = std::thread([this, deadline] {
      grpc_server_->Shutdown(deadline);
      grpc_server_->Wait();
      grpc_stopped_.Notify();
    });
    // A call that reaches a handler from here on is refused; the calls
    // inside finish by themselves or are cancelled at the deadline.
    service_->StopAcceptingCalls();
    if (!service_->AwaitCallsEnded(grace)) {
      // The grace is over: the calls still running end with UNAVAILABLE
      // (retry elsewhere) rather than gRPC's CANCELLED at its deadline.
      service_->AbortCalls();
      service_->AwaitCallsEnded();
    }
    // Every answer is written to its socket; give the kernel a moment to
    // send it before the process may exit (closing a socket that has
    // unread input resets the connection and drops what is unsent). Clients
    // still talking acknowledge the GOAWAY well within it; idle ones would
    // only on their 5 s poll.
    grpc_stopped_.WaitForNotificationWithTimeout(kLinger);
  }
  if (maintenance_.joinable()) {
    stopping_.Notify();
    maintenance_.join();
  }
  pool_.WaitIdle();            // every task on the pool has finished
  MutexLock lock(&store_mu_);  // no scrape samples the store from here on
  core_ = nullptr;
  store_.reset();  // closes RocksDB: everything acknowledged is durable
}

Server::~Server() {
  Shutdown(absl::ZeroDuration(), absl::ZeroDuration());
  if (grpc_shutdown_.joinable()) grpc_shutdown_.join();
}

}  // namespace knnmem
