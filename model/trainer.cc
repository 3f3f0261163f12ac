#include "model/trainer.h"

#include <algorithm>

namespace knnmem::model {

Trainer::Trainer(Transformer model, DocumentReader* reader,
                 const TrainSettings& settings)
    : model_(std::move(model)), reader_(reader), settings_(settings) {
  optimizer_ = std::make_unique<torch::optim::AdamW>(
      model_->parameters(), torch::optim::AdamWOptions(settings.learning_rate)
                                .weight_decay(settings.weight_decay));
}

StepStats Trainer::Step(const std::vector<std::optional<Segment>>& batch) {
  model_->train();
  const double warm = std::min(
      1.0, static_cast<double>(steps_ + 1) / std::max(1, settings_.warmup));
  for (auto& group : optimizer_->param_groups()) {
    static_cast<torch::optim::AdamWOptions&>(group.options())
        .lr(settings_.learning_rate * warm);
  }
  optimizer_->zero_grad();
  StepResult r = reader_->Step(batch);
  StepStats stats{r.loss.item<double>(), r.bytes};
  if (r.bytes > 0) {
    r.loss.backward();
    torch::nn::utils::clip_grad_norm_(model_->parameters(), settings_.clip);
    optimizer_->step();
  }
  ++steps_;
  return stats;
}

}  // namespace knnmem::model
