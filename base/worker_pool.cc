#include "base/worker_pool.h"

#include <algorithm>
#include <atomic>
#include <memory>

namespace knnmem {

WorkerPool::WorkerPool(int threads) {
  if (threads < 1) threads = 1;
  threads_.reserve(threads);
  for (int i = 0; i < threads; ++i) threads_.emplace_back([this] { Run(); });
}

WorkerPool::~WorkerPool() {
  {
    MutexLock lock(&mu_);
    stopping_ = true;
  }
  for (std::thread& t : threads_) t.join();
}

void WorkerPool::Submit(std::function<void()> task) {
  MutexLock lock(&mu_);
  queue_.push_back(std::move(task));
}

size_t WorkerPool::queue_depth() const {
  MutexLock lock(&mu_);
  return queue_.size();
}

void WorkerPool::Run() {
  for (;;) {
    std::function<void()> task;
    {
      MutexLock lock(&mu_);
      mu_.Await(absl::Condition(
          +[](WorkerPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
            return p->stopping_ || !p->queue_.empty();
          },
          this));
      if (queue_.empty()) return;  // stopping and drained
      task = std::move(queue_.front());
      queue_.pop_front();
      ++running_;
    }
    task();
    task = nullptr;  // the task's captures die before it counts as done
    MutexLock lock(&mu_);
    --running_;
  }
}

void WorkerPool::WaitIdle() {
  MutexLock lock(&mu_);
  mu_.Await(absl::Condition(
      +[](WorkerPool* p) ABSL_EXCLUSIVE_LOCKS_REQUIRED(p->mu_) {
        return p->queue_.empty() && p->running_ == 0;
      },
      this));
}

namespace {
thread_local bool serial = false;  // a SerialScope lives on this thread
}  // namespace

WorkerPool::SerialScope::SerialScope() : outer_(serial) { serial = true; }
WorkerPool::SerialScope::~SerialScope() { serial = outer_; }

void WorkerPool::ParallelFor(size_t n, const std::function<void(size_t)>& fn) {
  if (n == 0) return;
  if (n == 1 || threads_.size() == 1 || serial) {
    for (size_t i = 0; i < n; ++i) fn(i);
    return;
  }
  // Indices are claimed from a shared counter by the caller and by helper
  // tasks; a helper that starts after all indices are claimed does nothing.
  struct State {
    std::atomic<size_t> next{0};
    Mutex mu;
    size_t done ABSL_GUARDED_BY(mu) = 0;
  };
  auto state = std::make_shared<State>();
  auto work = [state, n, &fn] {
    size_t finished = 0;
    for (size_t i; (i = state->next.fetch_add(1)) < n;) {
      fn(i);
      ++finished;
    }
    if (finished > 0) {
      MutexLock lock(&state->mu);
      state->done += finished;
    }
  };
  // Helpers capture `fn` by reference: they only call it after claiming an
  // index, and the caller does not return until every index is finished.
  // Only as many as there are idle workers: when every worker is busy (the
  // outer loop of a nested ParallelFor holds them all), a helper would
  // start after the caller has claimed every index, and cost a wake-up and
  // a queue round trip for nothing.
  {
    MutexLock lock(&mu_);
    const size_t busy = running_ + queue_.size();
    const size_t idle = threads_.size() > busy ? threads_.size() - busy : 0;
    const size_t helpers = std::min(std::min(n, threads_.size()) - 1, idle);
    for (size_t h = 0; h < helpers; ++h) queue_.push_back(work);
  }
  work();
  std::pair<State*, size_t> target(state.get(), n);
  MutexLock lock(&state->mu);
  state->mu.Await(absl::Condition(
      +[](std::pair<State*, size_t>* a) ABSL_NO_THREAD_SAFETY_ANALYSIS {
        return a->first->done == a->second;
      },
      &target));
}

}  // namespace knnmem
