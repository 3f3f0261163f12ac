// StepAttention: a layer's local attention for one new position per lane
// (a generation step), fused into one pass per (lane, head).
//
// At a step every tensor of the attention is a few hundred floats, and the
// general path (model/transformer.cc: scores by GEMM, position biases,
// masks, softmax, the values' GEMM) spends its time in libtorch's per-
// operator costs, about fifty operators per layer. Here the scores come
// from the few-query kernel (server/search/few_query_scan.h, one query
// against the rows of the XL cache and of the segment so far, read in
// place), and the bias, the stale-cache mask, the softmax and the sum of
// the values are loops over them.
#ifndef KNNMEM_MODEL_STEP_ATTENTION_H_
#define KNNMEM_MODEL_STEP_ATTENTION_H_

#include <torch/torch.h>

#include <cstdint>
#include <vector>

namespace knnmem::model {

// Stand-in for -inf in masked scores: finite, so that a row with nothing to
// attend to has finite gradients (exp(-inf - -inf) would be NaN). The
// general path (transformer.cc) and StepAttention mask with it alike.
inline constexpr float kMasked = -1e30f;

// True when this CPU runs the kernels (AVX2 with FMA and F16C, or AVX-512).
bool StepAttentionAvailable();

struct StepAttentionResult {
  torch::Tensor out;  // [B, H, 1, Dh]
  torch::Tensor lse;  // [B, H, 1]
};

// The attention of q [B, H, 1, Dh] over the keys and values of `parts`
// (each [B, H, n_i, Dh]; the XL cache first when cache_rows > 0, then the
// segment whose last row is the query's own position): scores q . k times
// factor[h] ([H] float32), plus position_bias[h][bucket(distance)]
// ([H, buckets], the bucket of each distance 0.. in distance_bucket), the
// first cache_rows keys masked for lanes whose cache_valid (bool [B]) is
// false. Equal to the general path up to float32 rounding (tested).
// Without gradients only.
StepAttentionResult StepAttention(const torch::Tensor& q,
                                  const std::vector<torch::Tensor>& keys,
                                  const std::vector<torch::Tensor>& values,
                                  int64_t cache_rows,
                                  const torch::Tensor& cache_valid,
                                  const torch::Tensor& factor,
                                  const torch::Tensor& position_bias,
                                  const std::vector<int64_t>& distance_bucket);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_STEP_ATTENTION_H_
