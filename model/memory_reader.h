// MemoryReader: what the kNN layer asks of memory for one batch of
// segments, one document per batch lane. MemoryLink implements it over a
// Memory backend; tests implement it directly.
#ifndef KNNMEM_MODEL_MEMORY_READER_H_
#define KNNMEM_MODEL_MEMORY_READER_H_

#include <torch/torch.h>

#include <optional>
#include <vector>

#include "model/memory.h"

namespace knnmem::model {

class MemoryReader {
 public:
  virtual ~MemoryReader() = default;
  // Attend (the server finishes the attention; no gradients) rather than
  // Search (neighbours come back and the scores are recomputed).
  virtual bool use_attend() const = 0;
  // `queries` [lanes, T, heads, head_dim], normalised, detached. Per lane:
  // the neighbours, or nullopt when that lane has no memory to offer.
  virtual std::vector<std::optional<Neighbours>> Search(
      const torch::Tensor& queries, int k) = 0;
  virtual std::vector<std::optional<Attention>> Attend(
      const torch::Tensor& queries, int k, const AttendOptions& options) = 0;
  // The newest position in lane's memory (ages count from it); -1: empty.
  virtual int64_t newest(int lane) const = 0;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_MEMORY_READER_H_
