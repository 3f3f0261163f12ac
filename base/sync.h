// Mutex, MutexLock, ReaderMutexLock: absl::Mutex with the same API subset,
// made visible to ThreadSanitizer.
//
// Debian's abseil is not built with TSan, so TSan cannot see absl::Mutex
// acquire and release, and reports every access it guards as a race. Under
// TSan (make test-tsan) these wrappers tell it about each lock and unlock;
// otherwise they compile down to absl::Mutex.
#ifndef KNNMEM_BASE_SYNC_H_
#define KNNMEM_BASE_SYNC_H_

#include "absl/base/thread_annotations.h"
#include "absl/synchronization/mutex.h"
#include "absl/time/time.h"

#if defined(__SANITIZE_THREAD__)
#include <sanitizer/tsan_interface.h>
#define KNNMEM_TSAN_ACQUIRE(p) __tsan_acquire(p)
#define KNNMEM_TSAN_RELEASE(p) __tsan_release(p)
#else
#define KNNMEM_TSAN_ACQUIRE(p) static_cast<void>(p)
#define KNNMEM_TSAN_RELEASE(p) static_cast<void>(p)
#endif

namespace knnmem {

class ABSL_LOCKABLE Mutex {
 public:
  void Lock() ABSL_EXCLUSIVE_LOCK_FUNCTION() {
    mu_.Lock();
    KNNMEM_TSAN_ACQUIRE(this);
  }
  void Unlock() ABSL_UNLOCK_FUNCTION() {
    KNNMEM_TSAN_RELEASE(this);
    mu_.Unlock();
  }
  // Takes the lock if no one holds it (shared or exclusive); never blocks.
  bool TryLock() ABSL_EXCLUSIVE_TRYLOCK_FUNCTION(true) {
    if (!mu_.TryLock()) return false;
    KNNMEM_TSAN_ACQUIRE(this);
    return true;
  }
  void ReaderLock() ABSL_SHARED_LOCK_FUNCTION() {
    mu_.ReaderLock();
    KNNMEM_TSAN_ACQUIRE(this);
  }
  void ReaderUnlock() ABSL_UNLOCK_FUNCTION() {
    KNNMEM_TSAN_RELEASE(this);
    mu_.ReaderUnlock();
  }
  // Releases the lock until `condition` holds, then holds it again. The
  // condition is evaluated with the lock held, possibly by another thread.
  void Await(const absl::Condition& condition) {
    Annotated annotated{this, &condition};
    KNNMEM_TSAN_RELEASE(this);
    mu_.Await(absl::Condition(&annotated));
    KNNMEM_TSAN_ACQUIRE(this);
  }
  // Await, giving up after `timeout`; returns whether `condition` holds.
  bool AwaitWithTimeout(const absl::Condition& condition,
                        absl::Duration timeout) {
    Annotated annotated{this, &condition};
    KNNMEM_TSAN_RELEASE(this);
    const bool holds =
        mu_.AwaitWithTimeout(absl::Condition(&annotated), timeout);
    KNNMEM_TSAN_ACQUIRE(this);
    return holds;
  }

 private:
  // A condition as the Await functions hand it to absl, which evaluates it
  // under its lock, in the waiting thread or in whichever thread unlocks:
  // each evaluation acquires and releases too.
  struct Annotated {
    Mutex* mu;
    const absl::Condition* condition;
    bool operator()() const {
      KNNMEM_TSAN_ACQUIRE(mu);
      const bool holds = condition->Eval();
      KNNMEM_TSAN_RELEASE(mu);
      return holds;
    }
  };

  absl::Mutex mu_;
};

class ABSL_SCOPED_LOCKABLE MutexLock {
 public:
  explicit MutexLock(Mutex* mu) ABSL_EXCLUSIVE_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->Lock();
  }
  ~MutexLock() ABSL_UNLOCK_FUNCTION() { mu_->Unlock(); }
  MutexLock(const MutexLock&) = delete;
  MutexLock& operator=(const MutexLock&) = delete;

 private:
  Mutex* const mu_;
};

class ABSL_SCOPED_LOCKABLE ReaderMutexLock {
 public:
  explicit ReaderMutexLock(Mutex* mu) ABSL_SHARED_LOCK_FUNCTION(mu) : mu_(mu) {
    mu_->ReaderLock();
  }
  ~ReaderMutexLock() ABSL_UNLOCK_FUNCTION() { mu_->ReaderUnlock(); }
  ReaderMutexLock(const ReaderMutexLock&) = delete;
  ReaderMutexLock& operator=(const ReaderMutexLock&) = delete;

 private:
  Mutex* const mu_;
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_SYNC_H_
