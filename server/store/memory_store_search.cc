// MemoryStore's read path: Search, Attend, and DecodeStep (each step an
// Append, then an Attend). Each takes an immutable snapshot of the layer
// under a brief lock and searches it with no lock held.
#include <utility>
#include <vector>

#include "base/status_macros.h"
#include "server/approximate/approximate_index.h"
#include "server/store/memory_store.h"

namespace knnmem {

absl::StatusOr<LayerSnapshot> MemoryStore::Snapshot(absl::string_view stream_id,
                                                    const StreamSpec& spec,
                                                    uint32_t layer) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream,
                   FindWithSpec(stream_id, spec));
  for (;;) {
    RETURN_IF_ERROR(EnsureResident(stream));
    ReaderMutexLock lifecycle(&stream->lifecycle_mutex());
    if (stream->deleted()) return StreamNotFound(stream_id);
    if (stream->resident()) return stream->layer(layer).Snapshot();
  }
}

absl::StatusOr<Neighbours> MemoryStore::Search(const SearchCommand& cmd) const {
  ASSIGN_OR_RETURN(LayerSnapshot snapshot,
                   Snapshot(cmd.stream_id, cmd.spec, cmd.layer));
  if (snapshot.index != nullptr && !cmd.exact) {
    return TieredSearch(cmd.spec, snapshot, cmd.queries, cmd.options, *pool_);
  }
  return ExactSearch(cmd.spec, snapshot, cmd.queries, cmd.options, *pool_);
}

absl::StatusOr<Attention> MemoryStore::Attend(const AttendCommand& cmd) const {
  ASSIGN_OR_RETURN(LayerSnapshot snapshot,
                   Snapshot(cmd.stream_id, cmd.spec, cmd.layer));
  return AttendOn(snapshot, cmd);
}

absl::StatusOr<Attention> MemoryStore::AttendOn(
    const LayerSnapshot& snapshot, const AttendCommand& cmd) const {
  SearchOptions search;
  search.k = cmd.k;
  search.cancelled = cmd.cancelled;
  ASSIGN_OR_RETURN(
      Neighbours top,
      snapshot.index != nullptr
          ? TieredSearch(cmd.spec, snapshot, cmd.queries, search, *pool_)
          : ExactSearch(cmd.spec, snapshot, cmd.queries, search, *pool_));
  return knnmem::Attend(cmd.spec, snapshot, top, cmd.options, *pool_);
}

// Below this many bytes of keys to score and rows to append, a decode step
// runs on the thread that took the call: waking the pool's other workers
// for its streams and heads (a ParallelFor at each of three levels) costs
// about what one core scans of these bytes in the time. Measured with
// `knnmem-model bench --generate` (4 streams x 4 heads x 64, up to 1,024
// entries: up to 4 MiB) and W-decode's B = 1 x 1K x 8 heads x 128 float32
// (4 MiB: 0.50 ms serial, 0.53-0.57 ms fanned out).
constexpr uint64_t kSerialStepBytes = uint64_t{8} << 20;

uint64_t MemoryStore::StepBytes(const StepCommand& step) const {
  uint64_t bytes = 0;
  if (step.append) {
    const AppendCommand& a = *step.append;
    bytes += a.keys.size() + a.values.size();
  }
  if (step.attend) {
    const AttendCommand& cmd = *step.attend;
    absl::StatusOr<std::shared_ptr<Stream>> stream =
        FindWithSpec(cmd.stream_id, cmd.spec);
    if (!stream.ok()) return bytes;  // RunStep reports it
    ReaderMutexLock lifecycle(&(*stream)->lifecycle_mutex());
    if ((*stream)->deleted()) return bytes;
    // Loading a stream is work worth sharing.
    if (!(*stream)->resident()) return kSerialStepBytes;
    const LayerMemory& layer = (*stream)->layer(cmd.layer);
    const uint64_t entries =
        static_cast<uint64_t>(layer.next_position() - layer.first_position());
    bytes += entries * cmd.queries.size() * ElementSize(cmd.spec.storage_dtype);
  }
  return bytes;
}

std::vector<StepResult> MemoryStore::DecodeStep(
    absl::Span<const StepCommand> steps) {
  std::vector<StepResult> results(steps.size());
  uint64_t bytes = 0;
  for (const StepCommand& step : steps) {
    bytes += StepBytes(step);
    if (bytes >= kSerialStepBytes) break;
  }
  if (bytes < kSerialStepBytes) {
    WorkerPool::SerialScope serial;
    for (size_t i = 0; i < steps.size(); ++i) results[i] = RunStep(steps[i]);
    return results;
  }
  pool_->ParallelFor(steps.size(),
                     [&](size_t i) { results[i] = RunStep(steps[i]); });
  return results;
}

StepResult MemoryStore::RunStep(const StepCommand& step) {
  StepResult r;
  if (step.append) {
    absl::StatusOr<AppendResult> appended = Append(*step.append);
    if (!appended.ok()) {
      r.status = appended.status();
      return r;
    }
    r.appended = *appended;
    r.next_position = appended->next_position;
  }
  if (step.attend) {
    const AttendCommand& cmd = *step.attend;
    absl::StatusOr<LayerSnapshot> snapshot =
        Snapshot(cmd.stream_id, cmd.spec, cmd.layer);
    if (!snapshot.ok()) {
      r.status = snapshot.status();
      return r;
    }
    r.next_position = snapshot->next_position;
    absl::StatusOr<Attention> attended = AttendOn(*snapshot, cmd);
    if (!attended.ok()) {
      r.status = attended.status();
      return r;
    }
    r.attention = *std::move(attended);
  }
  return r;
}

}  // namespace knnmem
