// Metrics: the server's Prometheus metrics, served by prometheus-cpp on
// their own port. With tenant_metrics.h, the only code that touches
// prometheus-cpp.
//
// Every family is built once at construction and its children are kept, so
// that recording is a lookup-free atomic add. No label carries a stream id
// (cardinality); the names are the contract that deploy/ relies on:
//   knnmem_requests_total{method,code}         counter
//   knnmem_request_duration_seconds{method}    histogram
//   knnmem_appended_vectors_total              counter (rows x heads)
//   knnmem_evicted_vectors_total               counter (rows x heads)
//   knnmem_searched_queries_total              counter (Search and Attend rows)
//   knnmem_rocksdb_write_stall_seconds_total   counter
//   knnmem_stream_unloads_total                counter (for the RAM budget)
//   knnmem_stream_load_seconds                 histogram (loads from disk)
//   knnmem_streams, knnmem_stored_vectors, knnmem_ram_bytes,
//   knnmem_disk_bytes, knnmem_memory_budget_bytes, knnmem_resident_streams,
//   knnmem_worker_queue_depth, knnmem_requests_in_flight,
//   knnmem_rocksdb_compaction_pending_bytes,
//   knnmem_process_resident_memory_bytes     gauges, sampled at scrape time
//   and the per-tenant families of tenant_metrics.h.
#ifndef KNNMEM_SERVER_SERVICE_METRICS_H_
#define KNNMEM_SERVER_SERVICE_METRICS_H_

#include <array>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/service/tenant_metrics.h"

namespace prometheus {
class Counter;
class Exposer;
class Gauge;
class Histogram;
class Registry;
}  // namespace prometheus

namespace knnmem {

enum class Rpc : int {
  kCreateStream,
  kGetStream,
  kListStreams,
  kResetStream,
  kDeleteStream,
  kAppend,
  kSearch,
  kAttend,
  kDecodeStep,
};
inline constexpr int kRpcCount = 9;
const char* RpcName(Rpc rpc);

// Values read at each scrape.
struct ServerSample {
  uint64_t streams = 0;
  uint64_t stored_vectors = 0;
  uint64_t ram_bytes = 0;
  uint64_t disk_bytes = 0;
  uint64_t memory_budget_bytes = 0;
  uint64_t resident_streams = 0;
  uint64_t stream_unloads = 0;  // cumulative since start
  uint64_t worker_queue_depth = 0;
  uint64_t requests_in_flight = 0;          // admitted, not yet answered
  uint64_t rocksdb_write_stall_micros = 0;  // cumulative since start
  uint64_t rocksdb_compaction_pending_bytes = 0;
  uint64_t storage_background_errors = 0;  // cumulative since start
  bool storage_writes_stopped = false;
  bool storage_wal_damaged = false;   // at this start
  std::vector<TenantSample> tenants;  // those the token file names
};

class Metrics {
 public:
  // Builds every family. `sample` is called (serialised) at each scrape.
  explicit Metrics(std::function<ServerSample()> sample);
  ~Metrics();

  Metrics(const Metrics&) = delete;
  Metrics& operator=(const Metrics&) = delete;

  // Serves GET /metrics on `address` (HOST:PORT; port 0 picks a free one)
  // and returns the port. UNAVAILABLE naming the address if it cannot bind.
  absl::StatusOr<int> Serve(const std::string& address);
  // Stops serving; after it returns no scrape calls the sampler again.
  void Stop();

  void RecordRequest(Rpc rpc, absl::StatusCode code, double seconds);
  void AddAppendedVectors(uint64_t n);
  void AddEvictedVectors(uint64_t n);
  void AddSearchedQueries(uint64_t n);
  void ObserveStreamLoad(double seconds);
  // A call or step refused for its token, tenant or a quota.
  void RecordDenied(absl::string_view tenant, absl::string_view reason) {
    tenants_->RecordDenied(tenant, reason);
  }

  // The exposition text, as a scrape would see it (for tests).
  std::string Scrape() const;

 private:
  class SamplingCollectable;
  static constexpr int kCodeCount = 17;

  std::shared_ptr<prometheus::Registry> registry_;
  // Before the collectable and the exposer, whose scrapes update it.
  std::unique_ptr<TenantMetrics> tenants_;
  std::shared_ptr<SamplingCollectable> collectable_;
  std::unique_ptr<prometheus::Exposer> exposer_;
  std::array<std::array<prometheus::Counter*, kCodeCount>, kRpcCount>
      requests_{};
  std::array<prometheus::Histogram*, kRpcCount> durations_{};
  prometheus::Counter* appended_ = nullptr;
  prometheus::Counter* evicted_ = nullptr;
  prometheus::Counter* searched_ = nullptr;
  prometheus::Histogram* loads_ = nullptr;
};

// Resident set size of this process in bytes (from /proc/self/statm).
uint64_t ResidentMemoryBytes();

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_METRICS_H_
