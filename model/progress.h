// Progress: one line on stderr (redrawn twice a second on a terminal; a
// line every 10 s into a file or pipe), for long
// training and evaluation runs: done / total, tokens per second, the
// running loss and bits per byte, and the time left.
#ifndef KNNMEM_MODEL_PROGRESS_H_
#define KNNMEM_MODEL_PROGRESS_H_

#include <chrono>
#include <cstdint>
#include <string>

namespace knnmem::model {

class Progress {
 public:
  Progress(std::string label, int64_t total);
  // After each step: `tokens` processed by it and its mean loss (nats).
  void Update(int64_t done, int64_t tokens, double loss);
  // Draws the final line and a newline.
  void Finish();
  // The run also stops after `seconds`: the time left is the lesser.
  void set_time_limit(double seconds) { time_limit_ = seconds; }

  // Exponential moving average of the loss (nats per byte).
  double loss() const { return loss_; }
  double tokens_per_second() const;

 private:
  void Draw(bool force);

  const std::string label_;
  const int64_t total_;
  const std::chrono::steady_clock::time_point start_;
  std::chrono::steady_clock::time_point last_draw_;
  int64_t done_ = 0, tokens_ = 0;
  double loss_ = 0;
  bool has_loss_ = false;
  double time_limit_ = 0;  // 0: none
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_PROGRESS_H_
