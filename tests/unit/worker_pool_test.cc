#include "base/worker_pool.h"

#include <gtest/gtest.h>

#include <atomic>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"
#include "absl/time/time.h"

namespace knnmem {
namespace {

TEST(WorkerPoolTest, ParallelForRunsEveryIndexExactlyOnce) {
  WorkerPool pool(3);
  std::vector<std::atomic<int>> hits(1000);
  pool.ParallelFor(hits.size(), [&](size_t i) { hits[i]++; });
  for (size_t i = 0; i < hits.size(); ++i) EXPECT_EQ(hits[i].load(), 1) << i;
}

TEST(WorkerPoolTest, ParallelForFromEveryWorkerAtOnceDoesNotDeadlock) {
  // Each worker runs a task that itself calls ParallelFor: helpers may never
  // start, and the callers must still finish on their own.
  WorkerPool pool(2);
  std::atomic<int> sum{0};
  absl::Notification done[2];
  for (int t = 0; t < 2; ++t) {
    pool.Submit([&, t] {
      pool.ParallelFor(100, [&](size_t i) { sum += static_cast<int>(i); });
      done[t].Notify();
    });
  }
  done[0].WaitForNotification();
  done[1].WaitForNotification();
  EXPECT_EQ(sum.load(), 2 * 4950);
}

TEST(WorkerPoolTest, ParallelForUsesIdleWorkers) {
  // Each index waits for the other to start: only two threads at once finish.
  WorkerPool pool(2);
  absl::Notification started[2];
  std::atomic<int> met{0};
  pool.ParallelFor(2, [&](size_t i) {
    started[i].Notify();
    met += started[1 - i].WaitForNotificationWithTimeout(absl::Seconds(60));
  });
  EXPECT_EQ(met.load(), 2);
}

TEST(WorkerPoolTest, ParallelForRunsInlineWhenEveryWorkerIsBusy) {
  WorkerPool pool(2);
  absl::Notification release;
  absl::Notification running[2];
  for (int t = 0; t < 2; ++t) {
    pool.Submit([&, t] {
      running[t].Notify();
      release.WaitForNotification();
    });
  }
  running[0].WaitForNotification();
  running[1].WaitForNotification();
  std::vector<std::thread::id> ran_on(100);
  pool.ParallelFor(ran_on.size(),
                   [&](size_t i) { ran_on[i] = std::this_thread::get_id(); });
  EXPECT_EQ(pool.queue_depth(), 0u);  // no helper was queued behind them
  for (const std::thread::id& id : ran_on) {
    EXPECT_EQ(id, std::this_thread::get_id());
  }
  release.Notify();
}

// In a SerialScope every ParallelFor of the thread, nested ones too, runs
// on it alone, with idle workers about; after the scope they help again.
TEST(WorkerPoolTest, SerialScopeRunsOnTheCallingThread) {
  WorkerPool pool(2);
  const std::thread::id me = std::this_thread::get_id();
  {
    WorkerPool::SerialScope serial;
    std::vector<std::thread::id> ran_on(16 * 16);
    pool.ParallelFor(16, [&](size_t i) {
      pool.ParallelFor(16, [&](size_t j) {
        ran_on[i * 16 + j] = std::this_thread::get_id();
      });
    });
    for (const std::thread::id& id : ran_on) EXPECT_EQ(id, me);
    { WorkerPool::SerialScope nested; }
    // A nested scope's end leaves the outer one in force.
    std::thread::id inner;
    pool.ParallelFor(2, [&](size_t i) {
      if (i == 1) inner = std::this_thread::get_id();
    });
    EXPECT_EQ(inner, me);
  }
  // After the scope: a worker takes part once it is free to (each index
  // waits until one does, so this cannot pass on the caller alone). The
  // worker may claim both indices before the caller claims one: it notifies
  // once.
  absl::Notification helped;
  std::atomic<bool> notified{false};
  pool.ParallelFor(2, [&](size_t) {
    if (std::this_thread::get_id() != me) {
      if (!notified.exchange(true)) helped.Notify();
    } else {
      helped.WaitForNotificationWithTimeout(absl::Seconds(60));
    }
  });
  EXPECT_TRUE(helped.HasBeenNotified());
}

TEST(WorkerPoolTest, DestructorRunsQueuedTasks) {
  std::atomic<int> ran{0};
  {
    WorkerPool pool(1);
    for (int i = 0; i < 50; ++i) pool.Submit([&] { ran++; });
  }
  EXPECT_EQ(ran.load(), 50);
}

}  // namespace
}  // namespace knnmem
