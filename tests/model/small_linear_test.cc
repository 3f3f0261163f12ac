#include "model/small_linear.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>

namespace knnmem::model {
namespace {

// The brute force: y[i][o] = b[o] + sum_k x[i][k] w[o][k], in double.
torch::Tensor BruteForce(const torch::Tensor& x, const torch::Tensor& w,
                         const torch::Tensor& b) {
  const int64_t in = w.size(1), out = w.size(0), rows = x.numel() / in;
  const torch::Tensor xs = x.reshape({rows, in}).to(torch::kDouble);
  const torch::Tensor ws = w.to(torch::kDouble);
  torch::Tensor y = torch::empty({rows, out}, torch::kDouble);
  auto xa = xs.accessor<double, 2>();
  auto wa = ws.accessor<double, 2>();
  auto ya = y.accessor<double, 2>();
  for (int64_t i = 0; i < rows; ++i) {
    for (int64_t o = 0; o < out; ++o) {
      double sum = b.defined() ? b[o].item<double>() : 0.0;
      for (int64_t k = 0; k < in; ++k) sum += xa[i][k] * wa[o][k];
      ya[i][o] = sum;
    }
  }
  std::vector<int64_t> shape = x.sizes().vec();
  shape.back() = out;
  return y.to(torch::kFloat).view(shape);
}

// A few rows (the kernel), many rows (the GEMM), with and without a bias,
// dimensions with ragged ends, inputs shaped [lanes, 1, in] as a decode
// step's are: all equal the brute force.
TEST(SmallLinearTest, EqualsTheBruteForce) {
  torch::NoGradGuard no_grad;
  torch::manual_seed(3);
  for (const bool bias : {true, false}) {
    for (const int64_t in : {37, 256}) {
      for (const int64_t out : {19, 300}) {
        torch::nn::Linear layer(torch::nn::LinearOptions(in, out).bias(bias));
        for (const int64_t rows : {1, 3, 4, 8, 9, 40}) {
          const torch::Tensor x = torch::randn({rows, 1, in});
          const torch::Tensor got = SmallLinear(layer, x);
          ASSERT_EQ(got.sizes(), (std::vector<int64_t>{rows, 1, out}));
          EXPECT_LT((got - BruteForce(x, layer->weight, layer->bias))
                        .abs()
                        .max()
                        .item<float>(),
                    1e-4)
              << "in " << in << " out " << out << " rows " << rows << " bias "
              << bias;
        }
      }
    }
  }
}

// With gradients recorded it is the layer's own forward: gradients reach
// the weights.
TEST(SmallLinearTest, RecordsGradientsThroughTheLayer) {
  torch::manual_seed(4);
  torch::nn::Linear layer(8, 5);
  const torch::Tensor x = torch::randn({2, 8});
  SmallLinear(layer, x).sum().backward();
  ASSERT_TRUE(layer->weight.grad().defined());
  // d(sum y)/dw[o][k] = sum_i x[i][k].
  EXPECT_TRUE(torch::allclose(layer->weight.grad(), x.sum(0).expand({5, 8}),
                              1e-5, 1e-6));
}

}  // namespace
}  // namespace knnmem::model
