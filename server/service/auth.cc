#include "server/service/auth.h"

#include <algorithm>
#include <fstream>
#include <iterator>

#include "absl/container/btree_set.h"
#include "absl/strings/ascii.h"
#include "absl/strings/match.h"
#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "absl/strings/strip.h"
#include "base/flags.h"
#include "base/status_macros.h"

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

// 1-64 characters of a stream id's alphabet but '/'.
bool IsTenantName(absl::string_view name) {
  return !name.empty() && name.size() <= 64 &&
         std::all_of(name.begin(), name.end(), [](char c) {
           return absl::ascii_isalnum(static_cast<unsigned char>(c)) ||
                  c == '.' || c == '_' || c == ':' || c == '-';
         });
}

constexpr char kTokenForm[] =
    "want 'TOKEN rw|ro [tenant=NAME] [name=LABEL]' with a token of at least "
    "16 characters, or 'quota NAME [streams=N] [ram=BYTES] [disk=BYTES]'; "
    "a tenant NAME is 1-64 of [A-Za-z0-9._:-]";

// Reads one "quota NAME key=value..." line into `quotas`.
absl::Status ParseQuota(const std::vector<absl::string_view>& fields,
                        absl::flat_hash_map<std::string, Quota>& quotas) {
  if (fields.size() < 2 || !IsTenantName(fields[1])) {
    return absl::InvalidArgumentError(kTokenForm);
  }
  Quota quota;
  for (size_t i = 2; i < fields.size(); ++i) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(fields[i], absl::MaxSplits('=', 1));
    uint64_t* slot = kv.first == "streams" ? &quota.streams
                     : kv.first == "ram"   ? &quota.ram_bytes
                     : kv.first == "disk"  ? &quota.disk_bytes
                                           : nullptr;
    if (slot == nullptr) {
      return absl::InvalidArgumentError(
          absl::StrCat("quota ", fields[1], ": unknown limit '", kv.first,
                       "' (want streams=, ram= or disk=)"));
    }
    uint64_t count = 0;
    absl::StatusOr<uint64_t> n = kv.first != "streams" ? ParseBytes(kv.second)
                                 : absl::SimpleAtoi(kv.second, &count)
                                     ? absl::StatusOr<uint64_t>(count)
                                     : absl::InvalidArgumentError(absl::StrCat(
                                           "'", kv.second, "' is not a count"));
    if (!n.ok()) {
      return absl::InvalidArgumentError(absl::StrCat(
          "quota ", fields[1], " ", kv.first, ": ", n.status().message()));
    }
    *slot = *n;
  }
  if (!quotas.emplace(std::string(fields[1]), quota).second) {
    return absl::InvalidArgumentError(
        absl::StrCat("quota ", fields[1], ": given twice"));
  }
  return absl::OkStatus();
}

// Reads one "TOKEN rw|ro [tenant=NAME] [name=LABEL]" line.
absl::StatusOr<std::pair<std::string, Caller>> ParseToken(
    const std::vector<absl::string_view>& fields, int line_number) {
  if (fields.size() < 2 || (fields[1] != "rw" && fields[1] != "ro") ||
      fields[0].size() < 16) {
    return absl::InvalidArgumentError(kTokenForm);
  }
  Caller caller;
  caller.write = fields[1] == "rw";
  caller.name = absl::StrCat("line ", line_number);
  for (size_t i = 2; i < fields.size(); ++i) {
    absl::string_view field = fields[i];
    if (absl::ConsumePrefix(&field, "tenant=") && IsTenantName(field)) {
      caller.tenant = std::string(field);
    } else if (absl::ConsumePrefix(&field, "name=") && !field.empty()) {
      caller.name = std::string(field);
    } else {
      return absl::InvalidArgumentError(kTokenForm);
    }
  }
  return std::make_pair(std::string(fields[0]), std::move(caller));
}

}  // namespace

absl::Status Caller::Reaches(absl::string_view stream_id,
                             absl::string_view field) const {
  if (tenant.empty() || NamespaceOf(stream_id) == tenant) {
    return absl::OkStatus();
  }
  return absl::PermissionDeniedError(absl::StrCat(
      field, ": '", stream_id, "' is outside tenant '", tenant, "': token '",
      name, "' reaches only ids that start with '", tenant, "/'"));
}

std::string Caller::prefix() const {
  return tenant.empty() ? std::string() : absl::StrCat(tenant, "/");
}

absl::Status CheckWrite(const Caller& caller) {
  if (caller.write) return absl::OkStatus();
  return absl::PermissionDeniedError(
      absl::StrCat("authorization: token '", caller.name,
                   "' is read-only and this call "
                   "writes"));
}

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
  absl::btree_set<std::string> tenants;
  int line_number = 0;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    ++line_number;
    line = absl::StripAsciiWhitespace(line);
    if (line.empty() || line[0] == '#') continue;
    std::vector<absl::string_view> fields =
        absl::StrSplit(line, absl::ByAnyChar(" \t"), absl::SkipEmpty());
    absl::Status parsed;
    if (fields[0] == "quota") {
      parsed = ParseQuota(fields, auth.quotas_);
      if (parsed.ok()) tenants.insert(std::string(fields[1]));
    } else {
      absl::StatusOr<std::pair<std::string, Caller>> token =
          ParseToken(fields, line_number);
      parsed = token.status();
      if (parsed.ok()) {
        if (!token->second.tenant.empty()) tenants.insert(token->second.tenant);
        auth.tokens_.push_back(
            {std::move(token->first), std::move(token->second)});
      }
    }
    if (!parsed.ok()) {
      return absl::InvalidArgumentError(
          absl::StrCat("--auth-token-file: ", origin, ":", line_number, ": ",
                       parsed.message()));
    }
  }
  if (auth.tokens_.empty()) {
    return absl::InvalidArgumentError(
        absl::StrCat("--auth-token-file: ", origin, " holds no token"));
  }
  auth.tenants_.assign(tenants.begin(), tenants.end());
  return auth;
}

absl::StatusOr<Caller> TokenAuth::Identify(
    absl::string_view authorization) const {
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
  return match->caller;
}

absl::Status TokenAuth::Check(absl::string_view authorization,
                              bool write) const {
  ASSIGN_OR_RETURN(Caller caller, Identify(authorization));
  return write ? CheckWrite(caller) : absl::OkStatus();
}

const Quota* TokenAuth::QuotaOf(absl::string_view tenant) const {
  auto it = quotas_.find(tenant);
  return it == quotas_.end() ? nullptr : &it->second;
}

}  // namespace knnmem
