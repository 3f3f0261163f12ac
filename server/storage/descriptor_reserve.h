// DescriptorReserve: file descriptors held back for RocksDB.
//
// Connections and RocksDB's files share the process's descriptors, and
// gRPC (1.51) has no bound on connections: idle clients could take every
// descriptor, and RocksDB, unable to create its next WAL, stopped writes
// with an error it does not resume from. The reserve holds `target`
// descriptors (on /dev/null) that nothing else can take; when RocksDB fails
// to open a file for want of descriptors (EMFILE), ReservingFileSystem closes
// one of them and retries, so RocksDB keeps writing while connections wait
// in the listen backlog. Refill() takes descriptors back once there are free
// ones (the server calls it once a second).
#ifndef KNNMEM_SERVER_STORAGE_DESCRIPTOR_RESERVE_H_
#define KNNMEM_SERVER_STORAGE_DESCRIPTOR_RESERVE_H_

#include <memory>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace rocksdb {
class FileSystem;
}  // namespace rocksdb

namespace knnmem {

class DescriptorReserve {
 public:
  // Opens up to `target` descriptors (fewer when the process has no more).
  explicit DescriptorReserve(int target);
  ~DescriptorReserve();  // closes them

  DescriptorReserve(const DescriptorReserve&) = delete;
  DescriptorReserve& operator=(const DescriptorReserve&) = delete;

  // Closes one held descriptor, making room for one open; false when none
  // is held.
  bool Release();
  // Opens descriptors until `target` are held or none is free; returns how
  // many are held.
  int Refill();
  int held() const;
  int target() const { return target_; }
  // Descriptors handed to RocksDB since start.
  int released() const;

 private:
  const int target_;
  mutable Mutex mu_;
  std::vector<int> fds_ ABSL_GUARDED_BY(mu_);
  int released_ ABSL_GUARDED_BY(mu_) = 0;
};

// `base` (RocksDB's default file system when null), whose file and
// directory opens draw on `reserve` when the process is out of descriptors.
// `reserve` must outlive the result.
std::shared_ptr<rocksdb::FileSystem> ReservingFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base, DescriptorReserve* reserve);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORAGE_DESCRIPTOR_RESERVE_H_
