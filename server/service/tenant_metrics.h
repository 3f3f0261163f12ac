// TenantMetrics: the per-tenant families of Metrics. Their tenant label
// takes only the tenants the token file names (bounded), plus "" for admin
// tokens and unknown callers:
//   knnmem_denied_calls_total{tenant,reason}  counter; tenant is the
//       caller's ("" for an admin or an unknown token); reason is
//       unauthenticated, permission (read-only token, another tenant's
//       stream) or quota; at 0 from the start for "" and each tenant
//   knnmem_tenant_usage{tenant,resource}      gauge; resource is streams,
//       ram_bytes or disk_bytes: what the tenant's streams are charged at
//       capacity (namespace_ledger.h), for each tenant the file names now
//   knnmem_tenant_quota{tenant,resource}      gauge; the limits its quota
//       sets (same resources; absent where there is no limit), so that
//       usage / quota is the share of each limit in use
#ifndef KNNMEM_SERVER_SERVICE_TENANT_METRICS_H_
#define KNNMEM_SERVER_SERVICE_TENANT_METRICS_H_

#include <array>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"
#include "server/store/namespace_ledger.h"

namespace prometheus {
class Counter;
class Gauge;
template <typename T>
class Family;
class Registry;
}  // namespace prometheus

namespace knnmem {

// One configured tenant at a scrape.
struct TenantSample {
  std::string tenant;
  NamespaceUsage charged;
  Quota quota;  // 0: no limit
};

class TenantMetrics {
 public:
  explicit TenantMetrics(prometheus::Registry& registry);
  ~TenantMetrics();

  void RecordDenied(absl::string_view tenant, absl::string_view reason);
  // Sets the gauges of `tenants` and drops those of tenants no longer
  // configured.
  void Update(const std::vector<TenantSample>& tenants);

 private:
  // One tenant's gauges, per resource: usage, and the quota's limit (null
  // where there is none).
  struct Gauges {
    std::array<prometheus::Gauge*, 3> usage{};
    std::array<prometheus::Gauge*, 3> limit{};
  };
  // Makes the denied counters of `tenant` exist at 0, so that they are
  // exported (and rate() sees their first increment) before any denial.
  void ZeroDenied(const std::string& tenant);

  prometheus::Family<prometheus::Counter>* denied_;
  prometheus::Family<prometheus::Gauge>* usage_;
  prometheus::Family<prometheus::Gauge>* quota_;
  Mutex mu_;
  std::map<std::string, Gauges> gauges_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_TENANT_METRICS_H_
