#include "server/storage/storage.h"

#include <rocksdb/db.h>
#include <rocksdb/listener.h>
#include <rocksdb/options.h>
#include <rocksdb/slice.h>
#include <rocksdb/statistics.h>
#include <rocksdb/write_batch.h>
#include <sys/statvfs.h>

#include <algorithm>
#include <atomic>
#include <cstdio>
#include <cstring>
#include <filesystem>
#include <optional>
#include <system_error>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/time/clock.h"
#include "absl/time/time.h"
#include "base/status_macros.h"
#include "server/storage/rocksdb_options.h"

namespace knnmem {
namespace {

// Bytes the caller may still write on the file system holding `path`, or
// nothing when it cannot be told.
std::optional<uint64_t> FreeBytes(const std::string& path) {
  struct statvfs v;
  if (statvfs(path.c_str(), &v) != 0) return std::nullopt;
  return static_cast<uint64_t>(v.f_bavail) * v.f_frsize;
}

std::string Mib(uint64_t bytes) { return absl::StrCat(bytes >> 20, " MiB"); }

// Opening replays the WAL into memtables and writes them out as table files
// before it deletes the WAL: it needs about the WAL's size free. Refuses
// here, with a message, rather than let RocksDB meet a full disk.
// The WAL files in `dir` (none when it cannot be read).
std::vector<std::filesystem::path> WalFiles(const std::string& dir) {
  std::vector<std::filesystem::path> wal;
  std::error_code error;
  for (const auto& entry : std::filesystem::directory_iterator(dir, error)) {
    if (entry.path().extension() == ".log") wal.push_back(entry.path());
  }
  return wal;
}

absl::Status CheckRoomToRecover(const std::string& dir) {
  uint64_t wal = 0;
  std::error_code error;
  for (const auto& file : WalFiles(dir)) {
    const uintmax_t size = std::filesystem::file_size(file, error);
    if (!error) wal += size;
  }
  const std::optional<uint64_t> free = FreeBytes(dir);
  if (!free || *free >= wal + (uint64_t{1} << 20)) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "storage: '", dir, "' has ", Mib(*free), " free, and replaying its ",
      Mib(wal), " of WAL needs about ", Mib(wal + (uint64_t{1} << 20)),
      ": free some space on that disk and start again"));
}

// Every key but the rows sorts below the rows ('D'), and rows are appended
// at ever higher (incarnation, layer, position): a memtable's flush then
// covers a range above everything flushed before, and RocksDB moves the file
// down the levels without rewriting it. Until 2026-11-30 stream records were
// 'M' and centroids 'I', above the rows: every flushed file that held one
// spanned the rows of later flushes, and each compaction rewrote them (in a
// fill like W-append's, 15 instead of 9 ms of CPU per 4 MiB batch).
constexpr char kCentroidTag = 'A';  // + incarnation + layer: IVF centroids
constexpr char kMetaTag = 'B';      // + stream id: the stream's record
constexpr char kCounterKey[] = "C";
constexpr char kDataTag = 'D';  // + incarnation + layer + position: a row
// The tags of records and centroids before 2026-11-30.
constexpr char kOldTags[] = {'I', 'M'};

template <typename T>
void PutBigEndian(std::string& out, T v) {
  for (int i = sizeof(T) - 1; i >= 0; --i) {
    out.push_back(
        static_cast<char>((static_cast<uint64_t>(v) >> (8 * i)) & 0xff));
  }
}

template <typename T>
T GetBigEndian(const char* p) {
  uint64_t v = 0;
  for (size_t i = 0; i < sizeof(T); ++i) {
    v = (v << 8) | static_cast<unsigned char>(p[i]);
  }
  return static_cast<T>(v);
}

std::string MetaKey(absl::string_view stream_id) {
  return absl::StrCat(absl::string_view(&kMetaTag, 1), stream_id);
}

// tag incarnation(8) [layer(4)]: the prefix of a stream's data ('D') or
// centroid ('A') keys.
std::string IncarnationKey(char tag, uint64_t incarnation) {
  std::string k(1, tag);
  PutBigEndian(k, incarnation);
  return k;
}
std::string IncarnationKey(char tag, uint64_t incarnation, uint32_t layer) {
  std::string k = IncarnationKey(tag, incarnation);
  PutBigEndian(k, layer);
  return k;
}

std::string CentroidKey(uint64_t incarnation) {
  return IncarnationKey(kCentroidTag, incarnation);
}
std::string CentroidKey(uint64_t incarnation, uint32_t layer) {
  return IncarnationKey(kCentroidTag, incarnation, layer);
}

// 'D' incarnation(8) [layer(4) [position(8)]]
std::string DataKey(uint64_t incarnation) {
  return IncarnationKey(kDataTag, incarnation);
}
std::string DataKey(uint64_t incarnation, uint32_t layer) {
  return IncarnationKey(kDataTag, incarnation, layer);
}
std::string DataKey(uint64_t incarnation, uint32_t layer, int64_t position) {
  std::string k = DataKey(incarnation, layer);
  PutBigEndian(k, static_cast<uint64_t>(position));
  return k;
}
constexpr size_t kDataKeySize = 1 + 8 + 4 + 8;

absl::Status FromRocks(const rocksdb::Status& s, absl::string_view what) {
  if (s.ok()) return absl::OkStatus();
  const std::string msg = absl::StrCat("storage: ", what, ": ", s.ToString());
  if (s.IsIOError() && s.subcode() == rocksdb::Status::kNoSpace) {
    return absl::ResourceExhaustedError(msg);
  }
  if (s.IsCorruption()) return absl::DataLossError(msg);
  // Descriptors, a failing disk: the server stops writes and resumes them
  // once the cause is gone (Server::Maintain), so a retry can succeed.
  if (s.IsIOError()) return absl::UnavailableError(msg);
  return absl::InternalError(msg);
}

std::string EncodeRecordValue(const StreamRecord& r) {
  std::string v;
  PutBigEndian(v, r.incarnation);
  v += EncodeSpec(r.spec);
  return v;
}

rocksdb::WALRecoveryMode RocksRecoveryMode(WalRecovery mode) {
  switch (mode) {
    case WalRecovery::kAbsoluteConsistency:
      return rocksdb::WALRecoveryMode::kAbsoluteConsistency;
    case WalRecovery::kSkipAnyCorrupted:
      return rocksdb::WALRecoveryMode::kSkipAnyCorruptedRecords;
    case WalRecovery::kPointInTime:
      break;
  }
  return rocksdb::WALRecoveryMode::kPointInTimeRecovery;
}

// True when the WAL in `dir` is damaged beyond a torn tail (see storage.h);
// DATA_LOSS when it is and `mode` refuses that. A damaged WAL's files are
// copied aside first.
absl::StatusOr<bool> CheckWal(const std::string& dir,
                              const rocksdb::Options& options,
                              WalRecovery mode) {
  const std::vector<std::filesystem::path> wal = WalFiles(dir);
  if (wal.empty()) return false;
  std::error_code error;
  rocksdb::Options check = options;
  check.wal_recovery_mode =
      rocksdb::WALRecoveryMode::kTolerateCorruptedTailRecords;
  check.create_if_missing = false;
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status replayed =
      rocksdb::DB::OpenForReadOnly(check, dir, &raw);
  delete raw;
  if (!replayed.IsCorruption()) return false;  // other errors: Open says
  // A new directory each time: one per start that found damage.
  const std::string stem =
      absl::StrCat("damaged-wal-", absl::ToUnixSeconds(absl::Now()));
  std::filesystem::path aside = std::filesystem::path(dir) / stem;
  for (int n = 2; std::filesystem::exists(aside, error); ++n) {
    aside = std::filesystem::path(dir) / absl::StrCat(stem, "-", n);
  }
  std::filesystem::create_directories(aside, error);
  for (const auto& file : wal) {
    std::filesystem::copy_file(file, aside / file.filename(), error);
  }
  const bool refuse = mode == WalRecovery::kAbsoluteConsistency;
  const std::string what = absl::StrCat(
      "storage '", dir, "': the WAL is damaged (", replayed.ToString(),
      "); its files are kept in '", aside.string(), "'",
      error ? absl::StrCat(" (copying failed: ", error.message(), ")") : "");
  std::fprintf(stderr, "knnmem-server: %s; %s\n", what.c_str(),
               refuse ? "--wal-recovery absolute-consistency: not opening"
               : mode == WalRecovery::kSkipAnyCorrupted
                   ? "replaying every intact record (skip-any-corrupted)"
                   : "point-in-time recovery drops every record after the "
                     "damage");
  if (refuse) {
    return absl::DataLossError(
        absl::StrCat(what,
                     "; start with --wal-recovery point-in-time or "
                     "skip-any-corrupted to open it anyway"));
  }
  return true;
}

}  // namespace

const std::vector<std::pair<std::string, WalRecovery>>& WalRecoveryNames() {
  static const auto* names =
      new std::vector<std::pair<std::string, WalRecovery>>{
          {"point-in-time", WalRecovery::kPointInTime},
          {"absolute-consistency", WalRecovery::kAbsoluteConsistency},
          {"skip-any-corrupted", WalRecovery::kSkipAnyCorrupted}};
  return *names;
}

// Counts and logs RocksDB's background errors, and tells whether one stops
// writes now. Called on RocksDB's threads.
class Storage::ErrorListener final : public rocksdb::EventListener {
 public:
  explicit ErrorListener(std::string dir) : dir_(std::move(dir)) {}

  void OnBackgroundError(rocksdb::BackgroundErrorReason reason,
                         rocksdb::Status* error) override {
    errors_.fetch_add(1);
    SetStopped(true);
    std::fprintf(stderr,
                 "knnmem-server: storage '%s': background error during %s: "
                 "%s; writes are refused until it is resolved\n",
                 dir_.c_str(), ReasonName(reason), error->ToString().c_str());
  }
  void OnErrorRecoveryEnd(
      const rocksdb::BackgroundErrorRecoveryInfo& info) override {
    if (!info.new_bg_error.ok()) return;
    SetStopped(false);
    std::fprintf(stderr,
                 "knnmem-server: storage '%s': recovered from %s; writes "
                 "resume\n",
                 dir_.c_str(), info.old_bg_error.ToString().c_str());
  }

  uint64_t errors() const { return errors_.load(); }
  bool stopped() const {
    MutexLock lock(&mu_);
    return stopped_;
  }
  void SetStopped(bool stopped) {
    MutexLock lock(&mu_);
    stopped_ = stopped;
  }
  bool AwaitResumed(absl::Duration timeout) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](bool* stopped) { return !*stopped; }, &stopped_),
        timeout);
  }

 private:
  static const char* ReasonName(rocksdb::BackgroundErrorReason reason) {
    switch (reason) {
      case rocksdb::BackgroundErrorReason::kFlush:
      case rocksdb::BackgroundErrorReason::kManifestWriteNoWAL:
      case rocksdb::BackgroundErrorReason::kFlushNoWAL:
        return "a flush";
      case rocksdb::BackgroundErrorReason::kCompaction:
        return "a compaction";
      case rocksdb::BackgroundErrorReason::kWriteCallback:
        return "a write";
      case rocksdb::BackgroundErrorReason::kMemTable:
        return "a memtable insert";
      case rocksdb::BackgroundErrorReason::kManifestWrite:
        return "a MANIFEST write";
    }
    return "background work";
  }

  const std::string dir_;
  std::atomic<uint64_t> errors_{0};
  mutable Mutex mu_;
  bool stopped_ ABSL_GUARDED_BY(mu_) = false;
};

absl::StatusOr<std::unique_ptr<Storage>> Storage::Open(
    const std::string& dir, const StorageConfig& config) {
  RETURN_IF_ERROR(CheckRoomToRecover(dir));
  rocksdb::Options options =
      StorageOptions(config.write_buffer_bytes, config.memtables);
  if (config.env != nullptr) options.env = config.env;
  std::unique_ptr<DescriptorReserve> reserve;
  std::unique_ptr<rocksdb::Env> env;
  if (config.descriptor_reserve > 0) {
    reserve = std::make_unique<DescriptorReserve>(config.descriptor_reserve);
    env = rocksdb::NewCompositeEnv(ReservingFileSystem(
        config.env != nullptr ? config.env->GetFileSystem() : nullptr,
        reserve.get()));
    options.env = env.get();
  }
  ASSIGN_OR_RETURN(const bool wal_damaged,
                   CheckWal(dir, options, config.wal_recovery));
  options.wal_recovery_mode = RocksRecoveryMode(config.wal_recovery);
  auto errors = std::make_shared<ErrorListener>(dir);
  options.listeners.push_back(errors);
  rocksdb::DB* raw = nullptr;
  rocksdb::Status s = rocksdb::DB::Open(options, dir, &raw);
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "storage: cannot open RocksDB in '", dir, "': ", s.ToString()));
  }
  std::unique_ptr<rocksdb::DB> db(raw);
  {
    std::unique_ptr<rocksdb::Iterator> it(
        db->NewIterator(rocksdb::ReadOptions()));
    for (const char tag : kOldTags) {
      it->Seek(std::string(1, tag));
      if (it->Valid() && it->key().starts_with(std::string(1, tag))) {
        return absl::FailedPreconditionError(absl::StrCat(
            "storage: '", dir,
            "' was written by a knnmem from before 2026-11-30 (another key "
            "layout); start it with an empty --data-dir"));
      }
    }
    RETURN_IF_ERROR(FromRocks(it->status(), "checking the key layout"));
  }
  uint64_t next = 1;
  std::string counter;
  s = db->Get(rocksdb::ReadOptions(), kCounterKey, &counter);
  if (s.ok() && counter.size() == 8) {
    next = GetBigEndian<uint64_t>(counter.data());
  } else if (!s.IsNotFound()) {
    return FromRocks(s.ok() ? rocksdb::Status::Corruption("counter") : s,
                     "reading the incarnation counter");
  }
  std::unique_ptr<Storage> storage(
      new Storage(std::move(reserve), std::move(env), std::move(db),
                  std::make_unique<rocksdb::Options>(std::move(options)),
                  std::move(errors), next, dir, config.disk_reserve_bytes));
  storage->wal_damaged_at_open_ = wal_damaged;
  return storage;
}

// A hold on the open database: while any is held, Reopen waits; while
// Reopen runs (or after it failed), a new one holds nothing and status()
// says why.
class Storage::Use {
 public:
  explicit Use(const Storage& storage) : storage_(storage) {
    MutexLock lock(&storage.use_mu_);
    if (storage.reopening_ || storage.db_ == nullptr) return;
    ++storage.uses_;
    db_ = storage.db_.get();
  }
  ~Use() {
    if (db_ == nullptr) return;
    MutexLock lock(&storage_.use_mu_);
    --storage_.uses_;
  }
  Use(const Use&) = delete;
  Use& operator=(const Use&) = delete;

  // The database, or null (status() is then UNAVAILABLE).
  rocksdb::DB* db() const { return db_; }
  absl::Status status() const {
    if (db_ != nullptr) return absl::OkStatus();
    return absl::UnavailableError(
        absl::StrCat("storage: '", storage_.dir_,
                     "' is being reopened after a background error; retry"));
  }

 private:
  const Storage& storage_;
  rocksdb::DB* db_ = nullptr;
};

Storage::Storage(std::unique_ptr<DescriptorReserve> reserve,
                 std::unique_ptr<rocksdb::Env> env,
                 std::unique_ptr<rocksdb::DB> db,
                 std::unique_ptr<rocksdb::Options> options,
                 std::shared_ptr<ErrorListener> errors,
                 uint64_t next_incarnation, std::string dir,
                 uint64_t disk_reserve_bytes)
    : reserve_(std::move(reserve)),
      env_(std::move(env)),
      errors_(std::move(errors)),
      options_(std::move(options)),
      db_(std::move(db)),
      dir_(std::move(dir)),
      disk_reserve_bytes_(disk_reserve_bytes),
      statistics_(options_->statistics),
      next_incarnation_(next_incarnation) {}

absl::Status Storage::CheckRoom(rocksdb::DB* db, uint64_t bytes,
                                absl::string_view what,
                                bool keep_reserve) const {
  const std::optional<uint64_t> free = FreeBytes(dir_);
  if (!free) return absl::OkStatus();  // cannot tell: RocksDB will
  uint64_t unflushed = 0;
  db->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables, &unflushed);
  const uint64_t need =
      (keep_reserve ? disk_reserve_bytes_ : 0) + unflushed + 2 * bytes;
  if (*free >= need) return absl::OkStatus();
  return absl::ResourceExhaustedError(absl::StrCat(
      "disk: ", what, " refused: '", dir_, "' has ", Mib(*free),
      " free and this write needs ", Mib(need), " (twice its ", Mib(bytes),
      ", ", Mib(unflushed), " of memtables not yet flushed, and the reserve ",
      "of ", Mib(disk_reserve_bytes_),
      ", --disk-reserve); writes resume once there is room"));
}

Storage::~Storage() {
  MutexLock lock(&use_mu_);
  if (db_ != nullptr) db_->Close().PermitUncheckedError();
}

uint64_t Storage::NewIncarnation() {
  MutexLock lock(&mu_);
  return next_incarnation_++;
}

absl::Status Storage::PutStream(const StreamRecord& record,
                                uint64_t drop_incarnation) {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  RETURN_IF_ERROR(CheckRoom(
      use.db(), kNewStreamRoom,
      drop_incarnation == 0 ? "creating a stream" : "resetting a stream"));
  rocksdb::WriteBatch batch;
  std::string counter;
  {
    MutexLock lock(&mu_);
    PutBigEndian(counter, next_incarnation_);
  }
  batch.Put(kCounterKey, counter);
  batch.Put(MetaKey(record.stream_id), EncodeRecordValue(record));
  if (drop_incarnation != 0) {
    batch.DeleteRange(DataKey(drop_incarnation), DataKey(drop_incarnation + 1));
    batch.DeleteRange(CentroidKey(drop_incarnation),
                      CentroidKey(drop_incarnation + 1));
  }
  rocksdb::WriteOptions wo;
  // A reset is synced; a create is in the WAL, as an Append without sync:
  // it survives the process (SIGKILL), and thousands of creates a second
  // do not each wait for the disk.
  wo.sync = drop_incarnation != 0;
  return FromRocks(use.db()->Write(wo, &batch), "writing stream record");
}

absl::Status Storage::DeleteStream(absl::string_view stream_id,
                                   uint64_t incarnation) {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  RETURN_IF_ERROR(CheckRoom(use.db(), kDeleteRoom, "deleting a stream",
                            /*keep_reserve=*/false));
  rocksdb::WriteBatch batch;
  batch.Delete(MetaKey(stream_id));
  batch.DeleteRange(DataKey(incarnation), DataKey(incarnation + 1));
  batch.DeleteRange(CentroidKey(incarnation), CentroidKey(incarnation + 1));
  rocksdb::WriteOptions wo;
  wo.sync = true;
  return FromRocks(use.db()->Write(wo, &batch), "deleting stream");
}

absl::Status Storage::AppendRows(const RowBatch& b) {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  RETURN_IF_ERROR(CheckRoom(
      use.db(), b.rows * (b.key_row_bytes + b.value_row_bytes), "append"));
  rocksdb::WriteBatch batch(
      b.rows * (b.key_row_bytes + b.value_row_bytes + kDataKeySize + 16) + 64);
  if (b.evict_from < b.evict_before) {
    batch.DeleteRange(DataKey(b.incarnation, b.layer, b.evict_from),
                      DataKey(b.incarnation, b.layer, b.evict_before));
  }
  std::string key = DataKey(b.incarnation, b.layer, 0);
  // Rows the same batch evicts (a batch longer than the capacity) are not
  // written: a Put after the range delete in one batch would outlive it.
  const size_t skip = static_cast<size_t>(std::clamp<int64_t>(
      b.evict_before - b.first_position, 0, static_cast<int64_t>(b.rows)));
  for (size_t r = skip; r < b.rows; ++r) {
    key.resize(kDataKeySize - 8);
    PutBigEndian(
        key, static_cast<uint64_t>(b.first_position + static_cast<int64_t>(r)));
    const rocksdb::Slice key_slice(key);
    const rocksdb::Slice parts[2] = {
        rocksdb::Slice(b.keys + r * b.key_stride, b.key_row_bytes),
        rocksdb::Slice(b.values + r * b.value_stride, b.value_row_bytes)};
    batch.Put(rocksdb::SliceParts(&key_slice, 1),
              rocksdb::SliceParts(parts, 2));
  }
  rocksdb::WriteOptions wo;
  wo.sync = b.sync;
  return FromRocks(use.db()->Write(wo, &batch), "appending rows");
}

absl::Status Storage::LoadStreams(
    const std::function<absl::Status(StreamRecord)>& fn) const {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  std::unique_ptr<rocksdb::Iterator> it(
      use.db()->NewIterator(rocksdb::ReadOptions()));
  const std::string prefix(1, kMetaTag);
  for (it->Seek(prefix); it->Valid() && it->key().starts_with(prefix);
       it->Next()) {
    StreamRecord r;
    r.stream_id = it->key().ToString().substr(1);
    const rocksdb::Slice v = it->value();
    if (v.size() < 8)
      return absl::DataLossError("storage: stream record too short");
    r.incarnation = GetBigEndian<uint64_t>(v.data());
    absl::StatusOr<StreamSpec> spec =
        DecodeSpec(absl::string_view(v.data() + 8, v.size() - 8));
    if (!spec.ok()) {
      return absl::DataLossError(absl::StrCat("storage: stream '", r.stream_id,
                                              "': ", spec.status().message()));
    }
    r.spec = *spec;
    absl::Status s = fn(std::move(r));
    if (!s.ok()) return s;
  }
  return FromRocks(it->status(), "scanning stream records");
}

absl::Status Storage::ScanStream(
    uint64_t incarnation,
    const std::function<absl::Status(uint32_t, int64_t, absl::string_view)>& fn)
    const {
  rocksdb::ReadOptions ro;
  const std::string lower = DataKey(incarnation);
  const std::string upper = DataKey(incarnation + 1);
  rocksdb::Slice upper_slice(upper);
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;
  ro.readahead_size = 4 << 20;
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  std::unique_ptr<rocksdb::Iterator> it(use.db()->NewIterator(ro));
  for (it->Seek(lower); it->Valid(); it->Next()) {
    const rocksdb::Slice k = it->key();
    if (k.size() != kDataKeySize) {
      return absl::DataLossError("storage: malformed data key");
    }
    const uint32_t layer = GetBigEndian<uint32_t>(k.data() + 9);
    const int64_t position = GetBigEndian<int64_t>(k.data() + 13);
    absl::Status s =
        fn(layer, position,
           absl::string_view(it->value().data(), it->value().size()));
    if (!s.ok()) return s;
  }
  return FromRocks(it->status(), "scanning stream data");
}

absl::StatusOr<std::pair<int64_t, int64_t>> Storage::LayerBounds(
    uint64_t incarnation, uint32_t layer) const {
  const std::string lower = DataKey(incarnation, layer);
  const std::string upper = DataKey(incarnation, layer + 1);
  rocksdb::Slice lower_slice(lower), upper_slice(upper);
  rocksdb::ReadOptions ro;
  ro.iterate_lower_bound = &lower_slice;
  ro.iterate_upper_bound = &upper_slice;
  ro.fill_cache = false;
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  std::unique_ptr<rocksdb::Iterator> it(use.db()->NewIterator(ro));
  it->Seek(lower);
  if (!it->Valid()) {
    RETURN_IF_ERROR(FromRocks(it->status(), "seeking a layer"));
    return std::make_pair(int64_t{0}, int64_t{0});
  }
  if (it->key().size() != kDataKeySize) {
    return absl::DataLossError("storage: malformed data key");
  }
  const int64_t first = GetBigEndian<int64_t>(it->key().data() + 13);
  it->SeekToLast();
  if (!it->Valid() || it->key().size() != kDataKeySize) {
    RETURN_IF_ERROR(FromRocks(it->status(), "seeking a layer"));
    return absl::DataLossError("storage: a layer's last key vanished");
  }
  const int64_t last = GetBigEndian<int64_t>(it->key().data() + 13);
  return std::make_pair(first, last + 1);
}

uint64_t Storage::RecordBytes(uint64_t row_bytes) {
  return row_bytes + kDataKeySize;
}

absl::Status Storage::PutCentroids(uint64_t incarnation, uint32_t layer,
                                   absl::string_view centroids) {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  rocksdb::WriteOptions wo;
  return FromRocks(
      use.db()->Put(wo, CentroidKey(incarnation, layer),
                    rocksdb::Slice(centroids.data(), centroids.size())),
      "writing centroids");
}

absl::StatusOr<std::string> Storage::GetCentroids(uint64_t incarnation,
                                                  uint32_t layer) const {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  std::string value;
  rocksdb::Status s = use.db()->Get(rocksdb::ReadOptions(),
                                    CentroidKey(incarnation, layer), &value);
  if (s.IsNotFound()) return std::string();
  RETURN_IF_ERROR(FromRocks(s, "reading centroids"));
  return value;
}

absl::Status Storage::CompactIncarnation(uint64_t incarnation) {
  const std::string lower = DataKey(incarnation);
  const std::string upper = DataKey(incarnation + 1);
  rocksdb::Slice lo(lower), hi(upper);
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  return FromRocks(
      use.db()->CompactRange(rocksdb::CompactRangeOptions(), &lo, &hi),
      "compacting");
}

absl::Status Storage::Flush() {
  Use use(*this);
  RETURN_IF_ERROR(use.status());
  return FromRocks(use.db()->Flush(rocksdb::FlushOptions()),
                   "flushing memtables");
}

uint64_t Storage::background_errors() const { return errors_->errors(); }

bool Storage::writes_stopped() const { return errors_->stopped(); }

bool Storage::AwaitWritesResumed(absl::Duration timeout) {
  return errors_->AwaitResumed(timeout);
}

absl::Status Storage::TryResume() {
  if (!errors_->stopped()) return absl::OkStatus();
  rocksdb::Status resumed;
  {
    Use use(*this);
    if (use.db() != nullptr) {
      // A flush writes out what the memtables hold: wait for room for it.
      RETURN_IF_ERROR(CheckRoom(use.db(), 0, "resuming writes",
                                /*keep_reserve=*/false));
      resumed = use.db()->Resume();
      if (resumed.IsBusy()) {
        return absl::UnavailableError(
            "storage: RocksDB is recovering from the background error by "
            "itself; writes resume when it is done");
      }
    }
  }
  if (resumed.severity() >= rocksdb::Status::Severity::kFatalError ||
      Use(*this).db() == nullptr) {
    // RocksDB will not resume from a fatal error; or a reopen failed.
    RETURN_IF_ERROR(Reopen());
  } else {
    RETURN_IF_ERROR(FromRocks(resumed, "resuming writes"));
  }
  errors_->SetStopped(false);
  std::fprintf(stderr, "knnmem-server: storage '%s': writes resumed\n",
               dir_.c_str());
  return absl::OkStatus();
}

absl::Status Storage::Reopen() {
  MutexLock lock(&use_mu_);
  reopening_ = true;
  use_mu_.Await(absl::Condition(
      +[](int* uses) { return *uses == 0; }, &uses_));
  if (db_ != nullptr) {
    db_->Close().PermitUncheckedError();  // it reports the background error
    db_.reset();
  }
  rocksdb::DB* raw = nullptr;
  const rocksdb::Status s = rocksdb::DB::Open(*options_, dir_, &raw);
  reopening_ = false;
  if (!s.ok()) {
    return absl::UnavailableError(absl::StrCat(
        "storage: cannot reopen RocksDB in '", dir_, "': ", s.ToString()));
  }
  db_.reset(raw);
  std::fprintf(stderr, "knnmem-server: storage '%s': reopened\n", dir_.c_str());
  return absl::OkStatus();
}

uint64_t Storage::ApproximateBytesOnDisk() const {
  Use use(*this);
  if (use.db() == nullptr) return 0;
  uint64_t sst = 0, memtables = 0;
  use.db()->GetIntProperty(rocksdb::DB::Properties::kLiveSstFilesSize, &sst);
  use.db()->GetIntProperty(rocksdb::DB::Properties::kCurSizeAllMemTables,
                           &memtables);
  return sst + memtables;
}

int Storage::RefillDescriptorReserve() const {
  return reserve_ == nullptr ? 0 : reserve_->Refill();
}

uint64_t Storage::WriteStallMicros() const {
  return statistics_->getTickerCount(rocksdb::STALL_MICROS);
}

uint64_t Storage::CompactionPendingBytes() const {
  Use use(*this);
  if (use.db() == nullptr) return 0;
  uint64_t bytes = 0;
  use.db()->GetIntProperty(
      rocksdb::DB::Properties::kEstimatePendingCompactionBytes, &bytes);
  return bytes;
}

}  // namespace knnmem
