// Storage: the source of truth, in RocksDB. The only module that touches it.
//
// Records (all integers big-endian so that keys sort numerically):
//   'M' stream_id                            -> incarnation (8) + EncodeSpec
//   'C'                                      -> next incarnation (8)
//   'D' incarnation(8) layer(4) position(8)  -> one token of one layer:
//        keys [heads, key_dim] then values [heads, value_dim], storage dtype
// A stream's data is keyed by its incarnation, a number that is never reused:
// ResetStream and DeleteStream drop a whole incarnation with one range delete
// in the same atomic batch that rewrites or removes the stream's record, so
// a crash leaves either the old or the new state, never a mix. FIFO eviction
// is a range delete of the evicted positions, in the same batch as the append
// that caused it.
//
// Disk space: RocksDB must never meet a full disk (Debian's build asserts
// in its WAL writer and aborts the process). Before a write of B bytes the
// disk must have free, besides the reserve, twice B (the WAL, then the
// table file a flush writes) and the memtables not yet flushed (their
// table files); otherwise the write is RESOURCE_EXHAUSTED naming the disk,
// and writes resume by themselves once there is room. So a restart always
// finds room to replay its WAL, which Open also checks before RocksDB does.
// Deletes need only the unflushed memtables and a little more: the reserve
// covers them.
//
// A damaged WAL: before RocksDB replays it, Open checks it (a read-only
// replay that tolerates only a torn tail). If it is damaged, Open says so on
// stderr, copies the WAL files into DIR/damaged-wal-SECONDS/ for inspection
// (RocksDB deletes them after the next flush; -2, -3 when several starts in
// one second found damage), reports wal_damaged_at_open(),
// and then opens as StorageConfig::wal_recovery says.
//
// Background errors: a flush, compaction or WAL write that fails (a full
// disk, too many open files) makes RocksDB refuse every write until the
// error is cleared. Storage counts and logs them, reports writes_stopped(),
// and TryResume() clears the error once the disk has room again.
#ifndef KNNMEM_SERVER_STORAGE_STORAGE_H_
#define KNNMEM_SERVER_STORAGE_STORAGE_H_

#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/time/time.h"
#include "base/sync.h"
#include "server/spec/stream_spec.h"
#include "server/storage/descriptor_reserve.h"
#include "server/storage/rocksdb_options.h"

namespace rocksdb {
class DB;
class Env;
struct Options;
class Statistics;
}  // namespace rocksdb

namespace knnmem {

// What Open does with a WAL damaged in the middle (not just a torn tail,
// which a crash of the process can leave and every mode drops silently).
enum class WalRecovery {
  // Replay up to the damage and drop every later record, intact ones too
  // (RocksDB's point-in-time recovery, the default).
  kPointInTime,
  // Refuse to open: DATA_LOSS naming the WAL (RocksDB's absolute
  // consistency, which also refuses a torn tail).
  kAbsoluteConsistency,
  // Skip the damaged records and replay every intact one after them.
  kSkipAnyCorrupted,
};

// Each mode by its name ("point-in-time", "absolute-consistency",
// "skip-any-corrupted"), as knnmem-server's --wal-recovery takes them.
const std::vector<std::pair<std::string, WalRecovery>>& WalRecoveryNames();

// How Storage::Open sets up RocksDB.
struct StorageConfig {
  // RocksDB's memtable size, and how many can be in RAM at once
  // (rocksdb_options.h).
  size_t write_buffer_bytes = size_t{64} << 20;
  int memtables = kMemtables;
  // Kept free on the disk of the data dir (see the top).
  uint64_t disk_reserve_bytes = 0;
  // The file system RocksDB uses; nullptr: the real one. Tests inject
  // faults here.
  rocksdb::Env* env = nullptr;
  WalRecovery wal_recovery = WalRecovery::kPointInTime;
  // File descriptors held back for RocksDB (descriptor_reserve.h; 0: none).
  int descriptor_reserve = 0;
};

struct StreamRecord {
  std::string stream_id;
  uint64_t incarnation = 0;
  StreamSpec spec;
};

// Rows of one Append, already in the storage dtype. Row r's keys start at
// keys + r * key_stride and are heads * key_dim elements; values likewise.
struct RowBatch {
  uint64_t incarnation = 0;
  uint32_t layer = 0;
  int64_t first_position = 0;
  size_t rows = 0;
  const char* keys = nullptr;
  size_t key_stride = 0;
  size_t key_row_bytes = 0;
  const char* values = nullptr;
  size_t value_stride = 0;
  size_t value_row_bytes = 0;
  // Positions [evict_from, evict_before) of this layer are deleted in the
  // same atomic write. Empty when evict_from >= evict_before.
  int64_t evict_from = 0;
  int64_t evict_before = 0;
  bool sync = false;
};

class Storage {
 public:
  // Opens (creating if missing) the database in `dir`. Errors are
  // environmental (permissions, corruption, a second process holding the
  // lock) and name the directory; FAILED_PRECONDITION when the disk has too
  // little room to replay the WAL.
  static absl::StatusOr<std::unique_ptr<Storage>> Open(
      const std::string& dir, const StorageConfig& config = StorageConfig());
  // The room a create or reset checks for: a stream that cannot take one
  // 512-token segment (8 heads x 128, float32 keys and values) is no use.
  static constexpr uint64_t kNewStreamRoom = uint64_t{4} << 20;
  // The room a delete checks for, besides the unflushed memtables.
  static constexpr uint64_t kDeleteRoom = uint64_t{1} << 20;
  ~Storage();

  Storage(const Storage&) = delete;
  Storage& operator=(const Storage&) = delete;

  // A fresh incarnation number, never returned before by this database.
  // Persisted by the next PutStream.
  uint64_t NewIncarnation();

  // Writes `record` (create, or reset when `drop_incarnation` != 0: that
  // incarnation's data is range-deleted in the same batch). A reset is
  // synced; a create is written through the WAL without fsync (it survives
  // a crash of the process, as an Append without `sync` does).
  // RESOURCE_EXHAUSTED naming the disk without kNewStreamRoom of room.
  absl::Status PutStream(const StreamRecord& record, uint64_t drop_incarnation);

  // Removes the stream's record and range-deletes its data. Synced.
  absl::Status DeleteStream(absl::string_view stream_id, uint64_t incarnation);

  // Writes every row of `batch` (and its eviction) as one atomic WriteBatch
  // through the WAL; fsyncs when batch.sync. Returns after the write.
  // RESOURCE_EXHAUSTED naming the disk when it has no room for the rows.
  absl::Status AppendRows(const RowBatch& batch);

  // Calls `fn` for every stream record, in stream_id order.
  absl::Status LoadStreams(
      const std::function<absl::Status(StreamRecord)>& fn) const;

  // Calls `fn(layer, position, record)` for every stored token of
  // `incarnation`, in (layer, position) order.
  absl::Status ScanStream(
      uint64_t incarnation,
      const std::function<absl::Status(uint32_t, int64_t, absl::string_view)>&
          fn) const;

  // The stored positions [first, next) of one layer of `incarnation`, by two
  // seeks; {0, 0} when the layer holds nothing.
  absl::StatusOr<std::pair<int64_t, int64_t>> LayerBounds(uint64_t incarnation,
                                                          uint32_t layer) const;
  // Bytes of one stored token's record (key and value) whose value is
  // `row_bytes` (no compression is configured).
  static uint64_t RecordBytes(uint64_t row_bytes);

  // The trained centroids of an APPROXIMATE layer (opaque bytes), kept so
  // that a reload probes the same lists; dropped with the incarnation.
  // Get returns "" when none were written.
  absl::Status PutCentroids(uint64_t incarnation, uint32_t layer,
                            absl::string_view centroids);
  absl::StatusOr<std::string> GetCentroids(uint64_t incarnation,
                                           uint32_t layer) const;

  // Compacts the key range of `incarnation` so that deleted data leaves the
  // disk. Slow: run it in the background.
  absl::Status CompactIncarnation(uint64_t incarnation);

  // Bytes of live SST files plus memtables, as RocksDB estimates them.
  uint64_t ApproximateBytesOnDisk() const;

  // Writes the memtables out as table files and waits; a failure is also a
  // background error (below).
  absl::Status Flush();
  // True when Open found the WAL damaged (see the top).
  bool wal_damaged_at_open() const { return wal_damaged_at_open_; }
  // Background errors since Open, and whether one stops writes now.
  uint64_t background_errors() const;
  bool writes_stopped() const;
  // While writes are stopped: once the disk has room for what RocksDB
  // holds, asks it to resume (DB::Resume). Errors RocksDB will not resume
  // from (a failed WAL creation, as when descriptors ran out, is "fatal" to
  // it) reopen the database instead: the WAL holds every acknowledged
  // write. Storage calls made while it reopens get UNAVAILABLE. OK when
  // writes are possible afterwards; otherwise why they are not.
  // UNAVAILABLE while RocksDB recovers by itself (it retries a full disk
  // every 5 s once it has room for its memtables).
  absl::Status TryResume();
  // Waits until writes are no longer stopped; false after `timeout`.
  bool AwaitWritesResumed(absl::Duration timeout);
  // Takes back the reserved descriptors lent to RocksDB, as far as free
  // ones exist; returns how many are held.
  int RefillDescriptorReserve() const;
  // Microseconds writes have been stalled since open.
  uint64_t WriteStallMicros() const;
  // Bytes RocksDB estimates compaction still has to rewrite.
  uint64_t CompactionPendingBytes() const;

 private:
  class ErrorListener;
  // Every use of the database holds a Use (storage.cc).
  class Use;

  Storage(std::unique_ptr<DescriptorReserve> reserve,
          std::unique_ptr<rocksdb::Env> env, std::unique_ptr<rocksdb::DB> db,
          std::unique_ptr<rocksdb::Options> options,
          std::shared_ptr<ErrorListener> errors, uint64_t next_incarnation,
          std::string dir, uint64_t disk_reserve_bytes);

  // OK when the disk has room for a write of `bytes` (see the top).
  absl::Status CheckRoom(rocksdb::DB* db, uint64_t bytes,
                         absl::string_view what,
                         bool keep_reserve = true) const;
  // Closes and opens the database again, once no Use is held; new Uses fail
  // meanwhile rather than wait, so that a caller holding its own lock
  // across two storage calls cannot deadlock against a reopen.
  absl::Status Reopen();

  // Outlive db_.
  const std::unique_ptr<DescriptorReserve> reserve_;  // null: none
  const std::unique_ptr<rocksdb::Env> env_;  // null: the configured one
  std::shared_ptr<ErrorListener> errors_;
  const std::unique_ptr<rocksdb::Options> options_;  // for Reopen
  mutable Mutex use_mu_;
  std::unique_ptr<rocksdb::DB> db_ ABSL_GUARDED_BY(use_mu_);  // null: closed
  mutable int uses_ ABSL_GUARDED_BY(use_mu_) = 0;
  bool reopening_ ABSL_GUARDED_BY(use_mu_) = false;
  const std::string dir_;
  const uint64_t disk_reserve_bytes_;
  bool wal_damaged_at_open_ = false;
  std::shared_ptr<rocksdb::Statistics> statistics_;
  Mutex mu_;
  uint64_t next_incarnation_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORAGE_STORAGE_H_
