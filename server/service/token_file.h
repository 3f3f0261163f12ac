// TokenFile: the --auth-token-file a server serves with, reloaded on
// SIGHUP. A reload swaps the whole set at once: a call checks its token
// against one set, and a file that no longer parses leaves the old set in
// force.
#ifndef KNNMEM_SERVER_SERVICE_TOKEN_FILE_H_
#define KNNMEM_SERVER_SERVICE_TOKEN_FILE_H_

#include <memory>
#include <string>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/sync.h"
#include "server/service/auth.h"

namespace knnmem {

class TokenFile {
 public:
  // Reads `path` (TokenAuth::Load's errors).
  static absl::StatusOr<std::unique_ptr<TokenFile>> Open(std::string path);

  // Reads the file again. OK: its set is in force for every call from now
  // on. Otherwise the error, naming the file and line, and the old set
  // stays.
  absl::Status Reload();
  // The set in force.
  std::shared_ptr<const TokenAuth> current() const {
    MutexLock lock(&mu_);
    return current_;
  }
  const std::string& path() const { return path_; }

 private:
  TokenFile(std::string path, std::shared_ptr<const TokenAuth> auth)
      : path_(std::move(path)), current_(std::move(auth)) {}

  const std::string path_;
  mutable Mutex mu_;
  std::shared_ptr<const TokenAuth> current_ ABSL_GUARDED_BY(mu_);
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_TOKEN_FILE_H_
