// ModelConfig: the shape of the Memorizing Transformer and of its kNN
// layer, saved beside every checkpoint as "key=value" lines.
#ifndef KNNMEM_MODEL_CONFIG_H_
#define KNNMEM_MODEL_CONFIG_H_

#include <string>

#include "absl/status/statusor.h"

namespace knnmem::model {

enum class MemoryMix {
  kGate,   // out = g * memory + (1 - g) * local, g = sigmoid(b_h)
  kJoint,  // the retrieved pairs join the local softmax, memory's share
           // weighted by exp(b_h): a learned per-head log-prior
};

struct ModelConfig {
  int layers = 4;
  int d_model = 256;
  int heads = 4;      // head_dim = d_model / heads
  int ffn = 1024;     // hidden width of the feed-forward blocks
  int segment = 256;  // bytes per segment; the XL cache holds one segment
  // The kNN-augmented layer (0-based); -1 puts it at 2/3 depth.
  int knn_layer = -1;
  int top_k = 32;
  MemoryMix mix = MemoryMix::kGate;
  // b_h at the start. Gate: sigmoid(-2) = 0.12, mostly local, so that
  // untrained retrieval does not drown the local signal. Joint: memory's
  // softmax mass is scaled by exp(b_h).
  float gate_init = -2.0f;
  // The learned per-head scale of the normalised q.k at the start.
  float scale_init = 10.0f;
  // A learned per-head staleness penalty alpha_h * log1p(age / age_tau)
  // on memory scores (alpha starts at 0).
  bool age_penalty = false;
  float age_tau = 1024.0f;
  // Joint mix: memory's pairs also take the position bias of the farthest
  // key the local window holds (2 * segment - 1 back), as if they sat just
  // beyond it. A recency head then leaves memory alone as it leaves far
  // tokens alone, instead of every head starting with memory at bias 0.
  bool edge_bias = false;
  // The kNN layer scales memory's scores by a learned per-head scale of
  // their own (started at scale_init) instead of the local one: trained
  // from scratch with one shared scale, early memory's noise pulled it down
  // to 5-6 (the XL-only model's: 7-17), blurring local attention too.
  bool memory_scale = false;

  int head_dim() const { return d_model / heads; }
  int knn_index() const { return knn_layer >= 0 ? knn_layer : 2 * layers / 3; }
};

// INVALID_ARGUMENT naming the field when the shape cannot work.
absl::Status ValidateConfig(const ModelConfig& config);

std::string FormatConfig(const ModelConfig& config);
// Parses FormatConfig's output; unknown keys and bad values are
// INVALID_ARGUMENT naming the line.
absl::StatusOr<ModelConfig> ParseConfig(const std::string& text);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_CONFIG_H_
