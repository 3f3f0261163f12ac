#include "base/temp_dir.h"

#include <stdlib.h>

#include <cerrno>
#include <cstdio>
#include <cstdlib>
#include <cstring>
#include <filesystem>
#include <vector>

#include "absl/strings/str_cat.h"

namespace knnmem {

absl::StatusOr<std::unique_ptr<TempDir>> TempDir::Create(
    const std::string& prefix) {
  const char* tmp = std::getenv("TMPDIR");
  std::string pattern = absl::StrCat(
      tmp != nullptr && *tmp != '\0' ? tmp : "/tmp", "/", prefix, "XXXXXX");
  std::vector<char> buffer(pattern.begin(), pattern.end());
  buffer.push_back('\0');
  if (mkdtemp(buffer.data()) == nullptr) {
    return absl::UnavailableError(absl::StrCat(
        "cannot create a temp dir '", pattern, "': ", std::strerror(errno)));
  }
  return std::unique_ptr<TempDir>(new TempDir(Adopt{}, buffer.data()));
}

TempDir::TempDir(const std::string& prefix) {
  absl::StatusOr<std::unique_ptr<TempDir>> made = Create(prefix);
  if (!made.ok()) {
    std::fprintf(stderr, "%s\n", made.status().ToString().c_str());
    std::abort();
  }
  path_.swap((*made)->path_);  // the emptied one removes nothing
}

TempDir::~TempDir() {
  if (path_.empty()) return;
  std::error_code ignored;
  std::filesystem::remove_all(path_, ignored);
}

}  // namespace knnmem
