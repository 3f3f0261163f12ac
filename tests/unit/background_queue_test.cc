#include "base/background_queue.h"

#include <gtest/gtest.h>
#include <sys/resource.h>
#include <sys/syscall.h>
#include <unistd.h>

#include <atomic>
#include <string>
#include <thread>
#include <vector>

#include "absl/synchronization/notification.h"

namespace knnmem {
namespace {

int ThisThreadNice() {
  return getpriority(PRIO_PROCESS, static_cast<id_t>(syscall(SYS_gettid)));
}

TEST(BackgroundQueueTest, RunsItemsInTheOrderQueuedOneAtATimeOnItsOwnThread) {
  std::vector<int> ran;
  std::vector<std::thread::id> threads;
  std::atomic<int> running{0}, most_at_once{0};
  BackgroundQueue<int> queue([&](int& item) {
    const int now = ++running;
    if (now > most_at_once.load()) most_at_once = now;
    ran.push_back(item);
    threads.push_back(std::this_thread::get_id());
    --running;
    return false;
  });
  std::vector<int> pushed;
  for (int i = 0; i < 200; ++i) {
    queue.Push(i);
    pushed.push_back(i);
  }
  queue.WaitUntilIdle();
  EXPECT_EQ(ran, pushed);
  EXPECT_EQ(most_at_once.load(), 1);
  ASSERT_FALSE(threads.empty());
  for (const std::thread::id& t : threads) {
    EXPECT_EQ(t, threads.front());
    EXPECT_NE(t, std::this_thread::get_id());
  }
}

TEST(BackgroundQueueTest,
     AnItemWithMoreToDoGoesBackAfterTheItemsQueuedMeanwhile) {
  struct Job {
    std::string name;
    int rounds;  // left to run
  };
  absl::Notification gate_running, open_gate;
  std::string order;
  BackgroundQueue<Job> queue([&](Job& job) {
    if (job.name == "gate") {
      gate_running.Notify();
      open_gate.WaitForNotification();
      return false;
    }
    order += job.name;
    return --job.rounds > 0;
  });
  // A, B and C are all queued before the first of them runs.
  queue.Push({"gate", 1});
  gate_running.WaitForNotification();
  queue.Push({"A", 3});
  queue.Push({"B", 1});
  queue.Push({"C", 2});
  open_gate.Notify();
  queue.WaitUntilIdle();  // requeued rounds are work too
  EXPECT_EQ(order, "ABCACA");
}

TEST(BackgroundQueueTest, WaitUntilIdleReturnsOnlyOnceTheRunningItemFinished) {
  absl::Notification started, release, idle;
  std::atomic<bool> finished{false};
  BackgroundQueue<int> queue([&](int&) {
    started.Notify();
    release.WaitForNotification();
    finished = true;
    return false;
  });
  queue.Push(1);
  started.WaitForNotification();  // running; nothing is queued
  bool finished_when_idle = false;
  std::thread waiter([&] {
    queue.WaitUntilIdle();
    finished_when_idle = finished.load();
    idle.Notify();
  });
  EXPECT_FALSE(idle.HasBeenNotified());
  release.Notify();
  waiter.join();
  EXPECT_TRUE(finished_when_idle);
}

TEST(BackgroundQueueTest, StopLeavesQueuedItemsUndoneAndTheDestructorWaits) {
  absl::Notification started, release;
  std::vector<int> ran;
  std::atomic<bool> finished{false};
  {
    BackgroundQueue<int> queue([&](int& item) {
      if (item == 0) {
        started.Notify();
        release.WaitForNotification();
      }
      ran.push_back(item);
      finished = item == 0;
      return false;
    });
    queue.Push(0);
    started.WaitForNotification();
    queue.Push(1);
    queue.Push(2);
    queue.Stop();
    queue.Push(3);
    queue.WaitUntilIdle();  // a stopped queue is idle: this returns
    release.Notify();
  }  // joins the thread: item 0 has finished
  EXPECT_TRUE(finished.load());
  EXPECT_EQ(ran, std::vector<int>{0});
}

TEST(BackgroundQueueTest, ItsThreadRunsAtTheNiceValueGiven) {
  const int caller = ThisThreadNice();
  int low = -100, plain = -100;
  {
    BackgroundQueue<int> queue(
        [&](int&) {
          low = ThisThreadNice();
          return false;
        },
        /*nice=*/19);
    queue.Push(0);
    queue.WaitUntilIdle();
  }
  {
    BackgroundQueue<int> queue([&](int&) {
      plain = ThisThreadNice();
      return false;
    });
    queue.Push(0);
    queue.WaitUntilIdle();
  }
  EXPECT_EQ(low, 19);
  EXPECT_EQ(plain, caller);
  EXPECT_EQ(ThisThreadNice(), caller);  // only the queue's thread moved
}

}  // namespace
}  // namespace knnmem
