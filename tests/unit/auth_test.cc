#include "server/service/auth.h"

#include <gtest/gtest.h>

#include <fstream>
#include <string>

#include "absl/strings/match.h"
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
      {"short rw\n", "tokens:1:"},                               // < 16 chars
      {"writer-token-0123456789 admin\n", "tokens:1:"},          // bad role
      {"\nwriter-token-0123456789 rw extra\n", "tokens:2:"},     // 3 fields
      {"writer-token-0123456789\n", "tokens:1:"},                // no role
      {"writer-token-0123456789 rw tenant=a/b\n", "tokens:1:"},  // '/'
      {"writer-token-0123456789 rw tenant=\n", "tokens:1:"},     // empty
      {"writer-token-0123456789 rw name=\n", "tokens:1:"},       // empty
      {"writer-token-0123456789 rw\nquota\n", "tokens:2:"},      // no name
      {"writer-token-0123456789 rw\nquota a b=1\n", "unknown limit 'b'"},
      {"writer-token-0123456789 rw\nquota a ram=1x\n", "quota a ram"},
      {"writer-token-0123456789 rw\nquota a streams=-1\n", "not a count"},
      {"writer-token-0123456789 rw\nquota a\nquota a\n", "given twice"},
      {"quota a streams=1\n", "holds no token"},
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

TEST(TokenAuthTest, TenantsAndQuotasAreReadWithTheTokens) {
  auto auth = TokenAuth::Parse(
      absl::StrCat(kWriter, " rw tenant=acme name=acme-writer\n", kReader,
                   " ro\n", "admin-token-0123456789 rw name=ops\n",
                   "quota globex streams=3 ram=2MiB disk=1GiB\n",
                   "quota acme streams=0\n"),
      "tokens");
  ASSERT_TRUE(auth.ok()) << auth.status();
  absl::StatusOr<Caller> writer =
      auth->Identify(absl::StrCat("Bearer ", kWriter));
  ASSERT_TRUE(writer.ok()) << writer.status();
  EXPECT_EQ(writer->name, "acme-writer");
  EXPECT_EQ(writer->tenant, "acme");
  EXPECT_TRUE(writer->write);
  EXPECT_EQ(writer->prefix(), "acme/");
  absl::StatusOr<Caller> reader =
      auth->Identify(absl::StrCat("Bearer ", kReader));
  ASSERT_TRUE(reader.ok()) << reader.status();
  EXPECT_EQ(reader->name, "line 2");  // no name=: its line
  EXPECT_EQ(reader->tenant, "");      // an admin
  EXPECT_FALSE(reader->write);
  EXPECT_EQ(reader->prefix(), "");

  const Quota* globex = auth->QuotaOf("globex");
  ASSERT_NE(globex, nullptr);
  EXPECT_EQ(globex->streams, 3u);
  EXPECT_EQ(globex->ram_bytes, uint64_t{2} << 20);
  EXPECT_EQ(globex->disk_bytes, uint64_t{1} << 30);
  ASSERT_NE(auth->QuotaOf("acme"), nullptr);
  EXPECT_EQ(*auth->QuotaOf("acme"), Quota());  // 0: no limit
  EXPECT_EQ(auth->QuotaOf("initech"), nullptr);
  EXPECT_EQ(auth->tenants(), (std::vector<std::string>{"acme", "globex"}));
  EXPECT_EQ(auth->token_count(), 3u);
}

TEST(TokenAuthTest, ATenantReachesOnlyIdsUnderItsNameAndAnAdminEveryId) {
  const Caller acme{"acme-writer", "acme", true};
  for (const char* id : {"acme/doc", "acme/a/b", "acme/"}) {
    EXPECT_TRUE(acme.Reaches(id, "stream_id").ok()) << id;
  }
  for (const char* id : {"acme", "acmex/doc", "globex/acme/doc", "doc",
                         "ACME/doc", "/acme/doc"}) {
    const absl::Status s = acme.Reaches(id, "stream_id");
    EXPECT_EQ(s.code(), absl::StatusCode::kPermissionDenied) << id;
    EXPECT_TRUE(absl::StartsWith(s.message(), "stream_id: ")) << s;
    EXPECT_NE(s.message().find("acme-writer"), std::string::npos) << s;
  }
  const Caller admin{"ops", "", true};
  for (const char* id : {"acme/doc", "globex/doc", "doc"}) {
    EXPECT_TRUE(admin.Reaches(id, "stream_id").ok()) << id;
  }
  const Caller reader{"ro", "acme", false};
  const absl::Status write = CheckWrite(reader);
  EXPECT_EQ(write.code(), absl::StatusCode::kPermissionDenied);
  EXPECT_NE(write.message().find("'ro' is read-only"), std::string::npos)
      << write;
  EXPECT_TRUE(CheckWrite(acme).ok());
}

}  // namespace
}  // namespace knnmem
