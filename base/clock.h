// Clock: where the server reads the time for idle TTLs, so that tests can
// move time by hand instead of sleeping.
#ifndef KNNMEM_BASE_CLOCK_H_
#define KNNMEM_BASE_CLOCK_H_

#include <atomic>
#include <chrono>
#include <cstdint>

namespace knnmem {

class Clock {
 public:
  virtual ~Clock() = default;
  // Monotonic microseconds since an arbitrary start.
  virtual int64_t NowMicros() const = 0;
};

class SteadyClock final : public Clock {
 public:
  int64_t NowMicros() const override {
    return std::chrono::duration_cast<std::chrono::microseconds>(
               std::chrono::steady_clock::now().time_since_epoch())
        .count();
  }
};

// A clock that only moves when told to.
class FakeClock final : public Clock {
 public:
  int64_t NowMicros() const override { return now_.load(); }
  void AdvanceSeconds(double s) { now_ += static_cast<int64_t>(s * 1e6); }

 private:
  std::atomic<int64_t> now_{1'000'000};
};

}  // namespace knnmem

#endif  // KNNMEM_BASE_CLOCK_H_
