#include "server/storage/descriptor_reserve.h"

#include <fcntl.h>
#include <rocksdb/file_system.h>
#include <unistd.h>

#include <cerrno>
#include <cstdio>
#include <cstring>
#include <string>
#include <utility>

namespace knnmem {

DescriptorReserve::DescriptorReserve(int target) : target_(target) { Refill(); }

DescriptorReserve::~DescriptorReserve() {
  MutexLock lock(&mu_);
  for (const int fd : fds_) close(fd);
}

bool DescriptorReserve::Release() {
  MutexLock lock(&mu_);
  if (fds_.empty()) return false;
  close(fds_.back());
  fds_.pop_back();
  ++released_;
  std::fprintf(stderr,
               "knnmem-server: out of file descriptors: lent a reserved one "
               "to RocksDB (%zu of %d left)\n",
               fds_.size(), target_);
  return true;
}

int DescriptorReserve::Refill() {
  MutexLock lock(&mu_);
  while (static_cast<int>(fds_.size()) < target_) {
    const int fd = open("/dev/null", O_RDONLY | O_CLOEXEC);
    if (fd < 0) break;
    fds_.push_back(fd);
  }
  return static_cast<int>(fds_.size());
}

int DescriptorReserve::held() const {
  MutexLock lock(&mu_);
  return static_cast<int>(fds_.size());
}

int DescriptorReserve::released() const {
  MutexLock lock(&mu_);
  return released_;
}

namespace {

bool OutOfDescriptors(const rocksdb::IOStatus& s) {
  return s.IsIOError() &&
         s.ToString().find(std::strerror(EMFILE)) != std::string::npos;
}

class ReservingFs : public rocksdb::FileSystemWrapper {
 public:
  ReservingFs(std::shared_ptr<rocksdb::FileSystem> base,
              DescriptorReserve* reserve)
      : rocksdb::FileSystemWrapper(std::move(base)), reserve_(reserve) {}
  const char* Name() const override { return "ReservingFileSystem"; }

  rocksdb::IOStatus NewSequentialFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSSequentialFile>* r,
      rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->NewSequentialFile(f, o, r, d); });
  }
  rocksdb::IOStatus NewRandomAccessFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSRandomAccessFile>* r,
      rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->NewRandomAccessFile(f, o, r, d); });
  }
  rocksdb::IOStatus NewWritableFile(const std::string& f,
                                    const rocksdb::FileOptions& o,
                                    std::unique_ptr<rocksdb::FSWritableFile>* r,
                                    rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->NewWritableFile(f, o, r, d); });
  }
  rocksdb::IOStatus ReopenWritableFile(
      const std::string& f, const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->ReopenWritableFile(f, o, r, d); });
  }
  rocksdb::IOStatus ReuseWritableFile(
      const std::string& f, const std::string& old,
      const rocksdb::FileOptions& o,
      std::unique_ptr<rocksdb::FSWritableFile>* r,
      rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->ReuseWritableFile(f, old, o, r, d); });
  }
  rocksdb::IOStatus NewDirectory(const std::string& name,
                                 const rocksdb::IOOptions& o,
                                 std::unique_ptr<rocksdb::FSDirectory>* r,
                                 rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->NewDirectory(name, o, r, d); });
  }
  rocksdb::IOStatus LockFile(const std::string& f, const rocksdb::IOOptions& o,
                             rocksdb::FileLock** lock,
                             rocksdb::IODebugContext* d) override {
    return Retry([&] { return target()->LockFile(f, o, lock, d); });
  }

 private:
  template <typename Open>
  rocksdb::IOStatus Retry(Open open) {
    for (;;) {
      rocksdb::IOStatus s = open();
      if (!OutOfDescriptors(s) || !reserve_->Release()) return s;
    }
  }

  DescriptorReserve* const reserve_;
};

}  // namespace

std::shared_ptr<rocksdb::FileSystem> ReservingFileSystem(
    std::shared_ptr<rocksdb::FileSystem> base, DescriptorReserve* reserve) {
  if (base == nullptr) base = rocksdb::FileSystem::Default();
  return std::make_shared<ReservingFs>(std::move(base), reserve);
}

}  // namespace knnmem
