// MemoryStore: the server's core. It takes typed commands that the service
// layer has already validated against the stream's spec, keeps RocksDB and
// RAM in step, and answers searches; it knows nothing of gRPC. A file per
// job:
//   memory_store.cc            open and close, lifecycle (create, get, list,
//                              reset, delete) and the idle TTL
//   memory_store_append.cc     Append: the WAL write and RAM side by side
//   memory_store_search.cc     Search, Attend and DecodeStep
//   memory_store_residency.cc  loading streams on first use; applying the
//                              budget's unloads (memory_budget.h)
//   memory_store_indexer.cc    the approximate tier's background indexer
// It builds on parts that know nothing of it: the streams (stream_registry.h),
// the memory budget (memory_budget.h), the background queues of the indexer and
// the compactor (base/background_queue.h), per-namespace charges
// (namespace_ledger.h) and the check against storage
// (verify_against_storage.h).
//
// Every method is thread-safe. Methods that return a Status use the gRPC
// code space: NOT_FOUND for an unknown stream, ALREADY_EXISTS for a create
// with a different spec, FAILED_PRECONDITION for a position gap,
// RESOURCE_EXHAUSTED for the memory budget, a quota or the disk, and the
// storage's own codes for environmental failures.
#ifndef KNNMEM_SERVER_STORE_MEMORY_STORE_H_
#define KNNMEM_SERVER_STORE_MEMORY_STORE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/background_queue.h"
#include "base/clock.h"
#include "base/worker_pool.h"
#include "server/search/attention.h"
#include "server/search/exact_search.h"
#include "server/spec/stream_spec.h"
#include "server/storage/storage.h"
#include "server/store/commands.h"
#include "server/store/memory_budget.h"
#include "server/store/namespace_ledger.h"
#include "server/store/stream.h"
#include "server/store/stream_registry.h"

namespace knnmem {

struct LayerState {
  int64_t first_position = 0;
  int64_t next_position = 0;
  // APPROXIMATE: entries in the approximate tier (the rest are scanned
  // exactly).
  uint64_t indexed_entries = 0;
};

struct StreamState {
  std::string stream_id;
  StreamSpec spec;
  std::vector<LayerState> layers;
  uint64_t bytes_in_ram = 0;   // 0 when not resident
  uint64_t bytes_on_disk = 0;  // its records in RocksDB (keys and values)
  bool resident = true;        // entries in RAM (else loaded on next use)
};

// Server-wide totals, for metrics.
struct StoreTotals {
  uint64_t streams = 0;
  uint64_t resident_streams = 0;
  uint64_t stored_vectors = 0;  // entries x heads over resident layers
  uint64_t ram_bytes = 0;       // blocks of resident streams
};

class MemoryStore {
 public:
  struct Options {
    std::string data_dir;
    int shards = 16;
    WorkerPool* pool = nullptr;  // required; runs search work
    // Idle TTL for streams whose spec says 0; 0 here means never.
    uint32_t default_ttl_seconds = 0;
    // Time source for TTLs; nullptr means the steady clock.
    const Clock* clock = nullptr;
    // The RAM the server may take (--memory-budget; 0: no limit). RocksDB's
    // memtables and block cache, the server's own RSS (ReserveForServer)
    // and kBytesPerStream per stream come out of it first; the streams'
    // blocks get the rest (memory_budget.h). Past it, the least recently
    // used idle streams are unloaded (storage keeps them) and loaded again
    // on their next use.
    uint64_t memory_budget_bytes = 0;
    // Disk space kept free besides what RocksDB's own flushes need
    // (storage.h): past it, creates, resets and appends are refused.
    uint64_t disk_reserve_bytes = 0;
    // What opening does with a damaged WAL (storage.h).
    WalRecovery wal_recovery = WalRecovery::kPointInTime;
    // File descriptors held back for RocksDB (StorageConfig).
    int descriptor_reserve = 0;
    // Called with the seconds each load of a stream took; may be empty.
    std::function<void(double)> on_load;
    // How APPROXIMATE layers' tiers hold their keys (--tier-int8-codes).
    TierOptions tier;
    // How every layer's blocks hold their keys (--exact-int8-codes).
    LayerOptions layer;
  };

  // Opens the storage in options.data_dir and reads every stream's record;
  // a stream's entries are loaded into RAM on its first use. Fails when the
  // storage cannot be opened or is corrupt.
  static absl::StatusOr<std::unique_ptr<MemoryStore>> Open(
      const Options& options);
  ~MemoryStore();

  // Creates `stream_id`. If it exists with an identical spec, returns its
  // state and created = false; with a different spec, ALREADY_EXISTS. A
  // new stream is charged to its namespace (namespace_ledger.h):
  // RESOURCE_EXHAUSTED naming the quota when that would pass `quota`.
  absl::StatusOr<StreamState> CreateStream(const std::string& stream_id,
                                           const StreamSpec& spec,
                                           bool* created,
                                           const Quota* quota = nullptr);
  // The stream's state. One not in RAM is not loaded: its positions come
  // from two seeks in storage per layer.
  absl::StatusOr<StreamState> GetStream(absl::string_view stream_id) const;
  absl::StatusOr<StreamSpec> GetSpec(absl::string_view stream_id) const;
  // Up to `limit` streams with id > `after` that start with `prefix`,
  // sorted by id; *more tells whether further such streams follow. States
  // as GetStream's (storage seeks for the streams not in RAM).
  std::vector<StreamState> ListStreams(absl::string_view after, size_t limit,
                                       bool* more,
                                       absl::string_view prefix = "") const;
  // What the streams of namespace `ns` are charged (namespace_ledger.h).
  NamespaceUsage NamespaceCharge(absl::string_view ns) const {
    return ledger_.Usage(ns);
  }
  // Drops every entry of the stream and keeps its spec; positions restart
  // at 0. Durable when it returns.
  absl::Status ResetStream(absl::string_view stream_id);
  // Removes the stream; durable when it returns. Searches already running
  // finish on what they saw. Disk space is reclaimed by a background
  // compaction.
  absl::Status DeleteStream(absl::string_view stream_id);

  // Stores the rows at positions not yet stored: positions already stored are
  // acknowledged and not stored again (exactly-once retries); a first
  // position beyond the layer's next position is FAILED_PRECONDITION. The
  // rows are in the RocksDB WAL (fsynced when cmd.sync) before it returns,
  // and visible to searches only then. It first makes room for the rows in
  // the memory budget (RESOURCE_EXHAUSTED naming --memory-budget when the
  // streams in use leave none) and loads the stream if it is not in RAM.
  // FAILED_PRECONDITION too when the stream was re-created with another
  // spec since the command was validated.
  absl::StatusOr<AppendResult> Append(const AppendCommand& cmd);

  // Top-k per (query, head) over the layer's retained entries: exact for
  // EXACT layers and when cmd.exact; for APPROXIMATE layers, the IVF tier's
  // candidates over the indexed positions merged with an exact scan of the
  // rest (approximate_index.h). Loads the stream if it is not in RAM; the
  // search itself runs on the pool with no lock held.
  absl::StatusOr<Neighbours> Search(const SearchCommand& cmd) const;

  // Softmax attention (attention.h) over the top-k entries per (query,
  // head), found as Search finds them without cmd.exact: exact for EXACT
  // layers, tiered for APPROXIMATE ones.
  absl::StatusOr<Attention> Attend(const AttendCommand& cmd) const;

  // A decode step of many streams: for each step its Append (if any), then
  // its Attend (if any), the steps in parallel on the pool (and each
  // search in parallel over heads). A step that fails (unknown stream,
  // position gap, ...) fails alone: results[i].status is steps[i]'s.
  std::vector<StepResult> DecodeStep(absl::Span<const StepCommand> steps);

  // Deletes every stream idle for longer than its TTL (the spec's, else the
  // default); returns how many. The server calls it periodically.
  size_t DeleteIdleStreams();

  // VerifyAgainstStorage (verify_against_storage.h) over every stream held:
  // DATA_LOSS naming the first difference between RAM and RocksDB. Loads
  // the streams not in RAM and reads the whole database: for tests and
  // offline checks, not the request path.
  absl::Status VerifyAgainstStorage() const;

  size_t stream_count() const { return static_cast<size_t>(registry_.size()); }
  ResidencyCounters residency() const { return budget_.counters(); }
  // Bytes the resident streams' blocks take (what the budget limits).
  uint64_t resident_bytes() const { return budget_.resident_bytes(); }
  // With a budget: takes `bytes` out of the streams' share of it, the
  // process's own RAM outside streams (main passes its RSS once serving:
  // code, threads, gRPC), unless it is over a quarter of the share (a toy
  // budget, as in tests: then the share stays).
  void ReserveForServer(uint64_t bytes) { budget_.ReserveForServer(bytes); }
  // RAM a stream costs while not resident, counted against the budget for
  // every stream held (memory_budget.h).
  static constexpr int64_t kBytesPerStream = MemoryBudget::kBytesPerStream;
  // Walks every stream: O(streams).
  StoreTotals Totals() const;
  const Storage& storage() const { return *storage_; }
  // After a background error of the storage stopped writes: resumes them
  // once the cause is gone (Storage::TryResume).
  absl::Status TryResumeWrites() { return storage_->TryResume(); }
  // Blocks until the background compactor has nothing queued or running:
  // every compaction queued so far has finished.
  void WaitForBackgroundCompactions() { compactor_.WaitUntilIdle(); }
  // Blocks until the background indexer (APPROXIMATE layers) has nothing
  // queued or running: every such layer is indexed up to its exact tail.
  void WaitForIndexing() { indexer_.WaitUntilIdle(); }

 private:
  // A layer of an APPROXIMATE stream for the indexer.
  struct IndexWork {
    std::weak_ptr<Stream> stream;
    uint32_t layer;
  };

  MemoryStore(const Options& options, std::unique_ptr<Storage> storage);
  absl::StatusOr<std::shared_ptr<Stream>> FindOrNotFound(
      absl::string_view stream_id) const;
  // The stream, if it still has the spec a command was validated against.
  absl::StatusOr<std::shared_ptr<Stream>> FindWithSpec(
      absl::string_view stream_id, const StreamSpec& spec) const;
  // Deletes the stream if `condition` holds under its lifecycle lock;
  // FAILED_PRECONDITION otherwise.
  absl::Status DeleteStreamIf(
      absl::string_view stream_id,
      const std::function<bool(const Stream&)>& condition);
  // An immutable view of one layer of the stream.
  absl::StatusOr<LayerSnapshot> Snapshot(absl::string_view stream_id,
                                         const StreamSpec& spec,
                                         uint32_t layer) const;
  absl::Status Recover();
  StepResult RunStep(const StepCommand& step);
  // About the bytes a step scores (keys x queries) and appends.
  uint64_t StepBytes(const StepCommand& step) const;
  // Attend over `snapshot`, a view of the command's layer.
  absl::StatusOr<Attention> AttendOn(const LayerSnapshot& snapshot,
                                     const AttendCommand& cmd) const;
  absl::StatusOr<AppendResult> AppendResident(Stream& stream,
                                              const AppendCommand& cmd)
      ABSL_SHARED_LOCKS_REQUIRED(stream.lifecycle_mutex());
  StreamState StateOf(const Stream& stream) const;

  // Residency (memory_store_residency.cc). Loads the stream's entries from
  // storage unless it is resident; NOT_FOUND once it is deleted.
  absl::Status EnsureResident(const std::shared_ptr<Stream>& stream) const;
  // Reads the entries of the stream's incarnation into its (empty) layers.
  absl::Status LoadLayers(Stream& stream) const
      ABSL_EXCLUSIVE_LOCKS_REQUIRED(stream.lifecycle_mutex());
  // MemoryBudget::MakeRoom over every stream but `keep`: unloads least
  // recently used idle streams until `bytes` more fit in the budget;
  // RESOURCE_EXHAUSTED naming `field` when the streams in use alone leave
  // no room.
  absl::Status MakeRoom(uint64_t bytes, const Stream* keep,
                        absl::string_view field) const;

  // The indexer (memory_store_indexer.cc). Queues layers [first_layer,
  // end_layer) of an APPROXIMATE stream, those with enough new entries.
  void ScheduleIndexing(const std::shared_ptr<Stream>& stream,
                        uint32_t first_layer, uint32_t end_layer) const;
  // One round for one layer: extends its index by up to a bounded amount;
  // true when there is more to do.
  bool IndexOnce(Stream& stream, uint32_t layer);

  WorkerPool* const pool_;
  const uint32_t default_ttl_seconds_;
  const TierOptions tier_;
  const LayerOptions layer_;
  const std::function<void(double)> on_load_;
  mutable MemoryBudget budget_;
  SteadyClock steady_clock_;
  const Clock* const clock_;
  std::unique_ptr<Storage> storage_;
  StreamRegistry registry_;
  NamespaceLedger ledger_;
  // Last, so that they stop before what their work uses is destroyed.
  // Compactions of dropped incarnations: space on disk, not data.
  BackgroundQueue<uint64_t> compactor_;
  // Extending the approximate tier of layers; at nice 19.
  mutable BackgroundQueue<IndexWork> indexer_;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_MEMORY_STORE_H_
