// Checkpoints: a directory with the model's config (config.txt), its
// parameters (model.pt), the optimizer's state (optimizer.pt) and where
// training stood (state.txt). Each file is written to a temporary name and
// renamed, so a crash leaves the previous checkpoint whole.
#ifndef KNNMEM_MODEL_CHECKPOINT_H_
#define KNNMEM_MODEL_CHECKPOINT_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>

#include "absl/status/statusor.h"
#include "model/config.h"
#include "model/transformer.h"

namespace knnmem::model {

struct TrainState {
  int64_t step = 0;
  int64_t batches = 0;  // SegmentBatcher::calls(), to resume the data
  int64_t tokens = 0;
  int64_t memory = 0;  // memory entries per head in training (0: XL only)
};

absl::Status SaveCheckpoint(const std::string& dir, Transformer& model,
                            torch::optim::Optimizer* optimizer,
                            const TrainState& state);

// True when `dir` holds a checkpoint.
bool HasCheckpoint(const std::string& dir);

absl::StatusOr<ModelConfig> LoadCheckpointConfig(const std::string& dir);
// Loads parameters into `model` (built from LoadCheckpointConfig), and the
// optimizer's state when `optimizer` is not null and the file exists.
absl::StatusOr<TrainState> LoadCheckpoint(const std::string& dir,
                                          Transformer& model,
                                          torch::optim::Optimizer* optimizer);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_CHECKPOINT_H_
