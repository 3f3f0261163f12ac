// TempDir: a fresh directory under $TMPDIR (or /tmp), removed with its
// contents when the object goes away.
#ifndef KNNMEM_TESTS_SUPPORT_TEMP_DIR_H_
#define KNNMEM_TESTS_SUPPORT_TEMP_DIR_H_

#include <string>

namespace knnmem::testing {

class TempDir {
 public:
  TempDir();
  ~TempDir();
  TempDir(const TempDir&) = delete;
  TempDir& operator=(const TempDir&) = delete;

  const std::string& path() const { return path_; }
  std::string Sub(const std::string& name) const { return path_ + "/" + name; }

 private:
  std::string path_;
};

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_TEMP_DIR_H_
