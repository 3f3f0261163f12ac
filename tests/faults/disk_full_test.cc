// A full disk (issue 16, point 1): RocksDB must never meet ENOSPC (Debian's
// build asserts in its WAL writer and the server died with SIGABRT). The
// data dir is a 64 MiB tmpfs; the server keeps --disk-reserve free besides
// what its own flushes need, refuses writes with RESOURCE_EXHAUSTED naming
// the disk, keeps serving reads and deletes, resumes writes by itself when
// space comes back, and restarts after SIGKILL on the nearly full disk with
// every acknowledged row.
#include <gtest/gtest.h>
#include <sys/mount.h>
#include <sys/stat.h>

#include <cerrno>
#include <cstring>
#include <fstream>
#include <string>
#include <vector>

#include "absl/strings/match.h"
#include "tests/support/server_fixture.h"

namespace knnmem::testing {
namespace {

constexpr int kHeads = 8, kDim = 128;
constexpr int64_t kRows = 256;  // 2 MiB of keys and values per Append

class DiskFullTest : public ServerFixture {
 protected:
  void SetUp() override {
    disk_ = dir_.Sub("data");
    ASSERT_EQ(mkdir(disk_.c_str(), 0755), 0) << std::strerror(errno);
    if (mount("tmpfs", disk_.c_str(), "tmpfs", 0, "size=64m") != 0) {
      GTEST_SKIP() << "cannot mount a 64 MiB tmpfs here ("
                   << std::strerror(errno) << "): this test needs root";
    }
    mounted_ = true;
    StartServer(kArgs);
  }
  void TearDown() override {
    if (server_) ServerFixture::TearDown();
    if (mounted_) umount2(disk_.c_str(), MNT_DETACH);
  }

  // Appends kRows-row batches to "a" until one is refused; returns it.
  absl::Status FillUntilRefused(int* acked) {
    for (int i = 0; i < 64; ++i) {
      absl::StatusOr<v1::AppendResponse> r = AppendRandom(
          "a", 0, next_, kRows, kHeads, kDim, kDim, DType::kFloat32, &written_);
      if (!r.ok()) return r.status();
      next_ = r->next_position();
      ++*acked;
    }
    return absl::OkStatus();
  }

  static void ExpectDiskRefusal(const absl::Status& s) {
    EXPECT_EQ(s.code(), absl::StatusCode::kResourceExhausted) << s;
    EXPECT_TRUE(absl::StartsWith(s.message(), "disk: ")) << s;
    EXPECT_TRUE(absl::StrContains(s.message(), "--disk-reserve")) << s;
  }

  const std::vector<std::string> kArgs = {"--disk-reserve", "4MiB"};
  std::string disk_;
  bool mounted_ = false;
  Written written_;
  int64_t next_ = 0;
};

TEST_F(DiskFullTest, WritesStopBeforeTheDiskIsFullAndResumeWhenThereIsRoom) {
  ASSERT_TRUE(
      client_->CreateStream("a", MakeSpec(1, kHeads, kDim, kDim, 1 << 20))
          .ok());
  ASSERT_TRUE(client_->CreateStream("b", MakeSpec(1, 2, 8, 8, 100)).ok());
  written_.capacity = 1 << 20;
  const std::string filler = disk_ + "/filler";
  {
    std::ofstream out(filler, std::ios::binary);
    const std::string mib(1 << 20, 'f');
    for (int i = 0; i < 24; ++i) out << mib;
    ASSERT_TRUE(out.good());
  }

  int acked = 0;
  const absl::Status refused = FillUntilRefused(&acked);
  ExpectDiskRefusal(refused);
  EXPECT_GE(acked, 3);
  // Still serving: reads answer as brute force does, creates are refused
  // as appends are, deletes and lists go on.
  SearchAndCheck("a", 0, 3, 32, written_, DType::kFloat32, 1);
  const std::vector<float> query(kHeads * kDim, 0.05f);
  auto attended = client_->Attend("a", 0, query, 1, kHeads, 32);
  ASSERT_TRUE(attended.ok()) << attended.status();
  ExpectDiskRefusal(
      client_->CreateStream("c", MakeSpec(1, 2, 8, 8, 100)).status());
  auto info = client_->GetStream("a");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), next_);
  EXPECT_TRUE(client_->DeleteStream("b").ok());
  auto all = client_->ListStreams();
  ASSERT_TRUE(all.ok()) << all.status();
  EXPECT_EQ(all->size(), 1u);

  // Room again: writes resume without a restart.
  ASSERT_EQ(std::remove(filler.c_str()), 0);
  int resumed = 0;
  ExpectDiskRefusal(FillUntilRefused(&resumed));
  EXPECT_GE(resumed, 3);

  // The disk is now full of the server's own data: a crash and a restart
  // on it find room to replay the WAL, and every acknowledged row.
  server_->Kill();
  client_.reset();
  StartServer(kArgs);
  SearchAndCheck("a", 0, 3, 32, written_, DType::kFloat32, 2);
  info = client_->GetStream("a");
  ASSERT_TRUE(info.ok()) << info.status();
  EXPECT_EQ(info->layers(0).next_position(), next_);
}

}  // namespace
}  // namespace knnmem::testing
