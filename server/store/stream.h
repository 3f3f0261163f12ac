// Stream: one stream's memory in RAM: its spec, its storage incarnation and
// one LayerMemory per layer.
//
// Lifecycle lock: Append and Search hold it shared while they touch the
// stream (Search only while it takes its snapshot), as the indexer does for
// moments; Reset and Delete hold it exclusively, so no append writes into an
// incarnation after it was dropped, and so do a load from storage and an
// unload for the memory budget (which only tries it: a stream in use stays).
#ifndef KNNMEM_SERVER_STORE_STREAM_H_
#define KNNMEM_SERVER_STORE_STREAM_H_

#include <atomic>
#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"
#include "server/approximate/approximate_index.h"
#include "server/memory/layer_memory.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

class Stream {
 public:
  // A stream that is `resident` holds its entries in RAM; one that is not
  // has them only in storage (after a restart, or unloaded for the memory
  // budget) and holds empty layers until MemoryStore loads it.
  Stream(std::string id, const StreamSpec& spec, const TierOptions& tier,
         const LayerOptions& layer, uint64_t incarnation, bool resident = true)
      : id_(std::move(id)),
        spec_(spec),
        tier_(tier),
        layer_(layer),
        incarnation_(incarnation),
        resident_(resident) {
    NewLayers();
  }

  const std::string& id() const { return id_; }
  const StreamSpec& spec() const { return spec_; }

  // When the stream was last created, appended to, searched or reset
  // (Clock microseconds), for the idle TTL.
  int64_t last_used_micros() const {
    return last_used_.load(std::memory_order_relaxed);
  }
  void Touch(int64_t now_micros) {
    last_used_.store(now_micros, std::memory_order_relaxed);
  }

  Mutex& lifecycle_mutex() const ABSL_LOCK_RETURNED(mu_) { return mu_; }

  uint64_t incarnation() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return incarnation_;
  }
  bool deleted() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return deleted_; }
  bool resident() const ABSL_SHARED_LOCKS_REQUIRED(mu_) { return resident_; }
  // Drops the entries from RAM (storage keeps them).
  void Unload() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    resident_ = false;
    NewLayers();
  }
  // The layers now hold every entry storage has.
  void MarkResident() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { resident_ = true; }
  LayerMemory& layer(uint32_t layer) const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    return *layers_[layer];
  }

  // Drops every entry and moves to a new incarnation.
  void Reset(uint64_t incarnation) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) {
    incarnation_ = incarnation;
    resident_ = true;  // empty, in RAM as in storage
    NewLayers();
  }
  void MarkDeleted() ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_) { deleted_ = true; }

  // RAM of every layer (blocks and the approximate tier's lists).
  uint64_t BytesInRam() const ABSL_SHARED_LOCKS_REQUIRED(mu_) {
    uint64_t bytes = 0;
    for (const auto& layer : layers_) bytes += layer->BytesInRam();
    return bytes;
  }

 private:
  void NewLayers() ABSL_NO_THREAD_SAFETY_ANALYSIS {
    layers_.clear();
    for (uint32_t l = 0; l < spec_.layers; ++l) {
      layers_.push_back(std::make_unique<LayerMemory>(spec_, layer_));
      if (spec_.index == IndexKind::kApproximate) {
        layers_.back()->AttachIndex(
            std::make_shared<ApproximateIndex>(spec_, tier_));
      }
    }
  }

  const std::string id_;
  const StreamSpec spec_;
  const TierOptions tier_;
  const LayerOptions layer_;
  std::atomic<int64_t> last_used_{0};
  mutable Mutex mu_;
  uint64_t incarnation_ ABSL_GUARDED_BY(mu_);
  bool deleted_ ABSL_GUARDED_BY(mu_) = false;
  bool resident_ ABSL_GUARDED_BY(mu_);
  std::vector<std::unique_ptr<LayerMemory>> layers_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_STREAM_H_
