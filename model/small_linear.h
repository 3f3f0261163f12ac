// SmallLinear: a linear layer applied to a few rows, as one streaming read
// of its weights.
//
// A generation step sends one position per lane through every linear layer:
// a GEMM of a few rows, in which OpenBLAS spends most of its time packing
// the weight matrix (measured: the packing was 18-23% of the step, the
// multiplication 8%). The server's few-query kernel (server/search/
// few_query_scan.h) reads each weight row once and multiplies it with every
// input row while it is in registers, the same operation with the weights
// as keys and the inputs as queries.
#ifndef KNNMEM_MODEL_SMALL_LINEAR_H_
#define KNNMEM_MODEL_SMALL_LINEAR_H_

#include <torch/torch.h>

namespace knnmem::model {

// layer(x) for x [..., in_features]: by the few-query kernel when x has at
// most kMaxFewQueries rows, no gradient is recorded and this CPU runs the
// kernel; else layer->forward(x). Equal to layer->forward(x) up to float32
// rounding (the sums are taken in another order).
torch::Tensor SmallLinear(torch::nn::Linear& layer, const torch::Tensor& x);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_SMALL_LINEAR_H_
