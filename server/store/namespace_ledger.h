// NamespaceLedger: what the streams of each namespace may take, and the
// quotas that bound it.
//
// A stream id's namespace is its text before the first '/' ("acme" for
// "acme/doc-7"); an id without '/' is in no namespace. A tenant's token
// reaches one namespace (server/service/auth.h). A stream is charged what it
// takes at capacity, when every layer holds `capacity` entries, from its
// create to its delete: FIFO eviction keeps it there, so a namespace never
// takes more than it was charged, and a quota refuses the create that would
// pass it rather than an append in the middle of a document.
#ifndef KNNMEM_SERVER_STORE_NAMESPACE_LEDGER_H_
#define KNNMEM_SERVER_STORE_NAMESPACE_LEDGER_H_

#include <cstdint>
#include <string>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/sync.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

// "acme" for "acme/doc-7"; "" for an id without '/'.
absl::string_view NamespaceOf(absl::string_view stream_id);

struct NamespaceUsage {
  uint64_t streams = 0;
  uint64_t ram_bytes = 0;   // keys, values and index entries at capacity
  uint64_t disk_bytes = 0;  // RocksDB records at capacity (before compression)
};

// Limits of one namespace; 0 is no limit.
struct Quota {
  uint64_t streams = 0;
  uint64_t ram_bytes = 0;
  uint64_t disk_bytes = 0;
  bool operator==(const Quota& o) const {
    return streams == o.streams && ram_bytes == o.ram_bytes &&
           disk_bytes == o.disk_bytes;
  }
};

// What one stream of `spec` is charged: RAM for its keys and values, and
// for APPROXIMATE its index's ids and centroids; disk for its records.
NamespaceUsage ChargeOf(const StreamSpec& spec);

// True for the RESOURCE_EXHAUSTED of a quota (NamespaceLedger::Charge).
bool IsQuotaRefusal(const absl::Status& status);

class NamespaceLedger {
 public:
  // Charges `charge` to `stream_id`'s namespace unless that would pass
  // `quota` (nullptr: none): then RESOURCE_EXHAUSTED naming the quota, its
  // limit and what the namespace holds. Ids in no namespace are not
  // charged.
  absl::Status Charge(absl::string_view stream_id, const NamespaceUsage& charge,
                      const Quota* quota);
  // Gives back what Charge took.
  void Refund(absl::string_view stream_id, const NamespaceUsage& charge);
  // What the namespace's streams are charged now.
  NamespaceUsage Usage(absl::string_view ns) const;

 private:
  mutable Mutex mu_;
  absl::flat_hash_map<std::string, NamespaceUsage> usage_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_NAMESPACE_LEDGER_H_
