// MemoryStore's background indexer: extends the FAISS tier of APPROXIMATE
// layers off the request path, one bounded step at a time.
#include <cstdio>
#include <string>
#include <vector>

#include "server/approximate/approximate_index.h"
#include "server/store/memory_store.h"

namespace knnmem {

void MemoryStore::ScheduleIndexing(
    const std::shared_ptr<Stream>& stream, uint32_t first_layer,
    uint32_t end_layer) const ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::vector<uint32_t> due;
  {
    ReaderMutexLock lock(&stream->lifecycle_mutex());
    if (stream->deleted() || !stream->resident()) return;
    for (uint32_t l = first_layer; l < end_layer; ++l) {
      const LayerMemory& layer = stream->layer(l);
      const std::shared_ptr<ApproximateIndex> index = TierOf(layer);
      if (index == nullptr) continue;
      if (index->IndexableEnd(layer.first_position(), layer.next_position()) >
              index->indexed_end() &&
          index->MarkQueued()) {
        due.push_back(l);
      }
    }
  }
  for (uint32_t l : due) indexer_.Push({stream, l});
}

bool MemoryStore::IndexOnce(Stream& stream,
                            uint32_t layer) ABSL_NO_THREAD_SAFETY_ANALYSIS {
  std::shared_ptr<ApproximateIndex> index;
  LayerSnapshot snapshot;
  uint64_t incarnation;
  {
    ReaderMutexLock lock(&stream.lifecycle_mutex());
    if (stream.deleted() || !stream.resident()) return false;
    index = TierOf(stream.layer(layer));
    // Before the snapshot: an append published after it queues the layer
    // again rather than finding it still marked queued.
    index->ClearQueued();
    snapshot = stream.layer(layer).Snapshot();
    incarnation = stream.incarnation();
  }
  const bool trained = index->begin() >= 0;
  const size_t bytes_before = index->bytes();
  const int64_t end =
      index->IndexableEnd(snapshot.first_position, snapshot.next_position);
  if (end > index->indexed_end()) {
    absl::Status s = index->Extend(snapshot, end);
    if (!s.ok()) {
      std::fprintf(stderr, "knnmem-server: indexing stream '%s' layer %u: %s\n",
                   stream.id().c_str(), layer,
                   std::string(s.message()).c_str());
      return false;
    }
    if (!trained && index->begin() >= 0) {
      // Kept, so that a reload probes the same lists (the keys trained on
      // may be evicted by then). Not if the layer has another index by now
      // (unloaded and loaded again, or reset): its own training counts.
      ReaderMutexLock lock(&stream.lifecycle_mutex());
      const bool current = !stream.deleted() && stream.resident() &&
                           stream.incarnation() == incarnation &&
                           stream.layer(layer).index() == index;
      absl::Status put = current ? storage_->PutCentroids(incarnation, layer,
                                                          index->Centroids())
                                 : absl::OkStatus();
      if (!put.ok()) {
        std::fprintf(stderr,
                     "knnmem-server: keeping the centroids of stream '%s' "
                     "layer %u: %s\n",
                     stream.id().c_str(), layer,
                     std::string(put.message()).c_str());
      }
    }
  }
  // Evicted positions leave the lists once there are a chunk's worth.
  if (index->begin() >= 0 && snapshot.first_position - index->begin() >= 8192) {
    index->Forget(snapshot.first_position);
  }
  {
    // The index's keys count against the budget like blocks do: under the
    // lifecycle lock, so that they count only while this index is the
    // layer's (an unload or a reset meanwhile took the layer's bytes off).
    ReaderMutexLock lock(&stream.lifecycle_mutex());
    if (!stream.deleted() && stream.resident() &&
        stream.layer(layer).index() == index) {
      budget_.Resized(static_cast<int64_t>(index->bytes()) -
                      static_cast<int64_t>(bytes_before));
    }
  }
  return index->IndexableEnd(snapshot.first_position, snapshot.next_position) >
             index->indexed_end() &&
         index->MarkQueued();
}

}  // namespace knnmem
