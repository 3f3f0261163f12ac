#include "model/document_reader.h"

#include <utility>

#include "absl/strings/str_cat.h"

namespace knnmem::model {
namespace {

MemoryShape ShapeOf(const ModelConfig& c, int64_t capacity) {
  return {c.heads, c.head_dim(), c.head_dim(), capacity};
}

}  // namespace

torch::Tensor ForwardAndEvict(Transformer& model, const torch::Tensor& tokens,
                              XlState& state, MemoryLink* link) {
  const int knn = model->config().knn_index();
  torch::Tensor leaving_k, leaving_v, leaving_valid;
  if (!state.keys.empty()) {
    leaving_k = state.keys[knn];
    leaving_v = state.values[knn];
    leaving_valid = state.valid.clone();
  }
  torch::Tensor logits = model->forward(tokens, state, link);
  if (link != nullptr && leaving_k.defined()) {
    for (int64_t i = 0; i < leaving_k.size(0); ++i) {
      if (leaving_valid[i].item<bool>()) {
        link->Push(static_cast<int>(i), leaving_k[i], leaving_v[i]);
      }
    }
  }
  return logits;
}

DocumentReader::DocumentReader(Transformer model, Memory* memory, int lanes,
                               int64_t memory_capacity, bool use_attend,
                               std::string stream_prefix)
    : model_(std::move(model)),
      lanes_(lanes),
      has_memory_(memory != nullptr && memory_capacity > 0),
      stream_prefix_(std::move(stream_prefix)),
      link_(memory, lanes, ShapeOf(model_->config(), memory_capacity),
            use_attend) {}

StepResult DocumentReader::Step(
    const std::vector<std::optional<Segment>>& batch) {
  const int64_t t = model_->config().segment;
  torch::Tensor tokens = torch::zeros({lanes_, t + 1}, torch::kInt64);
  torch::Tensor active = torch::zeros({lanes_}, torch::kBool);
  for (int i = 0; i < lanes_; ++i) {
    const std::optional<Segment>& s = batch[static_cast<size_t>(i)];
    if (!s) continue;
    if (s->bytes.size() != static_cast<size_t>(t + 1)) {
      throw std::invalid_argument(absl::StrCat("segment: ", s->bytes.size(),
                                               " bytes, expected ", t + 1));
    }
    auto* row = tokens[i].data_ptr<int64_t>();
    for (int64_t j = 0; j <= t; ++j) {
      row[j] = static_cast<unsigned char>(s->bytes[static_cast<size_t>(j)]);
    }
    active[i] = true;
    if (s->first) {
      if (state_.valid.defined()) state_.valid[i] = false;
      link_.BeginStream(
          i, absl::StrCat(stream_prefix_, "-", i, "-", documents_++));
    }
  }
  // Lanes that idle or start a document do not use their old cache.
  if (state_.valid.defined()) state_.valid = state_.valid & active;
  StepResult r;
  r.logits = ForwardAndEvict(model_, tokens.narrow(1, 0, t), state_,
                             has_memory_ ? &link_ : nullptr);
  state_.valid = active.clone();
  const torch::Tensor targets = tokens.narrow(1, 1, t);
  r.per_byte = torch::nn::functional::cross_entropy(
                   r.logits.reshape({-1, 256}), targets.reshape({-1}),
                   torch::nn::functional::CrossEntropyFuncOptions().reduction(
                       torch::kNone))
                   .view({lanes_, t});
  const torch::Tensor mask = active.to(torch::kFloat32).view({lanes_, 1});
  r.bytes = active.sum().item<int64_t>() * t;
  r.loss = (r.per_byte * mask).sum() / std::max<int64_t>(1, r.bytes);
  for (int i = 0; i < lanes_; ++i) {
    const std::optional<Segment>& s = batch[static_cast<size_t>(i)];
    if (s && s->last) {
      link_.EndStream(i);
      state_.valid[i] = false;
    }
  }
  return r;
}

}  // namespace knnmem::model
