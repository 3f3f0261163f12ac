// MemoryStore's Append: the RocksDB write and the copy into RAM side by side,
// the rows visible to searches once both are done.
#include <algorithm>
#include <string>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/store/memory_store.h"
#include "server/store/new_rows.h"

namespace knnmem {

absl::StatusOr<AppendResult> MemoryStore::Append(const AppendCommand& cmd) {
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream,
                   FindWithSpec(cmd.stream_id, cmd.spec));
  // Room for the new rows first; it never unloads this stream.
  RETURN_IF_ERROR(
      MakeRoom(cmd.rows * stream->spec().RowBytes(), stream.get(), "keys"));
  absl::StatusOr<AppendResult> result;
  for (bool done = false; !done;) {
    RETURN_IF_ERROR(EnsureResident(stream));
    ReaderMutexLock lifecycle(&stream->lifecycle_mutex());
    if (stream->deleted()) return StreamNotFound(cmd.stream_id);
    // Unloaded between the two (another call made room): load again.
    if (stream->resident()) {
      result = AppendResident(*stream, cmd);
      done = true;
    }
  }
  if (result.ok() && stream->spec().index == IndexKind::kApproximate) {
    ScheduleIndexing(stream, cmd.layer, cmd.layer + 1);
  }
  return result;
}

absl::StatusOr<AppendResult> MemoryStore::AppendResident(
    Stream& stream, const AppendCommand& cmd) {
  const StreamSpec& spec = stream.spec();
  LayerMemory& layer = stream.layer(cmd.layer);
  MutexLock append(&layer.append_mutex());
  // Blocks only: the indexer accounts for the index's bytes itself.
  const int64_t bytes_before = static_cast<int64_t>(layer.BlockBytes());
  const int64_t next = layer.next_position();
  if (cmd.first_position > next) {
    return absl::FailedPreconditionError(absl::StrCat(
        "first_position: ", cmd.first_position, " leaves a gap: layer ",
        cmd.layer, " of stream '", cmd.stream_id, "' expects position ", next));
  }
  const int64_t end = cmd.first_position + static_cast<int64_t>(cmd.rows);
  const NewRows fresh(cmd, next);
  if (fresh.rows() == 0) return AppendResult{next, 0};  // a replay
  const size_t rows = fresh.rows();
  const char* keys = fresh.keys();
  const char* values = fresh.values();
  RowBatch batch;
  batch.incarnation = stream.incarnation();
  batch.layer = cmd.layer;
  batch.first_position = next;
  batch.rows = rows;
  batch.keys = keys;
  batch.key_stride = batch.key_row_bytes = fresh.key_row_bytes();
  batch.values = values;
  batch.value_stride = batch.value_row_bytes = fresh.value_row_bytes();
  batch.evict_from = layer.first_position();
  batch.evict_before = std::max<int64_t>(
      batch.evict_from, end - static_cast<int64_t>(spec.capacity));
  batch.sync = cmd.sync;
  // The WAL write and the copy into RAM run side by side; the rows become
  // visible only once both are done.
  absl::Status written;
  LayerMemory::Staged staged;
  pool_->ParallelFor(2, [&](size_t i) {
    if (i == 0) {
      written = storage_->AppendRows(batch);
    } else {
      staged = layer.StageRows(keys, batch.key_stride, values,
                               batch.value_stride, rows);
    }
  });
  RETURN_IF_ERROR(written);
  layer.Publish(std::move(staged));
  budget_.Resized(static_cast<int64_t>(layer.BlockBytes()) - bytes_before);
  return AppendResult{
      end, rows, static_cast<uint64_t>(batch.evict_before - batch.evict_from)};
}

}  // namespace knnmem
