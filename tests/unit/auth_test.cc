#include "server/service/auth.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/temp_dir.h"

namespace knnmem {
namespace {

constexpr char kWriter[] = "writer-token-0123456789";
constexpr char kReader[] = "reader-token-0123456789";

TokenAuth Tokens() {
  auto auth = TokenAuth::Parse(
      absl::StrCat("# tokens\n\n  ", kWriter, " rw\n", kReader, "\tro\n"),
      "tokens");
  EXPECT_TRUE(auth.ok()) << auth.status();
  return *std::move(auth);
}

TEST(TokenAuthTest, ReadWriteTokensMayReadAndWrite) {
  const TokenAuth auth = Tokens();
  EXPECT_TRUE(auth.Check(absl::StrCat("Bearer ", kWriter), false).ok());
  EXPECT_TRUE(auth.Check(absl::StrCat("Bearer ", kWriter), true).ok());
}

TEST(TokenAuthTest, ReadOnlyTokensMayOnlyRead) {
  const TokenAuth auth = Tokens();
  EXPECT_TRUE(auth.Check(absl::StrCat("Bearer ", kReader), false).ok());
  const absl::Status write = auth.Check(absl::StrCat("Bearer ", kReader), true);
  EXPECT_EQ(write.code(), absl::StatusCode::kPermissionDenied) << write;
  EXPECT_NE(write.message().find("read-only"), std::string::npos) << write;
}

TEST(TokenAuthTest, MissingMalformedAndUnknownTokensAreUnauthenticated) {
  const TokenAuth auth = Tokens();
  for (const std::string& header :
       {std::string(), std::string(kWriter),    // no "Bearer "
        absl::StrCat("bearer ", kWriter),       // the scheme is case-sensitive
        absl::StrCat("Bearer ", kWriter, "x"),  // longer
        absl::StrCat("Bearer ", std::string(kWriter).substr(1)),  // shorter
        std::string("Bearer ")}) {
    const absl::Status s = auth.Check(header, false);
    EXPECT_EQ(s.code(), absl::StatusCode::kUnauthenticated)
        << "'" << header << "': " << s;
    EXPECT_NE(s.message().find("authorization"), std::string::npos) << s;
  }
}

TEST(TokenAuthTest, BadFilesNameTheFileAndLine) {
  struct Case {
    const char* text;
    const char* want;
  } cases[] = {
      {"", "holds no token"},
      {"# only a comment\n", "holds no token"},
      {"short rw\n", "tokens:1:"},                            // < 16 chars
      {"writer-token-0123456789 admin\n", "tokens:1:"},       // bad role
      {"\nwriter-token-0123456789 rw extra\n", "tokens:2:"},  // 3 fields
      {"writer-token-0123456789\n", "tokens:1:"},             // no role
  };
  for (const Case& c : cases) {
    auto auth = TokenAuth::Parse(c.text, "tokens");
    ASSERT_FALSE(auth.ok()) << "'" << c.text << "'";
    EXPECT_EQ(auth.status().code(), absl::StatusCode::kInvalidArgument);
    EXPECT_NE(auth.status().message().find(c.want), std::string::npos)
        << auth.status();
    EXPECT_NE(auth.status().message().find("--auth-token-file"),
              std::string::npos)
        << auth.status();
  }
}

TEST(TokenAuthTest, LoadReadsAFileAndNamesOneItCannotRead) {
  TempDir dir;
  std::ofstream(dir.Sub("tokens")) << kWriter << " rw\n";
  auto loaded = TokenAuth::Load(dir.Sub("tokens"));
  ASSERT_TRUE(loaded.ok()) << loaded.status();
  EXPECT_TRUE(loaded->Check(absl::StrCat("Bearer ", kWriter), true).ok());
  auto missing = TokenAuth::Load(dir.Sub("nothing"));
  EXPECT_EQ(missing.status().code(), absl::StatusCode::kNotFound);
  EXPECT_NE(missing.status().message().find(dir.Sub("nothing")),
            std::string::npos)
      << missing.status();
}

}  // namespace
}  // namespace knnmem
