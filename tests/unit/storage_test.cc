#include "server/storage/storage.h"

#include <gtest/gtest.h>
#include <rocksdb/db.h>
#include <rocksdb/env.h>
#include <rocksdb/file_system.h>

#include <atomic>
#include <filesystem>
#include <fstream>
#include <iterator>
#include <map>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "base/temp_dir.h"

namespace knnmem {
namespace {

StreamSpec Spec() {
  StreamSpec s;
  s.layers = 2;
  s.heads = 2;
  s.key_dim = 3;
  s.value_dim = 1;
  s.capacity = 10;
  return s;
}

// Writes `rows` rows whose bytes encode (layer, position) so scans can be
// checked: key bytes 'k' + position, value bytes 'v' + position.
absl::Status WriteRows(Storage& st, uint64_t inc, uint32_t layer, int64_t first,
                       size_t rows, int64_t evict_from = 0,
                       int64_t evict_before = 0) {
  std::string keys, values;
  for (size_t r = 0; r < rows; ++r) {
    keys += std::string(4, static_cast<char>('a' + (first + r) % 26));
    values += std::string(2, static_cast<char>('A' + (first + r) % 26));
  }
  RowBatch b;
  b.incarnation = inc;
  b.layer = layer;
  b.first_position = first;
  b.rows = rows;
  b.keys = keys.data();
  b.key_stride = b.key_row_bytes = 4;
  b.values = values.data();
  b.value_stride = b.value_row_bytes = 2;
  b.evict_from = evict_from;
  b.evict_before = evict_before;
  return st.AppendRows(b);
}

std::map<std::pair<uint32_t, int64_t>, std::string> ScanAll(const Storage& st,
                                                            uint64_t inc) {
  std::map<std::pair<uint32_t, int64_t>, std::string> out;
  EXPECT_TRUE(
      st.ScanStream(inc, [&](uint32_t l, int64_t p, absl::string_view row) {
          out[{l, p}] = std::string(row);
          return absl::OkStatus();
        }).ok());
  return out;
}

TEST(StorageTest, ADataDirWithTheOldKeyLayoutIsRefusedByName) {
  for (const char* old_key : {"Ms1", "I\x01"}) {
    TempDir dir;
    {
      rocksdb::Options options;
      options.create_if_missing = true;
      rocksdb::DB* raw = nullptr;
      ASSERT_TRUE(rocksdb::DB::Open(options, dir.path(), &raw).ok());
      std::unique_ptr<rocksdb::DB> db(raw);
      ASSERT_TRUE(db->Put(rocksdb::WriteOptions(), old_key, "x").ok());
    }
    auto st = Storage::Open(dir.path());
    ASSERT_EQ(st.status().code(), absl::StatusCode::kFailedPrecondition)
        << old_key;
    EXPECT_NE(st.status().message().find(dir.path()), std::string::npos);
    EXPECT_NE(st.status().message().find("empty --data-dir"),
              std::string::npos);
  }
  // A data dir of this layout opens again.
  TempDir dir;
  {
    auto st = Storage::Open(dir.path());
    ASSERT_TRUE(st.ok());
    ASSERT_TRUE(
        (*st)->PutStream({"s1", (*st)->NewIncarnation(), Spec()}, 0).ok());
    ASSERT_TRUE((*st)->PutCentroids(1, 0, "centroids").ok());
  }
  EXPECT_TRUE(Storage::Open(dir.path()).ok());
}

TEST(StorageTest, RowsAndRecordsSurviveReopen) {
  TempDir dir;
  uint64_t inc;
  {
    auto st = Storage::Open(dir.path());
    ASSERT_TRUE(st.ok()) << st.status();
    inc = (*st)->NewIncarnation();
    ASSERT_TRUE((*st)->PutStream({"s1", inc, Spec()}, 0).ok());
    ASSERT_TRUE(WriteRows(**st, inc, 1, 0, 5).ok());
  }
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  std::vector<StreamRecord> records;
  ASSERT_TRUE((*st)
                  ->LoadStreams([&](StreamRecord r) {
                    records.push_back(r);
                    return absl::OkStatus();
                  })
                  .ok());
  ASSERT_EQ(records.size(), 1u);
  EXPECT_EQ(records[0].stream_id, "s1");
  EXPECT_EQ(records[0].incarnation, inc);
  EXPECT_EQ(records[0].spec, Spec());
  auto rows = ScanAll(**st, inc);
  ASSERT_EQ(rows.size(), 5u);
  EXPECT_EQ((rows[{1, 3}]), "ddddDD");
  // Incarnations are never handed out twice, even across a reopen.
  EXPECT_GT((*st)->NewIncarnation(), inc);
}

TEST(StorageTest, EvictionRangeDeletesOnlyTheEvictedPositionsOfThatLayer) {
  TempDir dir;
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok());
  const uint64_t inc = (*st)->NewIncarnation();
  ASSERT_TRUE(WriteRows(**st, inc, 0, 0, 8).ok());
  ASSERT_TRUE(WriteRows(**st, inc, 1, 0, 8).ok());
  ASSERT_TRUE(
      WriteRows(**st, inc, 0, 8, 4, /*evict_from=*/0, /*evict_before=*/5).ok());
  auto rows = ScanAll(**st, inc);
  int layer0 = 0, layer1 = 0;
  for (const auto& [key, row] : rows) {
    if (key.first == 0) {
      EXPECT_GE(key.second, 5);
      ++layer0;
    } else {
      ++layer1;
    }
  }
  EXPECT_EQ(layer0, 7);  // positions 5..11
  EXPECT_EQ(layer1, 8);
}

TEST(StorageTest, DeleteAndResetDropTheWholeIncarnationOnly) {
  TempDir dir;
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok());
  const uint64_t a = (*st)->NewIncarnation(), b = (*st)->NewIncarnation();
  ASSERT_TRUE((*st)->PutStream({"a", a, Spec()}, 0).ok());
  ASSERT_TRUE((*st)->PutStream({"b", b, Spec()}, 0).ok());
  ASSERT_TRUE(WriteRows(**st, a, 0, 0, 6).ok());
  ASSERT_TRUE(WriteRows(**st, b, 0, 0, 6).ok());
  const uint64_t a2 = (*st)->NewIncarnation();
  ASSERT_TRUE((*st)->PutStream({"a", a2, Spec()}, /*drop_incarnation=*/a).ok());
  EXPECT_TRUE(ScanAll(**st, a).empty());
  ASSERT_TRUE((*st)->DeleteStream("b", b).ok());
  EXPECT_TRUE(ScanAll(**st, b).empty());
  std::vector<std::string> ids;
  ASSERT_TRUE((*st)
                  ->LoadStreams([&](StreamRecord r) {
                    ids.push_back(r.stream_id + "@" +
                                  std::to_string(r.incarnation));
                    return absl::OkStatus();
                  })
                  .ok());
  EXPECT_EQ(ids, std::vector<std::string>{"a@" + std::to_string(a2)});
}

TEST(StorageTest, CompactionReclaimsTheSpaceOfADeletedStream) {
  TempDir dir;
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok());
  const uint64_t inc = (*st)->NewIncarnation();
  ASSERT_TRUE((*st)->PutStream({"big", inc, Spec()}, 0).ok());
  std::string keys(4096 * 1000, 'x'), values(4096 * 1000, 'y');
  RowBatch b;
  b.incarnation = inc;
  b.rows = 1000;
  b.keys = keys.data();
  b.key_stride = b.key_row_bytes = 4096;
  b.values = values.data();
  b.value_stride = b.value_row_bytes = 4096;
  ASSERT_TRUE((*st)->AppendRows(b).ok());
  ASSERT_TRUE((*st)->CompactIncarnation(inc).ok());  // flush into an SST
  const uint64_t before = (*st)->ApproximateBytesOnDisk();
  EXPECT_GT(before, 8000000u);
  ASSERT_TRUE((*st)->DeleteStream("big", inc).ok());
  ASSERT_TRUE((*st)->CompactIncarnation(inc).ok());
  EXPECT_LT((*st)->ApproximateBytesOnDisk(), before / 10);
}

TEST(StorageTest, SecondOpenOfTheSameDirectoryFailsWithTheDirectoryNamed) {
  TempDir dir;
  auto first = Storage::Open(dir.path());
  ASSERT_TRUE(first.ok());
  auto second = Storage::Open(dir.path());
  ASSERT_FALSE(second.ok());
  EXPECT_NE(second.status().message().find(dir.path()), std::string::npos)
      << second.status();
}

// The largest WAL file in `dir`.
std::string LargestWal(const std::string& dir) {
  std::string largest;
  uintmax_t size = 0;
  for (const auto& e : std::filesystem::directory_iterator(dir)) {
    if (e.path().extension() == ".log" && e.file_size() > size) {
      size = e.file_size();
      largest = e.path().string();
    }
  }
  return largest;
}

std::string ReadAll(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  return std::string((std::istreambuf_iterator<char>(in)),
                     std::istreambuf_iterator<char>());
}

TEST(StorageTest, ADamagedWalIsReportedKeptAsideAndRefusedWhenAsked) {
  TempDir dir;
  const uint64_t inc = 1;
  {
    auto st = Storage::Open(dir.path());
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE((*st)->PutStream({"s", inc, Spec()}, 0).ok());
    for (int b = 0; b < 8; ++b) {
      ASSERT_TRUE(WriteRows(**st, inc, 0, b * 100, 100).ok());
    }
  }  // closed: the rows are in the WAL only
  const std::string wal = LargestWal(dir.path());
  ASSERT_FALSE(wal.empty());
  std::string bytes = ReadAll(wal);
  ASSERT_GT(bytes.size(), 4000u);
  for (size_t i = bytes.size() / 4; i < bytes.size() / 4 + 16; ++i) {
    bytes[i] = static_cast<char>(~bytes[i]);
  }
  std::ofstream(wal, std::ios::binary | std::ios::trunc) << bytes;

  StorageConfig strict;
  strict.wal_recovery = WalRecovery::kAbsoluteConsistency;
  auto refused = Storage::Open(dir.path(), strict);
  ASSERT_FALSE(refused.ok());
  EXPECT_EQ(refused.status().code(), absl::StatusCode::kDataLoss);
  EXPECT_TRUE(absl::StrContains(refused.status().message(), "WAL is damaged"))
      << refused.status();
  // The damaged file is kept aside, byte for byte.
  std::string aside;
  for (const auto& e : std::filesystem::directory_iterator(dir.path())) {
    if (absl::StartsWith(e.path().filename().string(), "damaged-wal-")) {
      aside = (e.path() / std::filesystem::path(wal).filename()).string();
    }
  }
  ASSERT_FALSE(aside.empty());
  EXPECT_EQ(ReadAll(aside), bytes);

  // Point in time: it opens, says so, and the records after the damage are
  // gone (what the flag's default costs).
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_TRUE((*st)->wal_damaged_at_open());
  auto bounds = (*st)->LayerBounds(inc, 0);
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_LT(bounds->second, 800);
}

TEST(StorageTest, AnIntactWalIsNotReportedDamaged) {
  TempDir dir;
  {
    auto st = Storage::Open(dir.path());
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE((*st)->PutStream({"s", 1, Spec()}, 0).ok());
    ASSERT_TRUE(WriteRows(**st, 1, 0, 0, 100).ok());
  }
  ASSERT_FALSE(LargestWal(dir.path()).empty());
  StorageConfig strict;
  strict.wal_recovery = WalRecovery::kAbsoluteConsistency;
  auto st = Storage::Open(dir.path(), strict);
  ASSERT_TRUE(st.ok()) << st.status();
  EXPECT_FALSE((*st)->wal_damaged_at_open());
  auto bounds = (*st)->LayerBounds(1, 0);
  ASSERT_TRUE(bounds.ok());
  EXPECT_EQ(bounds->second, 100);
}

// A file system whose new table files fail with "no space" while `full` is
// set: what a flush meets on a full disk.
class FullDiskFileSystem : public rocksdb::FileSystemWrapper {
 public:
  FullDiskFileSystem()
      : rocksdb::FileSystemWrapper(rocksdb::FileSystem::Default()) {}
  const char* Name() const override { return "FullDiskFileSystem"; }
  rocksdb::IOStatus NewWritableFile(
      const std::string& name, const rocksdb::FileOptions& options,
      std::unique_ptr<rocksdb::FSWritableFile>* file,
      rocksdb::IODebugContext* debug) override {
    if (full.load() && absl::EndsWith(name, ".sst")) {
      return rocksdb::IOStatus::NoSpace("injected: no space for " + name);
    }
    return target()->NewWritableFile(name, options, file, debug);
  }
  std::atomic<bool> full{false};
};

TEST(StorageTest, ABackgroundErrorStopsWritesUntilTheDiskHasRoomAgain) {
  TempDir dir;
  auto fs = std::make_shared<FullDiskFileSystem>();
  std::unique_ptr<rocksdb::Env> env = rocksdb::NewCompositeEnv(fs);
  StorageConfig config;
  config.env = env.get();
  const uint64_t inc = 1;
  {
    auto st = Storage::Open(dir.path(), config);
    ASSERT_TRUE(st.ok()) << st.status();
    ASSERT_TRUE((*st)->PutStream({"s", inc, Spec()}, 0).ok());
    ASSERT_TRUE(WriteRows(**st, inc, 0, 0, 5).ok());
    EXPECT_FALSE((*st)->writes_stopped());
    fs->full = true;
    const absl::Status flushed = (*st)->Flush();
    EXPECT_EQ(flushed.code(), absl::StatusCode::kResourceExhausted) << flushed;
    EXPECT_TRUE((*st)->writes_stopped());
    EXPECT_EQ((*st)->background_errors(), 1u);
    EXPECT_FALSE(WriteRows(**st, inc, 0, 5, 5).ok());
    // Still full: resuming fails and writes stay stopped.
    EXPECT_FALSE((*st)->TryResume().ok());
    EXPECT_TRUE((*st)->writes_stopped());
    // Room again: resumed (by TryResume, or by RocksDB's own recovery,
    // which retries every 5 s), and writes go on without a restart.
    fs->full = false;
    bool resumed = false;
    for (int i = 0; i < 4 && !resumed; ++i) {
      resumed = (*st)->TryResume().ok() ||
                (*st)->AwaitWritesResumed(absl::Seconds(6));
    }
    ASSERT_TRUE(resumed);
    EXPECT_FALSE((*st)->writes_stopped());
    ASSERT_TRUE(WriteRows(**st, inc, 0, 5, 5).ok());
  }
  // Every row written before and after the error is there.
  auto st = Storage::Open(dir.path());
  ASSERT_TRUE(st.ok()) << st.status();
  auto bounds = (*st)->LayerBounds(inc, 0);
  ASSERT_TRUE(bounds.ok()) << bounds.status();
  EXPECT_EQ(bounds->first, 0);
  EXPECT_EQ(bounds->second, 10);
}

}  // namespace
}  // namespace knnmem
