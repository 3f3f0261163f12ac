#include "model/memory_tensors.h"

#include "absl/strings/str_cat.h"

namespace knnmem::model {

torch::Tensor Flat(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
}

absl::Span<const float> FloatsOf(const torch::Tensor& flat) {
  return {flat.data_ptr<float>(), static_cast<size_t>(flat.numel())};
}

absl::Status CheckRows(const torch::Tensor& t, const char* what, int heads,
                       int dim) {
  if (t.dim() != 3 || t.size(1) != heads || t.size(2) != dim) {
    return absl::InvalidArgumentError(
        absl::StrCat(what, ": shape ", c10::str(t.sizes()), ", expected [n, ",
                     heads, ", ", dim, "]"));
  }
  return absl::OkStatus();
}

torch::Tensor FloatTensor(absl::Span<const float> values,
                          std::vector<int64_t> shape) {
  torch::Tensor t = torch::empty(shape, torch::kFloat32);
  std::copy(values.begin(), values.end(), t.data_ptr<float>());
  return t;
}

torch::Tensor LongTensor(absl::Span<const int64_t> values,
                         std::vector<int64_t> shape) {
  torch::Tensor t = torch::empty(shape, torch::kInt64);
  std::copy(values.begin(), values.end(), t.data_ptr<int64_t>());
  return t;
}

Neighbours MakeNeighbours(int64_t n, const MemoryShape& shape, int k,
                          absl::Span<const float> keys,
                          absl::Span<const float> values,
                          absl::Span<const int64_t> positions) {
  const int64_t h = shape.heads;
  return {FloatTensor(keys, {n, h, k, shape.key_dim}),
          FloatTensor(values, {n, h, k, shape.value_dim}),
          LongTensor(positions, {n, h, k})};
}

}  // namespace knnmem::model
