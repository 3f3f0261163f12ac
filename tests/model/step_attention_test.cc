#include "model/step_attention.h"

#include <gtest/gtest.h>
#include <torch/torch.h>

#include <cmath>
#include <vector>

#include "model/config.h"
#include "model/transformer.h"

namespace knnmem::model {
namespace {

ModelConfig Small(bool knn_everywhere) {
  ModelConfig c;
  c.layers = 1;
  c.d_model = 40;  // head_dim 10: the kernels' ragged ends
  c.heads = 4;
  c.ffn = 64;
  c.segment = 16;
  c.knn_layer = knn_everywhere ? 0 : -1;
  return c;
}

// One position through the attention layer with a segment slot: without
// gradients the fused StepAttention answers, with them the general path
// does. They agree, for the kNN layer (per-head scale, normalised keys) and
// a plain one, with and without an XL cache, with lanes whose cache is of
// another document (masked), at every prefix length of the segment.
TEST(StepAttentionTest, EqualsTheGeneralPath) {
  if (!StepAttentionAvailable()) {
    GTEST_SKIP() << "this CPU has neither AVX2+FMA+F16C nor AVX-512";
  }
  torch::manual_seed(8);
  for (const bool knn : {true, false}) {
    const ModelConfig c = Small(knn);
    AttentionLayer layer(c, knn);
    const int64_t b = 3, h = c.heads, dh = c.head_dim();
    {
      // Position biases unlike their start, so the distances matter.
      torch::NoGradGuard no_grad;
      for (auto& p : layer->parameters()) p.add_(0.3 * torch::randn_like(p));
    }
    for (const int64_t cache : {int64_t{0}, int64_t{16}}) {
      const torch::Tensor cache_k =
          cache > 0 ? torch::randn({b, h, cache, dh}) : torch::Tensor();
      const torch::Tensor cache_v =
          cache > 0 ? torch::randn({b, h, cache, dh}) : torch::Tensor();
      const torch::Tensor valid = torch::tensor({true, false, true});
      SegmentSlot fused{torch::zeros({b, h, c.segment, dh}),
                        torch::zeros({b, h, c.segment, dh}), 0};
      SegmentSlot general{fused.keys.clone(), fused.values.clone(), 0};
      for (int64_t p = 0; p < c.segment; ++p) {
        const torch::Tensor x = torch::randn({b, 1, c.d_model});
        torch::Tensor k1, v1, k2, v2, want;
        fused.positions = general.positions = p;
        const torch::Tensor got = [&] {
          torch::NoGradGuard no_grad;
          return layer->forward(x, cache_k, cache_v, valid, nullptr, &k1, &v1,
                                &fused);
        }();
        want = layer->forward(x, cache_k, cache_v, valid, nullptr, &k2, &v2,
                              &general);
        ASSERT_TRUE(want.requires_grad());  // the general path ran
        EXPECT_LT((got - want.detach()).abs().max().item<float>(), 1e-5)
            << "knn " << knn << " cache " << cache << " position " << p;
        // Both wrote the position's key and value into their buffers (the
        // projections by SmallLinear and by the GEMM: equal to rounding).
        EXPECT_TRUE(torch::allclose(fused.keys.narrow(2, p, 1),
                                    general.keys.narrow(2, p, 1), 1e-5, 1e-6));
        EXPECT_TRUE(torch::allclose(fused.values.narrow(2, p, 1),
                                    general.values.narrow(2, p, 1), 1e-5,
                                    1e-6));
        EXPECT_GT(fused.keys.narrow(2, p, 1).abs().max().item<float>(), 0);
      }
    }
  }
}

}  // namespace
}  // namespace knnmem::model
