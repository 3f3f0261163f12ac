// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with
// everything in it when the TempDir is destroyed. The one temp-dir helper of
// the project: the bench, the model's in-process memory and the tests use it.
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
  // The same, for tests and tools that cannot go on without one: prints why
  // and aborts when it cannot.
  explicit TempDir(const std::string& prefix = "knnmem-test-");
  ~TempDir();

  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  // path()/name (not created).
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  struct Adopt {};
  TempDir(Adopt, std::string path) : path_(std::move(path)) {}
  std::string path_;
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_TEMP_DIR_H_
