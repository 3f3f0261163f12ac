#include "server/service/auth.h"

#include <fstream>
#include <iterator>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"

namespace knnmem {
namespace {

// Constant-time for equal lengths; lengths are not secret.
bool SameToken(absl::string_view a, absl::string_view b) {
  if (a.size() != b.size()) return false;
  unsigned char diff = 0;
  for (size_t i = 0; i < a.size(); ++i) {
    diff |= static_cast<unsigned char>(a[i] ^ b[i]);
  }
  return diff == 0;
}

}  // namespace

absl::StatusOr<TokenAuth> TokenAuth::Load(const std::string& path) {
  std::ifstream in(path);
  if (!in) {
    return absl::NotFoundError(
        absl::StrCat("--auth-token-file: cannot read '", path, "'"));
  }
  const std::string text((std::istreambuf_iterator<char>(in)),
                         std::istreambuf_iterator<char>());
  return Parse(text, path);
}

absl::StatusOr<TokenAuth> TokenAuth::Parse(absl::string_view text,
                                           absl::string_view origin) {
  TokenAuth auth;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    if (fields.size() != 2 || (fields[1] != "rw" && fields[1] != "ro") ||
        fields[0].size() < 16) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth-token-file: ", origin, ":", line_number,
                       ": want 'TOKEN rw' or 'TOKEN ro' with a token of at "
                       "least 16 characters"));
    }
    auth.tokens_.push_back({std::string(fields[0]), fields[1] == "rw"});
  }
  if (auth.tokens_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: ", origin, " holds no token"));
  }
  return auth;
}

absl::Status TokenAuth::Check(absl::string_view authorization,
                              bool write) const {
  if (!absl::ConsumePrefix(&authorization, "Bearer ")) {
    return absl::UnauthenticatedError(
        "authorization: missing; send metadata 'authorization: Bearer TOKEN'");
  }
  const Token* match = nullptr;
  for (const Token& t : tokens_) {
    if (SameToken(t.value, authorization)) match = &t;
  }
  if (match == nullptr) {
    return absl::UnauthenticatedError("authorization: unknown token");
  }
  if (write && !match->write) {
    return absl::PermissionDeniedError(
        "authorization: the token is read-only and this call writes");
  }
  return absl::OkStatus();
}

}  // namespace knnmem
