#include "model/small_linear.h"

#include <vector>

#include "server/search/few_query_scan.h"

namespace knnmem::model {

torch::Tensor SmallLinear(torch::nn::Linear& layer, const torch::Tensor& x) {
  static const FewQueryIsa isa = FewQueryIsaOfCpu();
  const torch::Tensor& w = layer->weight;
  const int64_t in = w.size(1), out = w.size(0);
  const int64_t rows = x.dim() == 0 ? 0 : x.numel() / in;
  if (isa == FewQueryIsa::kNone || torch::GradMode::is_enabled() || rows < 1 ||
      rows > kMaxFewQueries || x.scalar_type() != torch::kFloat ||
      !x.device().is_cpu() || !w.is_contiguous() ||
      w.scalar_type() != torch::kFloat) {
    return layer->forward(x);
  }
  const torch::Tensor input = x.reshape({rows, in}).contiguous();
  torch::Tensor y = torch::empty({rows, out}, torch::kFloat);
  ScoreFewQueries(isa, input.data_ptr<float>(), static_cast<size_t>(in),
                  static_cast<uint32_t>(rows), static_cast<uint32_t>(in),
                  static_cast<const char*>(w.data_ptr()), DType::kFloat32,
                  static_cast<uint32_t>(out), y.data_ptr<float>(),
                  static_cast<size_t>(out));
  if (layer->bias.defined()) y.add_(layer->bias);
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  return y.view(shape);
}

}  // namespace knnmem::model
