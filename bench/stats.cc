#include "bench/stats.h"

#include <algorithm>
#include <chrono>
#include <cmath>
#include <cstdio>
#include <limits>

namespace knnmem::bench {

double NowSeconds() {
  return std::chrono::duration<double>(
             std::chrono::steady_clock::now().time_since_epoch())
      .count();
}

double Samples::Median() const {
  if (seconds.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> s = seconds;
  std::sort(s.begin(), s.end());
  const size_t n = s.size();
  return n % 2 == 1 ? s[n / 2] : 0.5 * (s[n / 2 - 1] + s[n / 2]);
}

double Samples::Percentile(double pct) const {
  if (seconds.empty()) return std::numeric_limits<double>::quiet_NaN();
  std::vector<double> s = seconds;
  std::sort(s.begin(), s.end());
  const double rank = std::ceil(pct / 100.0 * static_cast<double>(s.size()));
  const size_t index = static_cast<size_t>(std::max(1.0, rank)) - 1;
  return s[std::min(index, s.size() - 1)];
}

double Samples::Total() const {
  double t = 0;
  for (double s : seconds) t += s;
  return t;
}

Samples Samples::Scaled(double factor) const {
  Samples out;
  for (double s : seconds) out.Add(s * factor);
  return out;
}

absl::StatusOr<Samples> Measure(int warmups, int reps,
                                const std::function<absl::Status()>& op) {
  for (int i = 0; i < warmups; ++i) {
    absl::Status s = op();
    if (!s.ok()) return s;
  }
  Samples samples;
  for (int i = 0; i < reps; ++i) {
    const double start = NowSeconds();
    absl::Status s = op();
    const double elapsed = NowSeconds() - start;
    if (!s.ok()) return s;
    samples.Add(elapsed);
  }
  return samples;
}

void Progress(const std::string& message) {
  static const double start = NowSeconds();
  std::fprintf(stderr, "[knnmem-bench +%.1fs] %s\n", NowSeconds() - start,
               message.c_str());
  std::fflush(stderr);
}

}  // namespace knnmem::bench
