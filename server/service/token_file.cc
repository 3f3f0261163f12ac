#include "server/service/token_file.h"

#include <utility>

#include "base/status_macros.h"

namespace knnmem {

absl::StatusOr<std::unique_ptr<TokenFile>> TokenFile::Open(std::string path) {
  ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::Load(path));
  return std::unique_ptr<TokenFile>(new TokenFile(
      std::move(path), std::make_shared<const TokenAuth>(std::move(auth))));
}

absl::Status TokenFile::Reload() {
  ASSIGN_OR_RETURN(TokenAuth auth, TokenAuth::Load(path_));
  auto fresh = std::make_shared<const TokenAuth>(std::move(auth));
  MutexLock lock(&mu_);
  current_ = std::move(fresh);
  return absl::OkStatus();
}

}  // namespace knnmem
