// Progress: one line on stderr, redrawn at most twice a second, for long
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
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_PROGRESS_H_
