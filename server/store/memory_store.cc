// MemoryStore: opening and closing, the lifecycle of streams (create, get,
// list, reset, delete), the idle TTL and the totals.
#include "server/store/memory_store.h"

#include <algorithm>
#include <functional>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "server/storage/rocksdb_options.h"
#include "server/store/verify_against_storage.h"

namespace knnmem {
namespace {

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
      tier_(options.tier),
      layer_(options.layer),
      on_load_(options.on_load),
      budget_(options.memory_budget_bytes,
              StreamBudget(options.memory_budget_bytes)),
      clock_(options.clock != nullptr ? options.clock : &steady_clock_),
      storage_(std::move(storage)),
      registry_(options.shards),
      compactor_([this](uint64_t& incarnation) {
        // A failed compaction only delays reclaiming space; the data is
        // already deleted.
        storage_->CompactIncarnation(incarnation).IgnoreError();
        return false;
      }),
      // Indexing yields the CPU to requests (nice 19): at normal priority,
      // Appends to a stream being indexed ran at 0.73 of their plain speed
      // on two cores. An exact scan of the not yet indexed tail keeps
      // searches exact meanwhile.
      indexer_(
          [this](IndexWork& work) {
            std::shared_ptr<Stream> stream = work.stream.lock();
            return stream != nullptr && IndexOnce(*stream, work.layer);
          },
          /*nice=*/19) {}

MemoryStore::~MemoryStore() {
  // Both stop before either is waited for (their destructors join them).
  compactor_.Stop();
  indexer_.Stop();
}

absl::Status MemoryStore::Recover() {
  // Only the records: each stream's entries load on its first use, so a
  // restart with many streams serves at once.
  return storage_->LoadStreams([this](StreamRecord record) -> absl::Status {
    auto stream = std::make_shared<Stream>(record.stream_id, record.spec, tier_,
                                           layer_, record.incarnation,
                                           /*resident=*/false);
    stream->Touch(clock_->NowMicros());  // a restart counts as a use
    // Charged without a quota: a lowered quota refuses only new streams.
    (void)ledger_.Charge(record.stream_id, ChargeOf(record.spec), nullptr);
    registry_.Insert(std::move(stream));
    return absl::OkStatus();
  });
}

absl::StatusOr<std::shared_ptr<Stream>> MemoryStore::FindOrNotFound(
    absl::string_view stream_id) const {
  std::shared_ptr<Stream> s = registry_.Find(stream_id);
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
  MutexLock admin(&registry_.AdminMutex(stream_id));
  if (std::shared_ptr<Stream> existing = registry_.Find(stream_id)) {
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
  auto stream = std::make_shared<Stream>(stream_id, spec, tier_, layer_,
                                         record.incarnation);
  stream->Touch(clock_->NowMicros());
  registry_.Insert(stream);
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
  const std::vector<std::shared_ptr<Stream>> all =
      registry_.List(after, limit, more, prefix);
  std::vector<StreamState> out;
  out.reserve(all.size());
  for (const auto& s : all) out.push_back(StateOf(*s));
  return out;
}

absl::Status MemoryStore::ResetStream(absl::string_view stream_id) {
  MutexLock admin(&registry_.AdminMutex(stream_id));
  ASSIGN_OR_RETURN(std::shared_ptr<Stream> stream, FindOrNotFound(stream_id));
  MutexLock lifecycle(&stream->lifecycle_mutex());
  const uint64_t old = stream->incarnation();
  StreamRecord record{stream->id(), storage_->NewIncarnation(), stream->spec()};
  RETURN_IF_ERROR(storage_->PutStream(record, old));
  budget_.Resized(-static_cast<int64_t>(stream->BytesInRam()));
  stream->Reset(record.incarnation);
  stream->Touch(clock_->NowMicros());
  compactor_.Push(old);
  return absl::OkStatus();
}

absl::Status MemoryStore::DeleteStream(absl::string_view stream_id) {
  return DeleteStreamIf(stream_id, [](const Stream&) { return true; });
}

absl::Status MemoryStore::DeleteStreamIf(
    absl::string_view stream_id,
    const std::function<bool(const Stream&)>& condition) {
  MutexLock admin(&registry_.AdminMutex(stream_id));
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
    budget_.Resized(-static_cast<int64_t>(stream->BytesInRam()));
    stream->Unload();  // in-flight searches keep their blocks until done
  }
  registry_.Erase(stream_id);
  ledger_.Refund(stream_id, ChargeOf(stream->spec()));
  compactor_.Push(incarnation);
  return absl::OkStatus();
}

size_t MemoryStore::DeleteIdleStreams() {
  const int64_t now = clock_->NowMicros();
  std::vector<std::string> idle;
  registry_.ForEach([&](const std::shared_ptr<Stream>& stream) {
    const uint32_t ttl = stream->spec().ttl_seconds != 0
                             ? stream->spec().ttl_seconds
                             : default_ttl_seconds_;
    if (ttl != 0 &&
        now - stream->last_used_micros() > int64_t{ttl} * 1'000'000) {
      idle.push_back(stream->id());
    }
  });
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
  return knnmem::VerifyAgainstStorage(
      registry_, *storage_,
      [this](const std::shared_ptr<Stream>& s) { return EnsureResident(s); });
}

StoreTotals MemoryStore::Totals() const {
  StoreTotals t;
  const std::vector<std::shared_ptr<Stream>> streams = registry_.All();
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

}  // namespace knnmem
