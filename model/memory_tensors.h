// Conversions between the model's tensors and the flat float32 / int64
// arrays that the memory backends speak.
#ifndef KNNMEM_MODEL_MEMORY_TENSORS_H_
#define KNNMEM_MODEL_MEMORY_TENSORS_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

#include "absl/status/status.h"
#include "absl/types/span.h"
#include "model/memory.h"

namespace knnmem::model {

// float32, contiguous, on the CPU, detached: safe to read as a span while
// the returned tensor lives.
torch::Tensor Flat(const torch::Tensor& t);
absl::Span<const float> FloatsOf(const torch::Tensor& flat);

// INVALID_ARGUMENT naming `what` unless `t` is [rows, heads, dim].
absl::Status CheckRows(const torch::Tensor& t, const char* what, int heads,
                       int dim);

// Copies into a new tensor of `shape`.
torch::Tensor FloatTensor(absl::Span<const float> values,
                          std::vector<int64_t> shape);
torch::Tensor LongTensor(absl::Span<const int64_t> values,
                         std::vector<int64_t> shape);

// Neighbours from flat [n, heads, k(, dim)] arrays.
Neighbours MakeNeighbours(int64_t n, const MemoryShape& shape, int k,
                          absl::Span<const float> keys,
                          absl::Span<const float> values,
                          absl::Span<const int64_t> positions);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_MEMORY_TENSORS_H_
