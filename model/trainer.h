// Trainer: one optimisation step at a time over DocumentReader's batches:
// AdamW with linear warm-up, gradient clipping, and truncated
// backpropagation at segment boundaries (the XL cache and memory are
// detached, as in the paper).
#ifndef KNNMEM_MODEL_TRAINER_H_
#define KNNMEM_MODEL_TRAINER_H_

#include <torch/torch.h>

#include <memory>
#include <optional>
#include <vector>

#include "model/document_reader.h"
#include "model/transformer.h"

namespace knnmem::model {

struct TrainSettings {
  double learning_rate = 1e-3;
  double weight_decay = 0.01;
  double clip = 1.0;  // max gradient norm
  int warmup = 100;   // steps of linear warm-up
};

struct StepStats {
  double loss = 0;    // mean nats per byte
  int64_t bytes = 0;  // targets it covered
};

class Trainer {
 public:
  Trainer(Transformer model, DocumentReader* reader,
          const TrainSettings& settings);

  StepStats Step(const std::vector<std::optional<Segment>>& batch);

  torch::optim::AdamW& optimizer() { return *optimizer_; }
  int64_t steps() const { return steps_; }
  void set_steps(int64_t steps) { steps_ = steps; }

 private:
  Transformer model_;
  DocumentReader* const reader_;
  const TrainSettings settings_;
  std::unique_ptr<torch::optim::AdamW> optimizer_;
  int64_t steps_ = 0;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_TRAINER_H_
