// TokenAuth: bearer tokens from a file, each read-write or read-only.
//
// File format: one token per line, "TOKEN rw" or "TOKEN ro"; blank lines and
// lines starting with '#' are ignored. Tokens are compared in constant time.
#ifndef KNNMEM_SERVER_SERVICE_AUTH_H_
#define KNNMEM_SERVER_SERVICE_AUTH_H_

#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"

namespace knnmem {

class TokenAuth {
 public:
  // Reads `path`; INVALID_ARGUMENT naming the file and line for a malformed
  // or empty file, NOT_FOUND when it cannot be read.
  static absl::StatusOr<TokenAuth> Load(const std::string& path);
  static absl::StatusOr<TokenAuth> Parse(absl::string_view text,
                                         absl::string_view origin);

  // Checks an `authorization` metadata value ("Bearer TOKEN"): OK, or
  // UNAUTHENTICATED when missing or unknown, or PERMISSION_DENIED when a
  // read-only token asks for a write.
  absl::Status Check(absl::string_view authorization, bool write) const;

 private:
  struct Token {
    std::string value;
    bool write;
  };
  std::vector<Token> tokens_;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_AUTH_H_
