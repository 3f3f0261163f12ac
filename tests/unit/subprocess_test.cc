#include "base/subprocess.h"

#include <gtest/gtest.h>
#include <signal.h>

#include <string>

#include "absl/time/clock.h"

namespace knnmem {
namespace {

TEST(SubprocessTest, RunsAnArgvWithoutAShell) {
  // A shell would expand the star and split at the space.
  auto run = RunCommand({"echo", "a *", "$HOME"});
  ASSERT_TRUE(run.ok()) << run.status();
  EXPECT_EQ(run->exit_code, 0);
  EXPECT_EQ(run->output, "a * $HOME\n");
}

TEST(SubprocessTest, ReportsExitCodesAndFoldsStderrWhenAsked) {
  auto failed = RunCommand({"sh", "-c", "echo out; echo err >&2; exit 3"});
  ASSERT_TRUE(failed.ok()) << failed.status();
  EXPECT_EQ(failed->exit_code, 3);
  EXPECT_EQ(failed->output, "out\n");  // stderr inherited, not captured
  auto merged = RunCommand({"sh", "-c", "echo out; echo err >&2"},
                           /*merge_stderr=*/true);
  ASSERT_TRUE(merged.ok()) << merged.status();
  EXPECT_EQ(merged->output, "out\nerr\n");
}

TEST(SubprocessTest, AMissingBinaryIsNotFound) {
  auto run = RunCommand({"/nonexistent/knnmem-nothing"});
  EXPECT_EQ(run.status().code(), absl::StatusCode::kNotFound) << run.status();
  EXPECT_NE(run.status().message().find("/nonexistent/knnmem-nothing"),
            std::string::npos);
}

TEST(SubprocessTest, ATimeoutKillsTheChild) {
  auto run = RunCommand({"sleep", "60"}, false, absl::Milliseconds(100));
  EXPECT_EQ(run.status().code(), absl::StatusCode::kDeadlineExceeded)
      << run.status();
}

TEST(SubprocessTest, ReadsLinesUntilADeadlineAndReportsASignal) {
  auto child =
      Subprocess::Start({"sh", "-c", "echo one; echo two; exec sleep 60"});
  ASSERT_TRUE(child.ok()) << child.status();
  std::string line;
  ASSERT_TRUE((*child)->ReadLine(absl::InfiniteFuture(), &line));
  EXPECT_EQ(line, "one");
  ASSERT_TRUE((*child)->ReadLine(absl::InfiniteFuture(), &line));
  EXPECT_EQ(line, "two");
  // Nothing more comes: the deadline ends the wait.
  EXPECT_FALSE((*child)->ReadLine(absl::Now() + absl::Milliseconds(50), &line));
  EXPECT_TRUE((*child)->Running());
  (*child)->Signal(SIGTERM);
  const int status = (*child)->Wait();
  EXPECT_EQ(ExitCode(status), 128 + SIGTERM);
  EXPECT_EQ(DescribeWaitStatus(status), "was killed by signal 15");
  EXPECT_FALSE((*child)->Running());
}

}  // namespace
}  // namespace knnmem
