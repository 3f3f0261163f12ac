#include "model/progress.h"

#include <unistd.h>

#include <algorithm>
#include <cmath>
#include <cstdio>
#include <utility>

namespace knnmem::model {

Progress::Progress(std::string label, int64_t total)
    : label_(std::move(label)),
      total_(total),
      start_(std::chrono::steady_clock::now()),
      last_draw_(start_) {}

double Progress::tokens_per_second() const {
  const double s =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start_)
          .count();
  return s > 0 ? tokens_ / s : 0;
}

void Progress::Update(int64_t done, int64_t tokens, double loss) {
  done_ = done;
  tokens_ += tokens;
  loss_ = has_loss_ ? 0.98 * loss_ + 0.02 * loss : loss;
  has_loss_ = true;
  Draw(false);
}

void Progress::Finish() {
  Draw(true);
  std::fputc('\n', stderr);
}

void Progress::Draw(bool force) {
  const auto now = std::chrono::steady_clock::now();
  // A terminal gets one line redrawn; a log file gets a line per draw.
  const bool terminal = isatty(STDERR_FILENO);
  if (!force &&
      now - last_draw_ < std::chrono::milliseconds(terminal ? 500 : 10000)) {
    return;
  }
  last_draw_ = now;
  const double elapsed = std::chrono::duration<double>(now - start_).count();
  double left =
      done_ > 0 ? elapsed * static_cast<double>(total_ - done_) / done_ : 0;
  if (time_limit_ > 0)
    left = std::min(left, std::max(0.0, time_limit_ - elapsed));
  const char* end = terminal ? "\r" : "\n";
  std::fprintf(
      stderr,
      "[%s] %lld/%lld %3.0f%% | %.1fK tok/s | loss %.4f | %.4f "
      "bits/byte | %.0f s left   %s",
      label_.c_str(), static_cast<long long>(done_),
      static_cast<long long>(total_), total_ > 0 ? 100.0 * done_ / total_ : 0.0,
      tokens_per_second() / 1e3, loss_, loss_ / std::log(2.0), left, end);
  std::fflush(stderr);
}

}  // namespace knnmem::model
