#include "server/store/memory_store.h"

#include <algorithm>
#include <cstring>
#include <functional>

#include "absl/hash/hash.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/approximate/approximate_index.h"
#include "server/storage/rocksdb_options.h"

namespace knnmem {
namespace {

absl::Status StreamNotFound(absl::string_view stream_id) {
  return absl::NotFoundError(
      absl::StrCat("stream_id: stream '", stream_id, "' does not exist"));
}

// RocksDB's memtables (up to two) count against RAM too: with a budget they
// take at most 1/32 of it each (2 MiB to 64 MiB).
size_t WriteBufferBytes(uint64_t memory_budget_bytes) {
  constexpr uint64_t kDefault = uint64_t{64} << 20, kMin = uint64_t{2} << 20;
  if (memory_budget_bytes == 0) return kDefault;
  return static_cast<size_t>(
      std::clamp<uint64_t>(memory_budget_bytes / 32, kMin, kDefault));
}

int Memtables(uint64_t memory_budget_bytes) {
  return memory_budget_bytes == 0 ? kMemtables : kBudgetedMemtables;
}

// What the streams' blocks may take of the budget: what RocksDB's memtables
// and its 8 MiB block cache leave, unless they would take more than half (a
// toy budget: then the streams get all of it).
uint64_t StreamBudget(uint64_t memory_budget_bytes) {
  const uint64_t rocksdb =
      Memtables(memory_budget_bytes) * WriteBufferBytes(memory_budget_bytes) +
      (uint64_t{8} << 20);
  return rocksdb <= memory_budget_bytes / 2 ? memory_budget_bytes - rocksdb
                                            : memory_budget_bytes;
}

}  // namespace

StreamState MemoryStore::StateOf(const Stream& stream) const
    ABSL_NO_THREAD_SAFETY_ANALYSIS {
  StreamState s;
  s.stream_id = stream.id();
  s.spec = stream.spec();
  ReaderMutexLock lock(&stream.lifecycle_mutex());
  s.resident = stream.resident();
  for (uint32_t l = 0; l < stream.spec().layers; ++l) {
    if (s.resident) {
      const LayerMemory& layer = stream.layer(l);
      LayerState state{layer.first_position(), layer.next_position(), 0};
      if (layer.index() != nullptr) {
        state.indexed_entries = static_cast<uint64_t>(std::max<int64_t>(
            0, std::min(layer.index()->indexed_end(), state.next_position) -
                   state.first_position));
      }
      s.layers.push_back(state);
      s.bytes_in_ram += layer.BytesInRam();
    } else {
      // Not in RAM: two seeks in storage tell the positions.
      absl::StatusOr<std::pair<int64_t, int64_t>> bounds =
          storage_->LayerBounds(stream.incarnation(), l);
      s.layers.push_back(bounds.ok()
                             ? LayerState{bounds->first, bounds->second, 0}
                             : LayerState{});
    }
  }
  for (const LayerState& l : s.layers) {
    s.bytes_on_disk +=
        static_cast<uint64_t>(l.next_position - l.first_position) *
        Storage::RecordBytes(s.spec.RowBytes());
  }
  return s;
}

namespace {

StorageConfig StorageConfigOf(const MemoryStore::Options& options) {
  StorageConfig config;
  config.write_buffer_bytes = WriteBufferBytes(options.memory_budget_bytes);
  config.memtables = Memtables(options.memory_budget_bytes);
  config.disk_reserve_bytes = options.disk_reserve_bytes;
  config.wal_recovery = options.wal_recovery;
  config.descriptor_reserve = options.descriptor_reserve;
  return config;
}

}  // namespace

absl::StatusOr<std::unique_ptr<MemoryStore>> MemoryStore::Open(
    const Options& options) {
  if (options.pool == nullptr) {
    return absl::InvalidArgumentError("MemoryStore needs a worker pool");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Storage> storage,
                   Storage::Open(options.data_dir, StorageConfigOf(options)));
  std::unique_ptr<MemoryStore> store(
      new MemoryStore(options, std::move(storage)));
  RETURN_IF_ERROR(store->Recover());
  return store;
}

MemoryStore::MemoryStore(const Options& options,
                         std::unique_ptr<Storage> storage)
    : pool_(options.pool),
      default_ttl_seconds_(options.default_ttl_seconds),
      configured_budget_bytes_(options.memory_budget_bytes),
      memory_budget_bytes_(StreamBudget(options.memory_budget_bytes)),
      on_load_(options.on_load),
      clock_(options.clock != nullptr ? options.clock : &steady_clock_),
      storage_(std::move(storage)) {
  const int shards = std::max(1, options.shards);
  for (int i = 0; i < shards; ++i) shards_.push_back(std::make_unique<Shard>());
  compactor_ = std::thread([this] { RunCompactor(); });
  indexer_ = std::thread([this] { RunIndexer(); });
}

MemoryStore::~MemoryStore() {
  {
    MutexLock lock(&compact_mu_);
    stopping_ = true;
  }
  {
    MutexLock lock(&index_mu_);
    index_stopping_ = true;
  }
  compactor_.join();
  indexer_.join();
}

absl::Status MemoryStore::Recover() {
  // Only the records: each stream's entries load on its first use, so a
  // restart with many streams serves at once.
  return storage_->LoadStreams([this](StreamRecord record) -> absl::Status {
    auto stream = std::make_shared<Stream>(record.stream_id, record.spec,
                                           record.incarnation,
                                           /*resident=*/false);
    stream->Touch(clock_->NowMicros());  // a restart counts as a use
    // Charged without a quota: a lowered quota refuses only new streams.
    (void)ledger_.Charge(record.stream_id, ChargeOf(record.spec), nullptr);
    Shard& shard = ShardOf(record.stream_id);
    MutexLock lock(&shard.mu);
    shard.streams.emplace(record.stream_id, std::move(stream));
    ++streams_held_;
    return absl::OkStatus();
  });
}

MemoryStore::Shard& MemoryStore::ShardOf(absl::string_view stream_id) const {
  const size_t h = absl::HashOf(stream_id);
  return *shards_[h % shards_.size()];
}

std::shared_ptr<Stream> MemoryStore::Find(absl::string_view stream_id) const {
  Shard& shard = ShardOf(stream_id);
  ReaderMutexLock lock(&shard.mu);
  auto it = shard.streams.find(stream_id);
  return it == shard.streams.end() ? nullptr : it->second;
}

absl::StatusOr<std::shared_ptr<Stream>> MemoryStore::FindOrNotFound(
    absl::string_view stream_id) const {
  std::shared_ptr<Stream> s = Find(stream_id);
  if (s == nullptr) return StreamNotFound(stream_id);
  return s;
}

absl::StatusOr<std::shared_ptr<Stream>> MemoryStore::FindWithSpec(
    absl::string_view stream_id, const StreamSpec& spec) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  if (stream->spec() != spec) {
    // Deleted and created again between validation and now.
    return absl::FailedPreconditionError(
        absl::StrCat("stream_id: stream '", stream_id,
                     "' was re-created with another spec"));
  }
  stream->Touch(clock_->NowMicros());  // every data-plane call is a use
  return stream;
}

absl::StatusOr<StreamState> MemoryStore::CreateStream(
    const std::string& stream_id, const StreamSpec& spec, bool* created,
    const Quota* quota) {
  Shard& shard = ShardOf(stream_id);
  MutexLock admin(&shard.admin_mu);
  if (std::shared_ptr<Stream> existing = Find(stream_id)) {
    if (existing->spec() != spec) {
      return absl::AlreadyExistsError(
          absl::StrCat("stream_id: stream '", stream_id,
                       "' already exists with a different spec"));
    }
    *created = false;
    existing->Touch(clock_->NowMicros());
    return StateOf(*existing);
  }
  const NamespaceUsage charge = ChargeOf(spec);
  RETURN_IF_ERROR(ledger_.Charge(stream_id, charge, quota));
  StreamRecord record{stream_id, storage_->NewIncarnation(), spec};
  if (absl::Status put = storage_->PutStream(record, /*drop_incarnation=*/0);
      !put.ok()) {
    ledger_.Refund(stream_id, charge);
    return put;
  }
  auto stream = std::make_shared<Stream>(stream_id, spec, record.incarnation);
  stream->Touch(clock_->NowMicros());
  {
    MutexLock lock(&shard.mu);
    shard.streams.emplace(stream_id, stream);
    ++streams_held_;
  }
  *created = true;
  return StateOf(*stream);
}

absl::StatusOr<StreamState> MemoryStore::GetStream(
    absl::string_view stream_id) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  return StateOf(*stream);
}

absl::StatusOr<StreamSpec> MemoryStore::GetSpec(
    absl::string_view stream_id) const {
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  return stream->spec();
}

std::vector<StreamState> MemoryStore::ListStreams(
    absl::string_view after, size_t limit, bool* more,
    absl::string_view prefix) const {
  std::vector<std::shared_ptr<Stream>> all;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) {
      if (id > after && absl::StartsWith(id, prefix)) all.push_back(stream);
    }
  }
  auto by_id = [](const std::shared_ptr<Stream>& a,
                  const std::shared_ptr<Stream>& b) {
    return a->id() < b->id();
  };
  *more = all.size() > limit;
  if (*more) {
    std::nth_element(all.begin(), all.begin() + limit, all.end(), by_id);
    all.resize(limit);
  }
  std::sort(all.begin(), all.end(), by_id);
  std::vector<StreamState> out;
  out.reserve(all.size());
  for (const auto& s : all) out.push_back(StateOf(*s));
  return out;
}

absl::Status MemoryStore::ResetStream(absl::string_view stream_id) {
  Shard& shard = ShardOf(stream_id);
  MutexLock admin(&shard.admin_mu);
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  MutexLock lifecycle(&stream->lifecycle_mutex());
  const uint64_t old = stream->incarnation();
  StreamRecord record{stream->id(), storage_->NewIncarnation(), stream->spec()};
  RETURN_IF_ERROR(storage_->PutStream(record, old));
  resident_bytes_ -= static_cast<int64_t>(stream->BytesInRam());
  stream->Reset(record.incarnation);
  stream->Touch(clock_->NowMicros());
  CompactInBackground(old);
  return absl::OkStatus();
}

absl::Status MemoryStore::DeleteStream(absl::string_view stream_id) {
  return DeleteStreamIf(stream_id, [](const Stream&) { return true; });
}

absl::Status MemoryStore::DeleteStreamIf(
    absl::string_view stream_id,
    const std::function<bool(const Stream&)>& condition) {
  Shard& shard = ShardOf(stream_id);
  MutexLock admin(&shard.admin_mu);
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  uint64_t incarnation;
  {
    MutexLock lifecycle(&stream->lifecycle_mutex());
    if (!condition(*stream)) {
      return absl::FailedPreconditionError("stream_id: condition not met");
    }
    incarnation = stream->incarnation();
    RETURN_IF_ERROR(storage_->DeleteStream(stream_id, incarnation));
    stream->MarkDeleted();
    resident_bytes_ -= static_cast<int64_t>(stream->BytesInRam());
    stream->Unload();  // in-flight searches keep their blocks until done
  }
  {
    MutexLock lock(&shard.mu);
    if (shard.streams.erase(stream_id) > 0) --streams_held_;
  }
  ledger_.Refund(stream_id, ChargeOf(stream->spec()));
  CompactInBackground(incarnation);
  return absl::OkStatus();
}

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
  if (end <= next) return AppendResult{next, 0};  // a replay: already stored

  const size_t skip = static_cast<size_t>(next - cmd.first_position);
  const size_t rows = cmd.rows - skip;
  const size_t key_elems = size_t{spec.heads} * spec.key_dim;
  const size_t value_elems = size_t{spec.heads} * spec.value_dim;
  const size_t in_es = ElementSize(cmd.dtype);
  const char* keys = cmd.keys.data() + skip * key_elems * in_es;
  const char* values = cmd.values.data() + skip * value_elems * in_es;
  std::string converted_keys, converted_values;
  if (cmd.dtype != spec.storage_dtype) {
    converted_keys =
        TranscodeFloats(keys, rows * key_elems, cmd.dtype, spec.storage_dtype);
    converted_values = TranscodeFloats(values, rows * value_elems, cmd.dtype,
                                       spec.storage_dtype);
    keys = converted_keys.data();
    values = converted_values.data();
  }
  const size_t es = ElementSize(spec.storage_dtype);
  RowBatch batch;
  batch.incarnation = stream.incarnation();
  batch.layer = cmd.layer;
  batch.first_position = next;
  batch.rows = rows;
  batch.keys = keys;
  batch.key_stride = batch.key_row_bytes = key_elems * es;
  batch.values = values;
  batch.value_stride = batch.value_row_bytes = value_elems * es;
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
  resident_bytes_ += static_cast<int64_t>(layer.BlockBytes()) - bytes_before;
  return AppendResult{
      end, rows, static_cast<uint64_t>(batch.evict_before - batch.evict_from)};
}

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

absl::StatusOr<SearchResult> MemoryStore::Search(
    const SearchCommand& cmd) const {
  ASSIGN_OR_RETURN(LayerSnapshot snapshot,
                   Snapshot(cmd.stream_id, cmd.spec, cmd.layer));
  if (snapshot.index != nullptr && !cmd.exact) {
    return TieredSearch(cmd.spec, snapshot, cmd.queries, cmd.options, *pool_);
  }
  return ExactSearch(cmd.spec, snapshot, cmd.queries, cmd.options, *pool_);
}

absl::StatusOr<AttendResult> MemoryStore::Attend(
    const AttendCommand& cmd) const {
  ASSIGN_OR_RETURN(LayerSnapshot snapshot,
                   Snapshot(cmd.stream_id, cmd.spec, cmd.layer));
  return AttendOn(snapshot, cmd);
}

absl::StatusOr<AttendResult> MemoryStore::AttendOn(
    const LayerSnapshot& snapshot, const AttendCommand& cmd) const {
  SearchOptions search;
  search.k = cmd.k;
  search.cancelled = cmd.cancelled;
  ASSIGN_OR_RETURN(
      SearchResult top,
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
    absl::StatusOr<AttendResult> attended = AttendOn(*snapshot, cmd);
    if (!attended.ok()) {
      r.status = attended.status();
      return r;
    }
    r.attended = *std::move(attended);
  }
  return r;
}

size_t MemoryStore::stream_count() const {
  size_t n = 0;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    n += shard->streams.size();
  }
  return n;
}

size_t MemoryStore::DeleteIdleStreams() {
  const int64_t now = clock_->NowMicros();
  std::vector<std::string> idle;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) {
      const uint32_t ttl = stream->spec().ttl_seconds != 0
                               ? stream->spec().ttl_seconds
                               : default_ttl_seconds_;
      if (ttl != 0 &&
          now - stream->last_used_micros() > int64_t{ttl} * 1'000'000) {
        idle.push_back(id);
      }
    }
  }
  size_t deleted = 0;
  for (const std::string& id : idle) {
    // Deleted only if still idle: a use since the scan keeps it.
    if (DeleteStreamIf(id, [&](const Stream& s) {
          const uint32_t ttl = s.spec().ttl_seconds != 0 ? s.spec().ttl_seconds
                                                         : default_ttl_seconds_;
          return clock_->NowMicros() - s.last_used_micros() >
                 int64_t{ttl} * 1'000'000;
        }).ok()) {
      ++deleted;
    }
  }
  return deleted;
}

absl::Status MemoryStore::VerifyAgainstStorage() const {
  std::vector<std::shared_ptr<Stream>> streams;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) streams.push_back(stream);
  }
  size_t records = 0;
  RETURN_IF_ERROR(storage_->LoadStreams([&](StreamRecord) {
    ++records;
    return absl::OkStatus();
  }));
  if (records != streams.size()) {
    return absl::DataLossError(absl::StrCat("verify: ", streams.size(),
                                            " streams in RAM, ", records,
                                            " records in storage"));
  }
  for (const auto& stream : streams) {
    const StreamSpec& spec = stream->spec();
    RETURN_IF_ERROR(EnsureResident(stream));  // compares what it loads
    std::vector<LayerSnapshot> layers;
    uint64_t incarnation;
    {
      ReaderMutexLock lock(&stream->lifecycle_mutex());
      incarnation = stream->incarnation();
      for (uint32_t l = 0; l < spec.layers; ++l) {
        layers.push_back(stream->layer(l).Snapshot());
      }
    }
    const size_t es = ElementSize(spec.storage_dtype);
    const size_t key_bytes = spec.key_dim * es,
                 value_bytes = spec.value_dim * es;
    std::vector<int64_t> expected(spec.layers);
    for (uint32_t l = 0; l < spec.layers; ++l)
      expected[l] = layers[l].first_position;
    RETURN_IF_ERROR(storage_->ScanStream(
        incarnation,
        [&](uint32_t layer, int64_t position,
            absl::string_view row) -> absl::Status {
          const std::string where =
              absl::StrCat("verify: stream '", stream->id(), "' layer ", layer,
                           " position ", position);
          if (layer >= spec.layers || position != expected[layer] ||
              position >= layers[layer].next_position) {
            return absl::DataLossError(absl::StrCat(
                where, ": in storage but not in RAM at that place"));
          }
          ++expected[layer];
          const Block& b = layers[layer].BlockOf(position);
          const size_t r = static_cast<size_t>(position - b.first_position());
          for (uint32_t h = 0; h < spec.heads; ++h) {
            if (std::memcmp(row.data() + h * key_bytes,
                            b.keys(h) + r * key_bytes, key_bytes) != 0 ||
                std::memcmp(
                    row.data() + spec.heads * key_bytes + h * value_bytes,
                    b.values(h) + r * value_bytes, value_bytes) != 0) {
              return absl::DataLossError(absl::StrCat(
                  where, " head ", h, ": RAM and storage bytes differ"));
            }
          }
          return absl::OkStatus();
        }));
    for (uint32_t l = 0; l < spec.layers; ++l) {
      if (expected[l] != layers[l].next_position) {
        return absl::DataLossError(absl::StrCat(
            "verify: stream '", stream->id(), "' layer ", l,
            ": RAM holds up to position ", layers[l].next_position - 1,
            ", storage up to ", expected[l] - 1));
      }
    }
  }
  return absl::OkStatus();
}

StoreTotals MemoryStore::Totals() const {
  StoreTotals t;
  std::vector<std::shared_ptr<Stream>> streams;
  for (const auto& shard : shards_) {
    ReaderMutexLock lock(&shard->mu);
    for (const auto& [id, stream] : shard->streams) streams.push_back(stream);
  }
  t.streams = streams.size();
  for (const auto& stream : streams) {
    ReaderMutexLock lock(&stream->lifecycle_mutex());
    if (!stream->resident() || stream->deleted()) continue;
    ++t.resident_streams;
    for (uint32_t l = 0; l < stream->spec().layers; ++l) {
      const LayerMemory& layer = stream->layer(l);
      t.ram_bytes += layer.BytesInRam();
      t.stored_vectors += static_cast<uint64_t>(layer.next_position() -
                                                layer.first_position()) *
                          stream->spec().heads;
    }
  }
  return t;
}

void MemoryStore::CompactInBackground(uint64_t incarnation) {
  MutexLock lock(&compact_mu_);
  compact_queue_.push_back(incarnation);
  ++compactions_queued_;
}

void MemoryStore::WaitForBackgroundCompactions() {
  MutexLock lock(&compact_mu_);
  const uint64_t target = compactions_queued_;
  auto done = [this, target]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(compact_mu_) {
    return compactions_done_ >= target;
  };
  compact_mu_.Await(absl::Condition(&done));
}

void MemoryStore::RunCompactor() {
  for (;;) {
    std::vector<uint64_t> work;
    {
      MutexLock lock(&compact_mu_);
      auto ready = [this]() ABSL_EXCLUSIVE_LOCKS_REQUIRED(compact_mu_) {
        return stopping_ || !compact_queue_.empty();
      };
      compact_mu_.Await(absl::Condition(&ready));
      if (stopping_) return;  // pending compactions are an optimisation only
      work.swap(compact_queue_);
    }
    for (uint64_t incarnation : work) {
      // A failed compaction only delays reclaiming space; the data is
      // already deleted.
      storage_->CompactIncarnation(incarnation).IgnoreError();
    }
    MutexLock lock(&compact_mu_);
    compactions_done_ += work.size();
  }
}

}  // namespace knnmem
