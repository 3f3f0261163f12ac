// TokenAuth: bearer tokens and tenants' quotas, read from one file.
//
// File format, one entry per line; blank lines and lines starting with '#'
// are ignored:
//
//   TOKEN rw|ro [tenant=NAME] [name=LABEL]
//   quota NAME [streams=N] [ram=BYTES] [disk=BYTES]
//
// A token is at least 16 characters; rw may write, ro only read. A token
// with tenant=NAME reaches only the streams whose id starts with "NAME/"
// (ListStreams shows only those); one without is an admin token and
// reaches every stream. LABEL names the token in logs and errors (default
// "line N"); the token itself is never logged. A quota line bounds what
// the streams of tenant NAME are charged at capacity (namespace_ledger.h):
// BYTES as in "8GiB", "512MiB" or a plain count; 0 or absent, no limit.
// Tokens are compared in constant time.
#ifndef KNNMEM_SERVER_SERVICE_AUTH_H_
#define KNNMEM_SERVER_SERVICE_AUTH_H_

#include <string>
#include <vector>

#include "absl/container/flat_hash_map.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "server/store/namespace_ledger.h"

namespace knnmem {

// Who made a call, as its token says.
struct Caller {
  std::string name;    // the token's label, for logs
  std::string tenant;  // empty: an admin token
  bool write = false;

  // OK when the caller may touch `stream_id`; otherwise PERMISSION_DENIED
  // naming `field`. Decided from the id alone, so that the answer is the
  // same whether or not the stream exists.
  absl::Status Reaches(absl::string_view stream_id,
                       absl::string_view field) const;
  // "" for an admin, else "NAME/": the ids the caller reaches start so.
  std::string prefix() const;
};

class TokenAuth {
 public:
  // Reads `path`; INVALID_ARGUMENT naming the file and line for a malformed
  // or empty file, NOT_FOUND when it cannot be read.
  static absl::StatusOr<TokenAuth> Load(const std::string& path);
  static absl::StatusOr<TokenAuth> Parse(absl::string_view text,
                                         absl::string_view origin);

  // Identifies the caller of an `authorization` metadata value ("Bearer
  // TOKEN"): UNAUTHENTICATED when it is missing or unknown.
  absl::StatusOr<Caller> Identify(absl::string_view authorization) const;
  // Identify, then PERMISSION_DENIED when a read-only token asks to write.
  absl::Status Check(absl::string_view authorization, bool write) const;

  // The quota of tenant `tenant`, or nullptr when it has none.
  const Quota* QuotaOf(absl::string_view tenant) const;
  // Every tenant a token or a quota names, sorted: the only values the
  // metrics' tenant label takes.
  const std::vector<std::string>& tenants() const { return tenants_; }
  size_t token_count() const { return tokens_.size(); }

 private:
  struct Token {
    std::string value;
    Caller caller;
  };
  std::vector<Token> tokens_;
  absl::flat_hash_map<std::string, Quota> quotas_;
  std::vector<std::string> tenants_;
};

// PERMISSION_DENIED when `caller` (read-only) asks to write.
absl::Status CheckWrite(const Caller& caller);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_AUTH_H_
