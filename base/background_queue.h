// BackgroundQueue: work done off the request path, one item at a time, by a
// thread of its own: MemoryStore's compactor and its indexer.
//
// Push queues an item; the thread hands the items to `run` in the order they
// were queued. When `run` returns true the item has more to do: it goes back
// to the end of the queue, after the items queued meanwhile, so that a long
// job advances in bounded steps and never starves the others.
// WaitUntilIdle blocks until nothing is queued or running.
//
// Stop (and the destructor) leaves whatever is still queued undone: queue
// only work whose loss costs time, never data (reclaiming disk space,
// indexing what RAM and storage already hold). The destructor then waits for
// the item being run, so `run` may use whatever outlives the queue.
#ifndef KNNMEM_BASE_BACKGROUND_QUEUE_H_
#define KNNMEM_BASE_BACKGROUND_QUEUE_H_

#include <deque>
#include <functional>
#include <optional>
#include <thread>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace knnmem {

// Sets the calling thread's nice value (Linux: per thread).
void SetThisThreadNice(int nice);

template <typename Work>
class BackgroundQueue {
 public:
  // Starts the thread, at nice value `nice` (19 yields the CPU to every
  // other thread). `run` is called on it only, for one item at a time.
  explicit BackgroundQueue(std::function<bool(Work&)> run, int nice = 0)
      : run_(std::move(run)), thread_([this, nice] { Run(nice); }) {}
  ~BackgroundQueue() {
    Stop();
    thread_.join();
  }

  BackgroundQueue(const BackgroundQueue&) = delete;
  BackgroundQueue& operator=(const BackgroundQueue&) = delete;

  // Queues `work` after everything queued so far. Never blocks on the work.
  void Push(Work work) {
    MutexLock lock(&mu_);
    queue_.push_back(std::move(work));
  }

  // Stops taking items: those queued, and any pushed later, are never run.
  // Returns at once; the item being run finishes (the destructor waits for
  // it).
  void Stop() {
    MutexLock lock(&mu_);
    stopping_ = true;
  }

  // Blocks until no item is queued or running (an item that goes back to
  // the queue is still work), or the queue is stopped.
  void WaitUntilIdle() {
    MutexLock lock(&mu_);
    mu_.Await(absl::Condition(
        +[](BackgroundQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
          return q->stopping_ || (q->queue_.empty() && !q->running_);
        },
        this));
  }

 private:
  void Run(int nice) {
    if (nice != 0) SetThisThreadNice(nice);
    for (;;) {
      std::optional<Work> work;
      {
        MutexLock lock(&mu_);
        running_ = false;
        mu_.Await(absl::Condition(
            +[](BackgroundQueue* q) ABSL_EXCLUSIVE_LOCKS_REQUIRED(q->mu_) {
              return q->stopping_ || !q->queue_.empty();
            },
            this));
        if (stopping_) return;
        work.emplace(std::move(queue_.front()));
        queue_.pop_front();
        running_ = true;
      }
      if (run_(*work)) Push(std::move(*work));  // more to do, after others
    }
  }

  const std::function<bool(Work&)> run_;
  Mutex mu_;
  std::deque<Work> queue_ ABSL_GUARDED_BY(mu_);
  bool running_ ABSL_GUARDED_BY(mu_) = false;  // an item is out of the queue
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::thread thread_;  // last: starts once the members above are built
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_BACKGROUND_QUEUE_H_
