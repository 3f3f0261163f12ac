#include "server/service/tenant_metrics.h"

#include <prometheus/counter.h>
#include <prometheus/family.h>
#include <prometheus/gauge.h>
#include <prometheus/registry.h>

namespace knnmem {
namespace {

constexpr const char* kResources[3] = {"streams", "ram_bytes", "disk_bytes"};

std::array<uint64_t, 3> Values(const NamespaceUsage& u) {
  return {u.streams, u.ram_bytes, u.disk_bytes};
}
std::array<uint64_t, 3> Values(const Quota& q) {
  return {q.streams, q.ram_bytes, q.disk_bytes};
}

}  // namespace

TenantMetrics::TenantMetrics(prometheus::Registry& registry)
    : denied_(
          &prometheus::BuildCounter()
               .Name("knnmem_denied_calls_total")
               .Help("Calls (and DecodeStep steps) refused for their token, "
                     "their tenant or a quota, by the caller's tenant and "
                     "the reason.")
               .Register(registry)),
      usage_(&prometheus::BuildGauge()
                  .Name("knnmem_tenant_usage")
                  .Help("What each configured tenant's streams are charged: "
                        "streams, and RAM and disk bytes at capacity.")
                  .Register(registry)),
      quota_(&prometheus::BuildGauge()
                  .Name("knnmem_tenant_quota")
                  .Help("The limits of each configured tenant's quota.")
                  .Register(registry)) {
  ZeroDenied("");
}

TenantMetrics::~TenantMetrics() = default;

void TenantMetrics::ZeroDenied(const std::string& tenant) {
  for (const char* reason : {"unauthenticated", "permission", "quota"}) {
    denied_->Add({{"tenant", tenant}, {"reason", reason}});
  }
}

void TenantMetrics::RecordDenied(absl::string_view tenant,
                                 absl::string_view reason) {
  denied_
      ->Add({{"tenant", std::string(tenant)}, {"reason", std::string(reason)}})
      .Increment();
}

void TenantMetrics::Update(const std::vector<TenantSample>& tenants) {
  MutexLock lock(&mu_);
  std::map<std::string, Gauges> kept;
  for (const TenantSample& t : tenants) {
    Gauges& g = kept[t.tenant];
    auto it = gauges_.find(t.tenant);
    if (it != gauges_.end()) {
      g = it->second;
      gauges_.erase(it);
    } else {
      ZeroDenied(t.tenant);
    }
    const std::array<uint64_t, 3> usage = Values(t.charged);
    const std::array<uint64_t, 3> limit = Values(t.quota);
    for (int r = 0; r < 3; ++r) {
      const prometheus::Labels labels = {{"tenant", t.tenant},
                                         {"resource", kResources[r]}};
      if (g.usage[r] == nullptr) g.usage[r] = &usage_->Add(labels);
      g.usage[r]->Set(static_cast<double>(usage[r]));
      if (limit[r] == 0 && g.limit[r] != nullptr) {
        quota_->Remove(g.limit[r]);
        g.limit[r] = nullptr;
      } else if (limit[r] != 0) {
        if (g.limit[r] == nullptr) g.limit[r] = &quota_->Add(labels);
        g.limit[r]->Set(static_cast<double>(limit[r]));
      }
    }
  }
  for (auto& [tenant, g] : gauges_) {  // no longer configured
    for (int r = 0; r < 3; ++r) {
      usage_->Remove(g.usage[r]);
      if (g.limit[r] != nullptr) quota_->Remove(g.limit[r]);
    }
  }
  gauges_ = std::move(kept);
}

}  // namespace knnmem
