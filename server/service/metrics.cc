#include "server/service/metrics.h"

#include <prometheus/collectable.h>
#include <prometheus/counter.h>
#include <prometheus/exposer.h>
#include <prometheus/gauge.h>
#include <prometheus/histogram.h>
#include <prometheus/registry.h>
#include <prometheus/text_serializer.h>
#include <unistd.h>

#include <cstdio>
#include <exception>

#include "absl/strings/str_cat.h"
#include "base/sync.h"

namespace knnmem {

const char* RpcName(Rpc rpc) {
  static const char* const kNames[kRpcCount] = {
      "CreateStream", "GetStream", "ListStreams", "ResetStream", "DeleteStream",
      "Append",       "Search",    "Attend",      "DecodeStep"};
  return kNames[static_cast<int>(rpc)];
}

uint64_t ResidentMemoryBytes() {
  FILE* f = std::fopen("/proc/self/statm", "r");
  if (f == nullptr) return 0;
  unsigned long size = 0, resident = 0;
  const int n = std::fscanf(f, "%lu %lu", &size, &resident);
  std::fclose(f);
  return n == 2
             ? uint64_t{resident} * static_cast<uint64_t>(sysconf(_SC_PAGESIZE))
             : 0;
}

// Refreshes the gauges from the sampler, then collects the registry.
class Metrics::SamplingCollectable : public prometheus::Collectable {
 public:
  SamplingCollectable(std::shared_ptr<prometheus::Registry> registry,
                      std::function<ServerSample()> sample,
                      TenantMetrics* tenants)
      : registry_(std::move(registry)),
        sample_(std::move(sample)),
        tenants_(tenants) {
    auto gauge = [this](const char* name, const char* help) {
      return &prometheus::BuildGauge()
                  .Name(name)
                  .Help(help)
                  .Register(*registry_)
                  .Add({});
    };
    streams_ = gauge("knnmem_streams", "Streams held by this server.");
    stored_ = gauge("knnmem_stored_vectors",
                    "Key vectors held: entries times heads, over every layer.");
    ram_ = gauge("knnmem_ram_bytes", "Bytes of keys and values held in RAM.");
    disk_ = gauge("knnmem_disk_bytes",
                  "Bytes RocksDB holds on disk and in memtables.");
    budget_ = gauge("knnmem_memory_budget_bytes",
                    "Configured RAM budget; 0 means none.");
    resident_ =
        gauge("knnmem_resident_streams", "Streams whose entries are in RAM.");
    queue_ = gauge("knnmem_worker_queue_depth",
                   "Tasks waiting for a worker thread.");
    in_flight_ = gauge("knnmem_requests_in_flight",
                       "Requests admitted and not yet answered (bounded by "
                       "--max-inflight-requests).");
    pending_ =
        gauge("knnmem_rocksdb_compaction_pending_bytes",
              "Bytes RocksDB estimates compaction still has to rewrite.");
    rss_ = gauge("knnmem_process_resident_memory_bytes",
                 "Resident set size of the server.");
    stall_ = &prometheus::BuildCounter()
                  .Name("knnmem_rocksdb_write_stall_seconds_total")
                  .Help("Time writes spent stalled by RocksDB.")
                  .Register(*registry_)
                  .Add({});
    writes_stopped_ =
        gauge("knnmem_storage_writes_stopped",
              "1 while a RocksDB background error (a full disk, too many open "
              "files) stops every write; the server retries once a second.");
    wal_damaged_ = gauge(
        "knnmem_storage_wal_damaged",
        "1 when this start found the WAL damaged (its files were kept aside; "
        "see the log and --wal-recovery).");
    background_errors_ =
        &prometheus::BuildCounter()
             .Name("knnmem_storage_background_errors_total")
             .Help(
                 "RocksDB background errors: failed flushes, compactions "
                 "and WAL writes.")
             .Register(*registry_)
             .Add({});
    unloads_ = &prometheus::BuildCounter()
                    .Name("knnmem_stream_unloads_total")
                    .Help("Idle streams unloaded from RAM for the budget.")
                    .Register(*registry_)
                    .Add({});
  }

  std::vector<prometheus::MetricFamily> Collect() const override {
    MutexLock lock(&mu_);
    const ServerSample s = sample_();
    streams_->Set(static_cast<double>(s.streams));
    stored_->Set(static_cast<double>(s.stored_vectors));
    ram_->Set(static_cast<double>(s.ram_bytes));
    disk_->Set(static_cast<double>(s.disk_bytes));
    budget_->Set(static_cast<double>(s.memory_budget_bytes));
    resident_->Set(static_cast<double>(s.resident_streams));
    if (s.stream_unloads > unloads_seen_) {
      unloads_->Increment(
          static_cast<double>(s.stream_unloads - unloads_seen_));
      unloads_seen_ = s.stream_unloads;
    }
    queue_->Set(static_cast<double>(s.worker_queue_depth));
    in_flight_->Set(static_cast<double>(s.requests_in_flight));
    pending_->Set(static_cast<double>(s.rocksdb_compaction_pending_bytes));
    rss_->Set(static_cast<double>(ResidentMemoryBytes()));
    writes_stopped_->Set(s.storage_writes_stopped ? 1 : 0);
    wal_damaged_->Set(s.storage_wal_damaged ? 1 : 0);
    if (s.storage_background_errors > background_errors_seen_) {
      background_errors_->Increment(static_cast<double>(
          s.storage_background_errors - background_errors_seen_));
      background_errors_seen_ = s.storage_background_errors;
    }
    if (s.rocksdb_write_stall_micros > stall_micros_) {
      stall_->Increment(
          static_cast<double>(s.rocksdb_write_stall_micros - stall_micros_) /
          1e6);
      stall_micros_ = s.rocksdb_write_stall_micros;
    }
    tenants_->Update(s.tenants);
    return registry_->Collect();
  }

 private:
  std::shared_ptr<prometheus::Registry> registry_;
  std::function<ServerSample()> sample_;
  TenantMetrics* const tenants_;
  mutable Mutex mu_;
  mutable uint64_t stall_micros_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t background_errors_seen_ ABSL_GUARDED_BY(mu_) = 0;
  mutable uint64_t unloads_seen_ ABSL_GUARDED_BY(mu_) = 0;
  prometheus::Gauge *writes_stopped_, *wal_damaged_, *streams_, *stored_, *ram_,
      *disk_, *budget_, *resident_, *queue_, *in_flight_, *pending_, *rss_;
  prometheus::Counter *stall_, *unloads_, *background_errors_;
};

Metrics::Metrics(std::function<ServerSample()> sample)
    : registry_(std::make_shared<prometheus::Registry>()) {
  static const char* const kCodes[kCodeCount] = {"OK",
                                                 "CANCELLED",
                                                 "UNKNOWN",
                                                 "INVALID_ARGUMENT",
                                                 "DEADLINE_EXCEEDED",
                                                 "NOT_FOUND",
                                                 "ALREADY_EXISTS",
                                                 "PERMISSION_DENIED",
                                                 "RESOURCE_EXHAUSTED",
                                                 "FAILED_PRECONDITION",
                                                 "ABORTED",
                                                 "OUT_OF_RANGE",
                                                 "UNIMPLEMENTED",
                                                 "INTERNAL",
                                                 "UNAVAILABLE",
                                                 "DATA_LOSS",
                                                 "UNAUTHENTICATED"};
  auto& requests = prometheus::BuildCounter()
                       .Name("knnmem_requests_total")
                       .Help("gRPC requests by method and status code.")
                       .Register(*registry_);
  auto& durations =
      prometheus::BuildHistogram()
          .Name("knnmem_request_duration_seconds")
          .Help("gRPC request latency by method, from arrival to reply.")
          .Register(*registry_);
  // 100 us to 30 s, roughly x2.5 per bucket.
  const prometheus::Histogram::BucketBoundaries buckets = {
      0.0001, 0.00025, 0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05,
      0.1,    0.25,    0.5,    1,     2.5,    5,     10,   30};
  for (int r = 0; r < kRpcCount; ++r) {
    const std::string method = RpcName(static_cast<Rpc>(r));
    for (int c = 0; c < kCodeCount; ++c) {
      requests_[r][c] =
          &requests.Add({{"method", method}, {"code", kCodes[c]}});
    }
    durations_[r] = &durations.Add({{"method", method}}, buckets);
  }
  auto counter = [this](const char* name, const char* help) {
    return &prometheus::BuildCounter()
                .Name(name)
                .Help(help)
                .Register(*registry_)
                .Add({});
  };
  appended_ = counter("knnmem_appended_vectors_total",
                      "Key vectors stored by Append (rows times heads).");
  evicted_ =
      counter("knnmem_evicted_vectors_total",
              "Key vectors evicted first-in-first-out (rows times heads).");
  searched_ = counter("knnmem_searched_queries_total",
                      "Query rows answered by Search and Attend.");
  loads_ = &prometheus::BuildHistogram()
                .Name("knnmem_stream_load_seconds")
                .Help(
                    "Time to load a stream's entries from disk into RAM "
                    "(first use after a restart, or after an unload).")
                .Register(*registry_)
                .Add({}, prometheus::Histogram::BucketBoundaries{
                             0.001, 0.005, 0.01, 0.05, 0.1, 0.5, 1, 5, 30});
  tenants_ = std::make_unique<TenantMetrics>(*registry_);
  collectable_ = std::make_shared<SamplingCollectable>(
      registry_, std::move(sample), tenants_.get());
}

Metrics::~Metrics() = default;

absl::StatusOr<int> Metrics::Serve(const std::string& address) {
  try {
    exposer_ = std::make_unique<prometheus::Exposer>(address);
    exposer_->RegisterCollectable(collectable_);
    const std::vector<int> ports = exposer_->GetListeningPorts();
    if (ports.empty()) throw std::runtime_error("no listening port");
    return ports.front();
  } catch (const std::exception& e) {
    exposer_.reset();
    return absl::UnavailableError(
        absl::StrCat("--metrics-address: cannot serve metrics on ", address,
                     ": ", e.what()));
  }
}

void Metrics::Stop() { exposer_.reset(); }

void Metrics::RecordRequest(Rpc rpc, absl::StatusCode code, double seconds) {
  const int c = static_cast<int>(code);
  const int r = static_cast<int>(rpc);
  requests_[r][c >= 0 && c < kCodeCount ? c : 2]->Increment();
  durations_[r]->Observe(seconds);
}

void Metrics::AddAppendedVectors(uint64_t n) {
  appended_->Increment(static_cast<double>(n));
}
void Metrics::AddEvictedVectors(uint64_t n) {
  evicted_->Increment(static_cast<double>(n));
}
void Metrics::AddSearchedQueries(uint64_t n) {
  searched_->Increment(static_cast<double>(n));
}

void Metrics::ObserveStreamLoad(double seconds) { loads_->Observe(seconds); }

std::string Metrics::Scrape() const {
  return prometheus::TextSerializer().Serialize(collectable_->Collect());
}

}  // namespace knnmem
