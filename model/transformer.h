// The Memorizing Transformer (Wu et al., ICLR 2022), byte level: a decoder
// of pre-LN blocks with T5-style learned relative position biases (started
// as ALiBi) and a Transformer-XL cache of the
// previous segment in every layer; one layer (at 2/3 depth by default) also
// attends to the top-k of the document's memory, with L2-normalised queries
// and keys, a learned per-head scale, and a per-head gate (or a joint
// softmax) mixing memory and local attention.
#ifndef KNNMEM_MODEL_TRANSFORMER_H_
#define KNNMEM_MODEL_TRANSFORMER_H_

#include <torch/torch.h>

#include <vector>

#include "model/config.h"
#include "model/memory_reader.h"

namespace knnmem::model {

// What carries from one segment to the next, per layer: its keys and values
// ([lanes, heads, segment, head_dim], detached), and which lanes' caches
// belong to the document the lane reads now.
struct XlState {
  std::vector<torch::Tensor> keys, values;  // empty before the first segment
  torch::Tensor valid;                      // bool [lanes]
};

// The current segment's keys and values so far, per layer ([lanes, heads,
// positions, head_dim]): what incremental decoding keeps beside the XL
// cache. Empty at a segment's start. They are views of buffers of a whole
// segment, which each step's keys and values are written into in place (a
// step copies one position, not the segment so far).
struct SegmentCache {
  std::vector<torch::Tensor> keys, values;
  std::vector<torch::Tensor> key_buffers, value_buffers;  // [.., capacity, ..]
  int64_t positions() const { return keys.empty() ? 0 : keys[0].size(2); }
};

// One layer's part of a SegmentCache, as its attention sees it: buffers
// [B, H, capacity, Dh] of which the first `positions` are filled.
struct SegmentSlot {
  torch::Tensor keys, values;
  int64_t positions = 0;
};

// A block's multi-head attention over its segment and the XL cache; in the
// kNN layer (`knn`), mixed with the memory's answer. (Memory's own answer to
// Attend is the struct Attention, memory.h.)
class AttentionLayerImpl : public torch::nn::Module {
 public:
  AttentionLayerImpl(const ModelConfig& config, bool knn);

  // x [B, T, D]; cache_* [B, H, S, Dh] or undefined; cache_valid bool [B].
  // Sets *keys and *values to this segment's [B, H, T, Dh] (the kNN layer's
  // keys normalised), detached. `segment` (or null): the segment's earlier
  // positions, which x continues (incremental decoding); this call's keys
  // and values are written after them (the buffers must have room).
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cache_k,
                        const torch::Tensor& cache_v,
                        const torch::Tensor& cache_valid, MemoryReader* memory,
                        torch::Tensor* keys, torch::Tensor* values,
                        const SegmentSlot* segment = nullptr);

  // kNN layer: the per-head gate sigmoid(b_h), scale and age penalty alpha.
  torch::Tensor gate() const { return torch::sigmoid(gate_bias_); }
  torch::Tensor scale() const { return torch::exp(log_scale_); }
  // Memory's scores' scale: its own with memory_scale, else scale().
  torch::Tensor memory_scale() const {
    return torch::exp(memory_log_scale_.defined() ? memory_log_scale_
                                                  : log_scale_);
  }
  torch::Tensor age_alpha() const { return age_alpha_; }
  // The bias memory's pairs take from their position: with edge_bias, that
  // of the window's farthest key; else zeros. [H]
  torch::Tensor memory_position_bias() const;

  // How much the kNN layer read from memory: the mix weight of memory per
  // head, averaged over the queries that had memory since the last reset
  // (NaN for a head without any). [H]
  torch::Tensor memory_share() const;
  void ResetMemoryShare();

 private:
  // Attention of q [B, H, T, Dh] (the last T positions) over the keys and
  // values in parts ([B, H, n_i, Dh]; the first s of them the XL cache):
  // [B, H, T, Dh], and the log-sum-exp of the scores in *lse [B, H, T].
  torch::Tensor LocalAttention(const torch::Tensor& q,
                               const std::vector<torch::Tensor>& ks,
                               const std::vector<torch::Tensor>& vs, int64_t s,
                               const torch::Tensor& cache_valid,
                               torch::Tensor* lse) const;
  // out_local mixed with the memory's answer, [B, H, T, Dh].
  torch::Tensor MixMemory(const torch::Tensor& q, const torch::Tensor& local,
                          const torch::Tensor& local_lse, MemoryReader& memory);

  const ModelConfig config_;
  const bool knn_;
  torch::nn::Linear qkv_{nullptr}, out_{nullptr};
  torch::Tensor position_bias_;  // [H, buckets], T5-style relative
  torch::Tensor gate_bias_, log_scale_, age_alpha_;  // kNN layer only
  torch::Tensor memory_log_scale_;         // kNN layer with memory_scale only
  torch::Tensor share_sum_, share_count_;  // [H], no gradient
  int64_t edge_bucket_ = 0;  // the bucket of the window's farthest key
  std::vector<int64_t> distance_bucket_;  // the bucket of distances 0..kFar
};
TORCH_MODULE(AttentionLayer);

class BlockImpl : public torch::nn::Module {
 public:
  BlockImpl(const ModelConfig& config, bool knn);
  torch::Tensor forward(const torch::Tensor& x, const torch::Tensor& cache_k,
                        const torch::Tensor& cache_v,
                        const torch::Tensor& cache_valid, MemoryReader* memory,
                        torch::Tensor* keys, torch::Tensor* values,
                        const SegmentSlot* segment = nullptr);
  AttentionLayer& attention() { return attention_; }

 private:
  torch::nn::LayerNorm ln1_{nullptr}, ln2_{nullptr};
  AttentionLayer attention_{nullptr};
  torch::nn::Linear up_{nullptr}, down_{nullptr};
};
TORCH_MODULE(Block);

class TransformerImpl : public torch::nn::Module {
 public:
  explicit TransformerImpl(const ModelConfig& config);

  // tokens int64 [B, T] (bytes). Reads and then replaces state's caches
  // (lanes whose state.valid is false ignore theirs). `memory` may be null
  // (local attention only). Returns logits [B, T, 256].
  torch::Tensor forward(const torch::Tensor& tokens, XlState& state,
                        MemoryReader* memory);
  // Incremental decoding: tokens [B, T] continue the segment in *partial
  // (their positions follow its), reading the XL state without replacing
  // it; their keys and values are appended to *partial. Logits [B, T, 256]
  // equal those of running the partial segment and tokens at once.
  torch::Tensor forward(const torch::Tensor& tokens, const XlState& state,
                        MemoryReader* memory, SegmentCache* partial);

  const ModelConfig& config() const { return config_; }
  AttentionLayer& knn_attention() {
    return blocks_[config_.knn_index()]->attention();
  }

 private:
  const ModelConfig config_;
  torch::nn::Embedding embed_{nullptr};
  std::vector<Block> blocks_;
  torch::nn::LayerNorm ln_f_{nullptr};
  torch::nn::Linear head_{nullptr};
};
TORCH_MODULE(Transformer);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_TRANSFORMER_H_
