// MemoryStore's residency: loading streams from storage on first use, and
// unloading least recently used idle streams to keep RAM in the budget.
#include <malloc.h>

#include <algorithm>
#include <chrono>
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
    resident_bytes_ += static_cast<int64_t>(stream.BytesInRam());
    stream.MarkResident();
    ++loads_;
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

absl::Status MemoryStore::MakeRoom(uint64_t bytes, const Stream* keep,
                                   absl::string_view field) const {
  if (memory_budget_bytes_.load() == 0) return absl::OkStatus();
  // Blocks share the budget with every stream's bookkeeping.
  const int64_t budget =
      std::max<int64_t>(0, static_cast<int64_t>(memory_budget_bytes_.load()) -
                               streams_held_.load() * kBytesPerStream);
  const int64_t need = static_cast<int64_t>(bytes);
  if (resident_bytes_.load() + need <= budget) return absl::OkStatus();
  MutexLock evicting(&evict_mu_);
  if (resident_bytes_.load() + need <= budget) return absl::OkStatus();
  // Least recently used first.
  std::vector<std::pair<int64_t, std::shared_ptr<Stream>>> candidates;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) {
      if (stream.get() != keep) {
        candidates.emplace_back(stream->last_used_micros(), stream);
      }
    }
  }
  std::sort(candidates.begin(), candidates.end(),
            [](const auto& a, const auto& b) { return a.first < b.first; });
  // Freed blocks go back to the system once a sixteenth of the budget was
  // freed since the last time, so RSS follows the budget at little cost.
  auto trim = [this, budget]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(evict_mu_) {
    if (untrimmed_bytes_ >= budget / 16) {
      malloc_trim(0);
      untrimmed_bytes_ = 0;
    }
  };
  // Unload a little more than needed (1/32 of the budget), so that the
  // next calls find room without walking every stream again.
  const int64_t target = budget - budget / 32;
  for (auto& [used, stream] : candidates) {
    if (resident_bytes_.load() + need <= target) {
      trim();
      return absl::OkStatus();
    }
    // Idle: no call holds its lifecycle lock (TryLock never waits, so two
    // calls making room cannot deadlock on each other's streams).
    if (!stream->lifecycle_mutex().TryLock()) continue;
    if (stream->resident() && !stream->deleted()) {
      const uint64_t freed = stream->BytesInRam();
      stream->Unload();
      resident_bytes_ -= static_cast<int64_t>(freed);
      ++unloads_;
      untrimmed_bytes_ += static_cast<int64_t>(freed);
    }
    stream->lifecycle_mutex().Unlock();
  }
  trim();
  if (resident_bytes_.load() + need <= budget) return absl::OkStatus();
  ++refused_appends_;
  return absl::ResourceExhaustedError(absl::StrCat(
      field, ": the memory budget (--memory-budget ", configured_budget_bytes_,
      " bytes, ", budget, " of them for the blocks of ", streams_held_.load(),
      " streams) is full: the streams in use hold ", resident_bytes_.load(),
      " bytes and this call needs ", bytes,
      " more; retry later, or raise the budget"));
}

void MemoryStore::ReserveForServer(uint64_t bytes) {
  const uint64_t share = memory_budget_bytes_.load();
  if (bytes <= share / 4) memory_budget_bytes_ = share - bytes;
}

ResidencyCounters MemoryStore::residency() const {
  return {loads_.load(), unloads_.load(), refused_appends_.load()};
}

uint64_t MemoryStore::resident_bytes() const {
  return static_cast<uint64_t>(std::max<int64_t>(0, resident_bytes_.load()));
}

}  // namespace knnmem
