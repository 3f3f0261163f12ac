// WorkerPool: a fixed set of threads that run the server's heavy work
// (search and storage), so gRPC threads only decode, dispatch and reply.
#ifndef KNNMEM_BASE_WORKER_POOL_H_
#define KNNMEM_BASE_WORKER_POOL_H_

#include <cstddef>
#include <deque>
#include <functional>
#include <thread>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"

namespace knnmem {

class WorkerPool {
 public:
  // Starts `threads` (>= 1) workers.
  explicit WorkerPool(int threads);
  // Runs every task already submitted, then joins the workers.
  ~WorkerPool();

  WorkerPool(const WorkerPool&) = delete;
  WorkerPool& operator=(const WorkerPool&) = delete;

  // Queues `task` to run on a worker. Never blocks on the task.
  void Submit(std::function<void()> task);

  // Runs fn(i) for i in [0, n) on the pool and returns when all are done.
  // The calling thread takes part, so this is safe to call from a worker:
  // it never waits for a task that no thread is running. Inside a
  // SerialScope of the calling thread, the calling thread runs them all.
  void ParallelFor(size_t n, const std::function<void(size_t)>& fn);

  // While one lives, every ParallelFor called on its thread (of any pool,
  // nested ones included) runs on that thread alone: for work smaller than
  // waking a worker costs (a decode step over a few short streams).
  class SerialScope {
   public:
    SerialScope();
    ~SerialScope();
    SerialScope(const SerialScope&) = delete;
    SerialScope& operator=(const SerialScope&) = delete;

   private:
    const bool outer_;  // the thread's state before this scope
  };

  // Returns once no task is queued or running. The server calls it after
  // gRPC has finished every call and before it closes the store, so no task
  // (a call's tail, a background compaction) outlives what it uses.
  void WaitIdle();

  int threads() const { return static_cast<int>(threads_.size()); }
  // Tasks queued and not yet started.
  size_t queue_depth() const;

 private:
  void Run();

  mutable Mutex mu_;
  std::deque<std::function<void()>> queue_ ABSL_GUARDED_BY(mu_);
  size_t running_ ABSL_GUARDED_BY(mu_) = 0;
  bool stopping_ ABSL_GUARDED_BY(mu_) = false;
  std::vector<std::thread> threads_;
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_WORKER_POOL_H_
