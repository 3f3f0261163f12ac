// MemoryStore's residency: loading streams from storage on first use, and
// unloading the streams MemoryBudget picks to keep RAM in the budget.
#include <malloc.h>

#include <chrono>
#include <optional>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/store/memory_store.h"

namespace knnmem {

absl::Status MemoryStore::EnsureResident(
    const std::shared_ptr<Stream>& shared) const {
  Stream& stream = *shared;
  {
    ReaderMutexLock lock(&stream.lifecycle_mutex());
    if (stream.deleted() || stream.resident()) return absl::OkStatus();
  }
  const auto start = std::chrono::steady_clock::now();
  uint64_t incarnation;
  {
    ReaderMutexLock lock(&stream.lifecycle_mutex());
    incarnation = stream.incarnation();
  }
  // What it will take: its entries, counted from storage's positions.
  uint64_t entries = 0;
  for (uint32_t l = 0; l < stream.spec().layers; ++l) {
    ASSIGN_OR_RETURN(auto bounds, storage_->LayerBounds(incarnation, l));
    entries += static_cast<uint64_t>(bounds.second - bounds.first);
  }
  RETURN_IF_ERROR(
      MakeRoom(entries * stream.spec().RowBytes(), &stream, "stream_id"));
  bool reindex = false;
  {
    MutexLock lock(&stream.lifecycle_mutex());
    if (stream.deleted() || stream.resident()) return absl::OkStatus();
    absl::Status loaded = LoadLayers(stream);
    for (uint32_t l = 0; loaded.ok() && l < stream.spec().layers; ++l) {
      LayerMemory& layer = stream.layer(l);
      if (layer.index() == nullptr) continue;
      // The centroids it was trained with, if it was: the same lists.
      absl::StatusOr<std::string> centroids =
          storage_->GetCentroids(stream.incarnation(), l);
      loaded = centroids.status();
      if (loaded.ok() && !centroids->empty()) {
        loaded =
            TierOf(layer)->RestoreCentroids(*centroids, layer.first_position());
      }
    }
    if (!loaded.ok()) {
      stream.Unload();  // drop what was read; the next use tries again
      return loaded;
    }
    budget_.Loaded(stream.BytesInRam());
    stream.MarkResident();
    // The FAISS tier is rebuilt from the loaded keys, in the background.
    reindex = stream.spec().index == IndexKind::kApproximate;
    if (on_load_) {
      on_load_(std::chrono::duration<double>(std::chrono::steady_clock::now() -
                                             start)
                   .count());
    }
  }
  if (reindex) ScheduleIndexing(shared, 0, stream.spec().layers);
  return absl::OkStatus();
}

absl::Status MemoryStore::LoadLayers(Stream& stream) const {
  const StreamSpec& spec = stream.spec();
  const size_t key_bytes =
      size_t{spec.heads} * spec.key_dim * ElementSize(spec.storage_dtype);
  const size_t row_bytes = spec.RowBytes();
  return storage_->ScanStream(
      stream.incarnation(),
      [&](uint32_t layer, int64_t position, absl::string_view row)
          ABSL_NO_THREAD_SAFETY_ANALYSIS {
            if (layer >= spec.layers || row.size() != row_bytes) {
              return absl::DataLossError(absl::StrCat(
                  "storage: stream '", stream.id(), "' layer ", layer,
                  " position ", position, ": record does not match the spec"));
            }
            LayerMemory& memory = stream.layer(layer);
            MutexLock append(&memory.append_mutex());
            const int64_t next = memory.next_position();
            if (next == 0 && memory.first_position() == 0 && position != 0) {
              memory.StartAt(position);
            } else if (position != next) {
              return absl::DataLossError(absl::StrCat(
                  "storage: stream '", stream.id(), "' layer ", layer,
                  ": position ", position, " follows ", next - 1));
            }
            memory.AppendRows(row.data(), row_bytes, row.data() + key_bytes,
                              row_bytes, 1);
            return absl::OkStatus();
          });
}

namespace {

// The streams a MemoryStore holds but `keep`, as MemoryBudget unloads them.
class StreamsToUnload final : public MemoryBudget::Unloadable {
 public:
  StreamsToUnload(const StreamRegistry& registry, const Stream* keep)
      : registry_(registry), keep_(keep) {}

  std::vector<int64_t> LastUsed() override {
    std::vector<int64_t> last_used;
    registry_.ForEach([&](const std::shared_ptr<Stream>& stream) {
      if (stream.get() == keep_) return;
      streams_.push_back(stream);
      last_used.push_back(stream->last_used_micros());
    });
    return last_used;
  }

  std::optional<uint64_t> TryUnload(size_t i) override {
    Stream& stream = *streams_[i];
    // Idle: no call holds its lifecycle lock (TryLock never waits, so two
    // calls making room cannot deadlock on each other's streams).
    if (!stream.lifecycle_mutex().TryLock()) return std::nullopt;
    std::optional<uint64_t> freed;
    if (stream.resident() && !stream.deleted()) {
      freed = stream.BytesInRam();
      stream.Unload();
    }
    stream.lifecycle_mutex().Unlock();
    return freed;
  }

  void ReleaseFreedMemory() override { malloc_trim(0); }

 private:
  const StreamRegistry& registry_;
  const Stream* const keep_;
  std::vector<std::shared_ptr<Stream>> streams_;
};

}  // namespace

absl::Status MemoryStore::MakeRoom(uint64_t bytes, const Stream* keep,
                                   absl::string_view field) const {
  StreamsToUnload streams(registry_, keep);
  return budget_.MakeRoom(bytes, registry_.size(), field, streams);
}

}  // namespace knnmem
