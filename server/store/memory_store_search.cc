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

std::vector<StepResult> MemoryStore::DecodeStep(
    absl::Span<const StepCommand> steps) {
  std::vector<StepResult> results(steps.size());
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
