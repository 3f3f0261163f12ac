#include "server/store/namespace_ledger.h"

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/storage/storage.h"

namespace knnmem {

absl::string_view NamespaceOf(absl::string_view stream_id) {
  const size_t slash = stream_id.find('/');
  return slash == absl::string_view::npos ? absl::string_view()
                                          : stream_id.substr(0, slash);
}

NamespaceUsage ChargeOf(const StreamSpec& spec) {
  const uint64_t entries = uint64_t{spec.layers} * spec.capacity;
  NamespaceUsage charge;
  charge.streams = 1;
  charge.ram_bytes = entries * spec.RowBytes();
  if (spec.index == IndexKind::kApproximate) {
    // An id per (entry, head), and float32 centroids per (layer, head).
    charge.ram_bytes += entries * spec.heads * sizeof(int64_t) +
                        uint64_t{spec.layers} * spec.heads *
                            spec.effective_nlist() * spec.key_dim *
                            sizeof(float);
  }
  charge.disk_bytes = entries * Storage::RecordBytes(spec.RowBytes());
  return charge;
}

namespace {

// RESOURCE_EXHAUSTED when `held + more` passes `limit` (0: none).
absl::Status Within(absl::string_view ns, const char* quota, uint64_t limit,
                    uint64_t held, uint64_t more) {
  if (limit == 0 || held + more <= limit) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "quota ", quota, " of tenant '", ns, "': ", limit, "; its streams hold ",
      held, " and this stream needs ", more,
      " more (streams are charged at capacity); delete streams or ask for a "
      "larger quota"));
}

}  // namespace

bool IsQuotaRefusal(const absl::Status& status) {
  return status.code() == absl::StatusCode::kResourceExhausted &&
         absl::StartsWith(status.message(), "quota ");
}

absl::Status NamespaceLedger::Charge(absl::string_view stream_id,
                                     const NamespaceUsage& charge,
                                     const Quota* quota) {
  const absl::string_view ns = NamespaceOf(stream_id);
  if (ns.empty()) return absl::OkStatus();
  MutexLock lock(&mu_);
  NamespaceUsage& held = usage_[ns];
  if (quota != nullptr) {
    RETURN_IF_ERROR(
        Within(ns, "streams", quota->streams, held.streams, charge.streams));
    RETURN_IF_ERROR(Within(ns, "ram_bytes", quota->ram_bytes, held.ram_bytes,
                           charge.ram_bytes));
    RETURN_IF_ERROR(Within(ns, "disk_bytes", quota->disk_bytes, held.disk_bytes,
                           charge.disk_bytes));
  }
  held.streams += charge.streams;
  held.ram_bytes += charge.ram_bytes;
  held.disk_bytes += charge.disk_bytes;
  return absl::OkStatus();
}

void NamespaceLedger::Refund(absl::string_view stream_id,
                             const NamespaceUsage& charge) {
  const absl::string_view ns = NamespaceOf(stream_id);
  if (ns.empty()) return;
  MutexLock lock(&mu_);
  auto it = usage_.find(ns);
  if (it == usage_.end()) return;
  it->second.streams -= charge.streams;
  it->second.ram_bytes -= charge.ram_bytes;
  it->second.disk_bytes -= charge.disk_bytes;
  if (it->second.streams == 0) usage_.erase(it);
}

NamespaceUsage NamespaceLedger::Usage(absl::string_view ns) const {
  MutexLock lock(&mu_);
  auto it = usage_.find(ns);
  return it == usage_.end() ? NamespaceUsage() : it->second;
}

}  // namespace knnmem
