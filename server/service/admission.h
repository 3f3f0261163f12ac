// Admission: bounds the work the server accepts at once, by count and by
// request bytes, so that a flood gets RESOURCE_EXHAUSTED at once instead of
// queueing without limit and growing memory.
#ifndef KNNMEM_SERVER_SERVICE_ADMISSION_H_
#define KNNMEM_SERVER_SERVICE_ADMISSION_H_

#include <cstddef>
#include <cstdint>
#include <utility>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/sync.h"

namespace knnmem {

class Admission {
 public:
  // An admitted request: released when destroyed (movable).
  class Ticket {
   public:
    Ticket() = default;
    Ticket(Ticket&& other) noexcept
        : admission_(std::exchange(other.admission_, nullptr)),
          bytes_(other.bytes_) {}
    Ticket& operator=(Ticket&& other) noexcept {
      if (this != &other) {
        Reset();
        admission_ = std::exchange(other.admission_, nullptr);
        bytes_ = other.bytes_;
      }
      return *this;
    }
    ~Ticket() { Reset(); }
    // Releases the request now (nothing when already released).
    void Reset() {
      if (admission_ != nullptr) admission_->Release(bytes_);
      admission_ = nullptr;
    }

   private:
    friend class Admission;
    Ticket(Admission* admission, uint64_t bytes)
        : admission_(admission), bytes_(bytes) {}
    Admission* admission_ = nullptr;
    uint64_t bytes_ = 0;
  };

  // 0 for either limit means unlimited.
  Admission(size_t max_requests, uint64_t max_bytes)
      : max_requests_(max_requests), max_bytes_(max_bytes) {}

  // Admits a request of `bytes`, or returns RESOURCE_EXHAUSTED naming the
  // limit it would pass. A request larger than the byte limit on its own
  // is admitted when nothing else is in flight, so that any request the
  // message size allows can run.
  absl::Status TryAdmit(uint64_t bytes);
  // Ends an admitted request of `bytes`.
  void Release(uint64_t bytes);
  // TryAdmit, with the release tied to the ticket's life.
  absl::StatusOr<Ticket> Admit(uint64_t bytes);

  size_t requests() const;
  uint64_t bytes() const;

 private:
  const size_t max_requests_;
  const uint64_t max_bytes_;
  mutable Mutex mu_;
  size_t requests_ ABSL_GUARDED_BY(mu_) = 0;
  uint64_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_ADMISSION_H_
