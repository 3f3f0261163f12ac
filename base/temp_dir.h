// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with
// everything in it when the TempDir is destroyed.
#ifndef KNNMEM_BASE_TEMP_DIR_H_
#define KNNMEM_BASE_TEMP_DIR_H_

#include <memory>
#include <string>

#include "absl/status/statusor.h"

namespace knnmem {

class TempDir {
 public:
  // Creates "<tmp>/<prefix>XXXXXX" with mkdtemp.
  static absl::StatusOr<std::unique_ptr<TempDir>> Create(
      const std::string& prefix);
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }

 private:
  explicit TempDir(std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_TEMP_DIR_H_
