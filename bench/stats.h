// Timing: a monotonic clock, repeated measurement of one operation, and the
// order statistics the report prints.
//
// Contract: durations are wall-clock seconds from std::chrono::steady_clock.
// Median of an even count is the mean of the two middle values; Percentile
// is nearest-rank (the smallest sample with at least p% of samples at or
// below it), so the p99 of fewer than 100 samples is the maximum.
#ifndef KNNMEM_BENCH_STATS_H_
#define KNNMEM_BENCH_STATS_H_

#include <functional>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace knnmem::bench {

// Seconds since an arbitrary fixed point (steady clock).
double NowSeconds();

// Durations of one operation, in seconds.
struct Samples {
  std::vector<double> seconds;

  void Add(double s) { seconds.push_back(s); }
  size_t size() const { return seconds.size(); }
  double Median() const;                // NaN when empty
  double Percentile(double pct) const;  // pct in (0, 100]; NaN when empty
  double P99() const { return Percentile(99); }
  double Total() const;
  // Every sample times `factor` (an extrapolation from part of the work).
  Samples Scaled(double factor) const;
};

// Runs `op` `warmups` times untimed, then `reps` times timed. Returns the
// first error `op` returns.
absl::StatusOr<Samples> Measure(int warmups, int reps,
                                const std::function<absl::Status()>& op);

// Writes "[knnmem-bench +12.3s] message" to stderr (the run's progress).
void Progress(const std::string& message);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_STATS_H_
