// CallGate: counts the calls that may touch the store and, once closed,
// turns new ones away, so that a stopping server can close the store as
// soon as the calls inside have ended, without waiting for gRPC to close
// idle client connections.
#ifndef KNNMEM_SERVER_SERVICE_CALL_GATE_H_
#define KNNMEM_SERVER_SERVICE_CALL_GATE_H_

#include <cstddef>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/time/time.h"
#include "base/sync.h"

namespace knnmem {

// What a call that the closed gate turned away gets.
inline absl::Status ServerStopping() {
  return absl::UnavailableError(
      "the server is stopping; retry on another server or once it restarts");
}

class CallGate {
 public:
  // Lets a call in and counts it; false once Close() ran.
  bool Enter() {
    MutexLock lock(&mu_);
    if (closed_) return false;
    ++inside_;
    return true;
  }
  // Called by the thread that did a call's work, before it hands the answer
  // to gRPC. gRPC orders that hand-over before OnDone, where Exit runs, but
  // Debian's gRPC is not built for ThreadSanitizer, which cannot see it:
  // taking the gate's lock here orders the work before AwaitEmpty's return
  // where TSan can see it too.
  void HandOff() { MutexLock lock(&mu_); }
  // A call that entered has ended.
  void Exit() {
    MutexLock lock(&mu_);
    --inside_;
  }
  // No call enters after this returns.
  void Close() {
    MutexLock lock(&mu_);
    closed_ = true;
  }
  // Waits until every call that entered has exited; false after `timeout`.
  bool AwaitEmpty(absl::Duration timeout = absl::InfiniteDuration()) {
    MutexLock lock(&mu_);
    return mu_.AwaitWithTimeout(
        absl::Condition(
            +[](size_t* inside) { return *inside == 0; }, &inside_),
        timeout);
  }
  size_t inside() const {
    MutexLock lock(&mu_);
    return inside_;
  }

 private:
  mutable Mutex mu_;
  bool closed_ ABSL_GUARDED_BY(mu_) = false;
  size_t inside_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_CALL_GATE_H_
