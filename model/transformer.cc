#include "model/transformer.h"

#include <algorithm>
#include <cmath>
#include <limits>
#include <string>

#include "model/small_linear.h"
#include "model/step_attention.h"

namespace knnmem::model {
namespace {

namespace F = torch::nn::functional;
using torch::indexing::Slice;

// Relative positions as in T5 (the paper's choice): a learned bias per head
// and distance bucket; distances below kExact have a bucket each, larger
// ones share log-spaced buckets up to kFar.
constexpr int64_t kExact = 16, kBuckets = 32, kFar = 4096;

torch::Tensor Buckets(const torch::Tensor& distance) {
  const torch::Tensor d = distance.clamp_min(1).to(torch::kFloat32);
  const torch::Tensor far =
      kExact + (torch::log(d / kExact) / std::log(double(kFar) / kExact) *
                (kBuckets - kExact))
                   .to(torch::kInt64);
  return torch::where(distance < kExact, distance, far.clamp_max(kBuckets - 1));
}

// The bias table starts as ALiBi (slopes 2^(-8 (h + 1) / H) times the
// bucket's smallest distance): a recency bias that training then reshapes.
torch::Tensor InitialBias(int heads) {
  const torch::Tensor slopes = torch::pow(
      2.0f, -8.0f * torch::arange(1, heads + 1, torch::kFloat32) / heads);
  torch::Tensor distance = torch::arange(kFar);
  torch::Tensor first = torch::full({kBuckets}, -1, torch::kInt64);
  const torch::Tensor bucket = Buckets(distance);
  for (int64_t d = kFar - 1; d >= 0; --d) first[bucket[d]] = d;
  first = first.clamp_min(0).to(torch::kFloat32);
  return -slopes.view({heads, 1}) * first.view({1, kBuckets});
}

// Stacks per-lane tensors; lanes without one get `empty` (zeros).
torch::Tensor StackLanes(const std::vector<torch::Tensor>& lanes,
                         const torch::Tensor& empty) {
  std::vector<torch::Tensor> all;
  all.reserve(lanes.size());
  for (const torch::Tensor& t : lanes) all.push_back(t.defined() ? t : empty);
  return torch::stack(all);
}

}  // namespace

AttentionLayerImpl::AttentionLayerImpl(const ModelConfig& config, bool knn)
    : config_(config), knn_(knn) {
  const int d = config.d_model, h = config.heads;
  qkv_ = register_module("qkv", torch::nn::Linear(d, 3 * d));
  out_ = register_module("out", torch::nn::Linear(d, d));
  position_bias_ = register_parameter("position_bias", InitialBias(h));
  if (knn_) {
    gate_bias_ =
        register_parameter("gate_bias", torch::full({h}, config.gate_init));
    log_scale_ = register_parameter(
        "log_scale", torch::full({h}, std::log(config.scale_init)));
    age_alpha_ = register_parameter("age_alpha", torch::zeros({h}),
                                    /*requires_grad=*/config.age_penalty);
    if (config.memory_scale) {
      memory_log_scale_ = register_parameter(
          "memory_log_scale", torch::full({h}, std::log(config.scale_init)));
    }
  }
  // The farthest local key: the XL cache and the segment, less one.
  edge_bucket_ =
      Buckets(torch::tensor(int64_t{2} * config.segment - 1)).item<int64_t>();
  const torch::Tensor buckets = Buckets(torch::arange(kFar + 1));
  distance_bucket_.assign(buckets.data_ptr<int64_t>(),
                          buckets.data_ptr<int64_t>() + buckets.numel());
  ResetMemoryShare();
}

torch::Tensor AttentionLayerImpl::forward(
    const torch::Tensor& x, const torch::Tensor& cache_k,
    const torch::Tensor& cache_v, const torch::Tensor& cache_valid,
    MemoryReader* memory, torch::Tensor* keys, torch::Tensor* values,
    const SegmentSlot* segment) {
  const int64_t b = x.size(0), t = x.size(1);
  const int64_t h = config_.heads, dh = config_.head_dim();
  torch::Tensor qkv = SmallLinear(qkv_, x).view({b, t, 3, h, dh});
  qkv = qkv.permute({2, 0, 3, 1, 4});  // [3, B, H, T, Dh]
  torch::Tensor q = qkv[0], k = qkv[1], v = qkv[2];
  if (knn_) {
    q = F::normalize(q, F::NormalizeFuncOptions().dim(-1));
    k = F::normalize(k, F::NormalizeFuncOptions().dim(-1));
  }
  *keys = k.detach();
  *values = v.detach();
  const int64_t s = cache_k.defined() ? cache_k.size(2) : 0;
  // Query i sits at s + p + i: after the cache and the segment's prefix.
  const int64_t p = segment != nullptr ? segment->positions : 0;
  // The keys attended to, in parts: the cache, then the segment. A whole
  // segment joins them in one tensor (one GEMM each way, the copy is small
  // against it); a step scores the parts in place, its own key written
  // into the segment's buffer, and copies one position, not the window.
  std::vector<torch::Tensor> ks, vs;
  if (s > 0) ks.push_back(cache_k), vs.push_back(cache_v);
  if (segment != nullptr) {
    segment->keys.narrow(2, p, t).copy_(*keys);
    segment->values.narrow(2, p, t).copy_(*values);
    ks.push_back(segment->keys.narrow(2, 0, p + t));
    vs.push_back(segment->values.narrow(2, 0, p + t));
  } else {
    ks.push_back(k);
    vs.push_back(v);
  }
  if (segment == nullptr && ks.size() > 1) {
    ks = {torch::cat(ks, 2)};
    vs = {torch::cat(vs, 2)};
  }
  torch::Tensor out, lse;
  if (segment != nullptr && t == 1 && !torch::GradMode::is_enabled() &&
      StepAttentionAvailable()) {
    const torch::Tensor factor =
        knn_ ? scale() : torch::full({1}, 1.0f / std::sqrt(float(dh)));
    StepAttentionResult r = StepAttention(
        q, ks, vs, s,
        cache_valid.defined() ? cache_valid : torch::ones({b}, torch::kBool),
        factor, position_bias_, distance_bucket_);
    out = std::move(r.out);
    lse = std::move(r.lse);
  } else {
    out = LocalAttention(q, ks, vs, s, cache_valid, &lse);
  }
  if (knn_ && memory != nullptr) out = MixMemory(q, out, lse, *memory);
  return SmallLinear(out_, out.transpose(1, 2).reshape({b, t, h * dh}));
}

torch::Tensor AttentionLayerImpl::LocalAttention(
    const torch::Tensor& q, const std::vector<torch::Tensor>& ks,
    const std::vector<torch::Tensor>& vs, int64_t s,
    const torch::Tensor& cache_valid, torch::Tensor* lse_out) const {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), dh = q.size(3);
  std::vector<torch::Tensor> part_scores;
  int64_t n = 0;
  for (const torch::Tensor& part : ks) {
    part_scores.push_back(torch::matmul(q, part.transpose(-2, -1)));
    n += part.size(2);
  }
  const torch::Tensor factor =
      knn_ ? scale().view({1, h, 1, 1})
           : torch::full({1, 1, 1, 1}, 1.0f / std::sqrt(float(dh)));
  torch::Tensor scores =
      (part_scores.size() > 1 ? torch::cat(part_scores, -1) : part_scores[0]) *
      factor;
  // Key j at j; the queries are the last t positions; causal; a lane's
  // cache counts only when it is of the same document.
  const torch::Tensor qpos = torch::arange(n - t, n).view({t, 1});
  const torch::Tensor kpos = torch::arange(n).view({1, n});
  const torch::Tensor bucket = Buckets((qpos - kpos).clamp_min(0));
  const torch::Tensor bias =
      position_bias_.index({torch::indexing::Slice(), bucket})
          .view({1, h, t, n});
  torch::Tensor masked = (kpos > qpos).view({1, 1, t, n});
  if (s > 0) {
    const torch::Tensor stale =
        torch::logical_and((kpos < s).view({1, 1, 1, n}),
                           torch::logical_not(cache_valid).view({b, 1, 1, 1}));
    masked = torch::logical_or(masked, stale);
  }
  scores = torch::where(masked, torch::full({}, kMasked), scores + bias);
  const torch::Tensor lse = torch::logsumexp(scores, -1);  // [B, H, T]
  const torch::Tensor weights = torch::exp(scores - lse.unsqueeze(-1));
  torch::Tensor out;
  int64_t first = 0;
  for (const torch::Tensor& part : vs) {
    const int64_t count = part.size(2);
    const torch::Tensor sum =
        torch::matmul(weights.narrow(-1, first, count), part);
    out = out.defined() ? out + sum : sum;
    first += count;
  }
  *lse_out = lse;
  return out;
}

torch::Tensor AttentionLayerImpl::MixMemory(const torch::Tensor& q,
                                            const torch::Tensor& local,
                                            const torch::Tensor& local_lse,
                                            MemoryReader& memory) {
  const int64_t b = q.size(0), h = q.size(1), t = q.size(2), dh = q.size(3);
  const int k = config_.top_k;
  const torch::Tensor queries = q.detach().permute({0, 2, 1, 3}).contiguous();
  const torch::Tensor scale_h = memory_scale();
  torch::Tensor mem_out, mem_lse, has;
  if (memory.use_attend()) {
    AttendOptions options;
    const torch::Tensor sc = scale_h.detach().contiguous();
    options.scale.assign(sc.data_ptr<float>(), sc.data_ptr<float>() + h);
    if (config_.age_penalty) {
      const torch::Tensor a = age_alpha_.detach().contiguous();
      options.age_alpha.assign(a.data_ptr<float>(), a.data_ptr<float>() + h);
      options.age_tau = config_.age_tau;
    }
    std::vector<torch::Tensor> outs(b), lses(b);
    std::vector<std::optional<Attention>> got =
        memory.Attend(queries, k, options);
    for (int64_t i = 0; i < b; ++i) {
      if (!got[i]) continue;
      outs[i] = got[i]->output;
      lses[i] = got[i]->lse;
    }
    mem_out = StackLanes(outs, torch::zeros({t, h, dh})).permute({0, 2, 1, 3});
    mem_lse = StackLanes(lses, torch::full({t, h}, kMasked)).permute({0, 2, 1});
    has = torch::isfinite(mem_lse) & (mem_lse > kMasked);
    mem_lse = torch::where(has, mem_lse, torch::full({}, kMasked));
  } else {
    std::vector<torch::Tensor> ks(b), vs(b), ps(b);
    std::vector<std::optional<Neighbours>> got = memory.Search(queries, k);
    std::vector<int64_t> newest(b, 0);
    for (int64_t i = 0; i < b; ++i) {
      newest[i] = memory.newest(static_cast<int>(i));
      if (!got[i]) continue;
      ks[i] = got[i]->keys;
      vs[i] = got[i]->values;
      ps[i] = got[i]->positions;
    }
    // [B, T, H, K, Dh] -> [B, H, T, K, Dh]
    const torch::Tensor mk =
        StackLanes(ks, torch::zeros({t, h, k, dh})).permute({0, 2, 1, 3, 4});
    const torch::Tensor mv =
        StackLanes(vs, torch::zeros({t, h, k, dh})).permute({0, 2, 1, 3, 4});
    const torch::Tensor pos =
        StackLanes(ps, torch::full({t, h, k}, int64_t{-1}, torch::kInt64))
            .permute({0, 2, 1, 3});
    const torch::Tensor valid = pos >= 0;
    torch::Tensor score = (q.unsqueeze(3) * mk).sum(-1);  // [B, H, T, K]
    if (config_.age_penalty) {
      const torch::Tensor top =
          torch::tensor(newest, torch::kInt64).view({b, 1, 1, 1});
      const torch::Tensor age = (top - pos).clamp_min(0).to(torch::kFloat32);
      score = score - age_alpha_.view({1, h, 1, 1}) *
                          torch::log1p(age / config_.age_tau);
    }
    score = torch::where(valid, score * scale_h.view({1, h, 1, 1}),
                         torch::full({}, kMasked));
    mem_lse = torch::logsumexp(score, -1);
    has = valid.any(-1);
    mem_out =
        (torch::exp(score - mem_lse.unsqueeze(-1)).unsqueeze(-1) * mv).sum(3);
  }
  torch::Tensor weight;
  if (config_.mix == MemoryMix::kGate) {
    weight = gate().view({1, h, 1}) * has.to(torch::kFloat32);
  } else {
    // The retrieved pairs join the local softmax; gate_bias_ is then a
    // per-head log-prior of memory against the local window, plus, with
    // edge_bias, the position bias of the window's farthest key.
    const torch::Tensor prior = gate_bias_ + memory_position_bias();
    weight = torch::where(
        has, torch::sigmoid(mem_lse + prior.view({1, h, 1}) - local_lse),
        torch::zeros({}));
  }
  {
    torch::NoGradGuard no_grad;
    const torch::Tensor counted = has.to(torch::kFloat32);
    share_sum_ += (weight.detach() * counted).sum(std::vector<int64_t>{0, 2});
    share_count_ += counted.sum(std::vector<int64_t>{0, 2});
  }
  return local + weight.unsqueeze(-1) * (mem_out - local);
}

torch::Tensor AttentionLayerImpl::memory_position_bias() const {
  if (!knn_ || !config_.edge_bias || config_.mix != MemoryMix::kJoint) {
    return torch::zeros({config_.heads});
  }
  return position_bias_.select(1, edge_bucket_);
}

torch::Tensor AttentionLayerImpl::memory_share() const {
  return share_sum_ / share_count_;
}

void AttentionLayerImpl::ResetMemoryShare() {
  share_sum_ = torch::zeros({config_.heads});
  share_count_ = torch::zeros({config_.heads});
}

BlockImpl::BlockImpl(const ModelConfig& config, bool knn) {
  const int d = config.d_model;
  ln1_ = register_module(
      "ln1", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  ln2_ = register_module(
      "ln2", torch::nn::LayerNorm(torch::nn::LayerNormOptions({d})));
  attention_ = register_module("attention", AttentionLayer(config, knn));
  up_ = register_module("up", torch::nn::Linear(d, config.ffn));
  down_ = register_module("down", torch::nn::Linear(config.ffn, d));
}

torch::Tensor BlockImpl::forward(const torch::Tensor& x,
                                 const torch::Tensor& cache_k,
                                 const torch::Tensor& cache_v,
                                 const torch::Tensor& cache_valid,
                                 MemoryReader* memory, torch::Tensor* keys,
                                 torch::Tensor* values,
                                 const SegmentSlot* segment) {
  torch::Tensor y =
      x + attention_->forward(ln1_->forward(x), cache_k, cache_v, cache_valid,
                              memory, keys, values, segment);
  return y + SmallLinear(down_, F::gelu(SmallLinear(up_, ln2_->forward(y))));
}

TransformerImpl::TransformerImpl(const ModelConfig& config) : config_(config) {
  embed_ = register_module("embed", torch::nn::Embedding(256, config.d_model));
  for (int l = 0; l < config.layers; ++l) {
    blocks_.push_back(register_module("block" + std::to_string(l),
                                      Block(config, l == config.knn_index())));
  }
  ln_f_ = register_module(
      "ln_f",
      torch::nn::LayerNorm(torch::nn::LayerNormOptions({config.d_model})));
  head_ = register_module("head", torch::nn::Linear(config.d_model, 256));
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens,
                                       XlState& state, MemoryReader* memory) {
  const int64_t b = tokens.size(0);
  const bool cached = !state.keys.empty();
  if (!state.valid.defined()) state.valid = torch::zeros({b}, torch::kBool);
  torch::Tensor x = embed_->forward(tokens);
  std::vector<torch::Tensor> keys(blocks_.size()), values(blocks_.size());
  for (size_t l = 0; l < blocks_.size(); ++l) {
    x = blocks_[l]->forward(x, cached ? state.keys[l] : torch::Tensor(),
                            cached ? state.values[l] : torch::Tensor(),
                            state.valid, memory, &keys[l], &values[l]);
  }
  state.keys = std::move(keys);
  state.values = std::move(values);
  state.valid = torch::ones({b}, torch::kBool);
  return head_->forward(ln_f_->forward(x));
}

torch::Tensor TransformerImpl::forward(const torch::Tensor& tokens,
                                       const XlState& state,
                                       MemoryReader* memory,
                                       SegmentCache* partial) {
  const int64_t b = tokens.size(0), t = tokens.size(1);
  const bool cached = !state.keys.empty();
  const int64_t p = partial->positions();
  const torch::Tensor valid =
      state.valid.defined() ? state.valid : torch::zeros({b}, torch::kBool);
  // Buffers of a whole segment (or more, when the tokens overrun it).
  const int64_t capacity = std::max<int64_t>(config_.segment, p + t);
  if (partial->key_buffers.empty() || partial->key_buffers[0].size(2) < p + t) {
    const int64_t h = config_.heads, dh = config_.head_dim();
    std::vector<torch::Tensor> kb(blocks_.size()), vb(blocks_.size());
    for (size_t l = 0; l < blocks_.size(); ++l) {
      kb[l] = torch::empty({b, h, capacity, dh});
      vb[l] = torch::empty({b, h, capacity, dh});
      if (p > 0) {
        kb[l].narrow(2, 0, p).copy_(partial->keys[l]);
        vb[l].narrow(2, 0, p).copy_(partial->values[l]);
      }
    }
    partial->key_buffers = std::move(kb);
    partial->value_buffers = std::move(vb);
  }
  torch::Tensor x = embed_->forward(tokens);
  partial->keys.resize(blocks_.size());
  partial->values.resize(blocks_.size());
  for (size_t l = 0; l < blocks_.size(); ++l) {
    const SegmentSlot slot{partial->key_buffers[l], partial->value_buffers[l],
                           p};
    torch::Tensor keys, values;
    x = blocks_[l]->forward(x, cached ? state.keys[l] : torch::Tensor(),
                            cached ? state.values[l] : torch::Tensor(), valid,
                            memory, &keys, &values, &slot);
  }
  for (size_t l = 0; l < blocks_.size(); ++l) {
    partial->keys[l] = partial->key_buffers[l].narrow(2, 0, p + t);
    partial->values[l] = partial->value_buffers[l].narrow(2, 0, p + t);
  }
  return SmallLinear(head_, ln_f_->forward(x));
}

}  // namespace knnmem::model
