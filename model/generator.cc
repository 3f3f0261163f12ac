#include "model/generator.h"

#include <ATen/Parallel.h>
#include <cblas.h>

#include <chrono>

#include "model/document_reader.h"

namespace knnmem::model {
namespace {

// Generation before Generator: the model over a growing text, full segments
// committed to the XL state (and, as they leave the cache, to memory), the
// partial segment re-run on a copy of the state for every new byte.
class ReRunner {
 public:
  ReRunner(Transformer model, MemoryLink* link, int lanes)
      : model_(std::move(model)), link_(link), lanes_(lanes) {}

  torch::Tensor Step(const torch::Tensor& bytes) {
    pending_.push_back(bytes.view({lanes_, 1}));
    torch::Tensor tokens = torch::cat(pending_, 1);
    if (static_cast<int>(pending_.size()) == model_->config().segment) {
      pending_.clear();
      return ForwardAndEvict(model_, tokens, state_, link_).select(1, -1);
    }
    XlState scratch = state_;
    return model_->forward(tokens, scratch, link_).select(1, -1);
  }

 private:
  Transformer model_;
  MemoryLink* const link_;
  const int lanes_;
  XlState state_;
  std::vector<torch::Tensor> pending_;
};

}  // namespace

Generator::Generator(Transformer model, MemoryLink* link, int lanes)
    : model_(std::move(model)), link_(link), lanes_(lanes) {}

torch::Tensor Generator::Step(const torch::Tensor& bytes) {
  const torch::Tensor logits =
      model_->forward(bytes.view({lanes_, 1}), state_, link_, &partial_)
          .select(1, 0);
  ++positions_;
  if (partial_.positions() == model_->config().segment) {
    // The segment is whole: it becomes the XL cache, and the cache it
    // replaces leaves the window for memory (ForwardAndEvict's order).
    const int knn = model_->config().knn_index();
    if (link_ != nullptr && !state_.keys.empty()) {
      for (int i = 0; i < lanes_; ++i) {
        if (state_.valid[i].item<bool>()) {
          link_->Push(i, state_.keys[knn][i], state_.values[knn][i]);
        }
      }
    }
    state_.keys = std::move(partial_.keys);
    state_.values = std::move(partial_.values);
    state_.valid = torch::ones({lanes_}, torch::kBool);
    partial_ = SegmentCache();
  }
  return logits;
}

Generated GenerateBytes(Transformer model, MemoryLink* link,
                        const std::vector<std::string>& prompts, int64_t bytes,
                        double temperature, bool rerun) {
  const int lanes = static_cast<int>(prompts.size());
  Generated out;
  out.texts = prompts;
  Generator incremental(model, link, lanes);
  ReRunner rerunning(model, link, lanes);
  auto step = [&](const torch::Tensor& b) {
    ++out.bytes;
    return rerun ? rerunning.Step(b) : incremental.Step(b);
  };
  // One position per step: every operator works on a few hundred floats,
  // less than handing work to another thread costs, and with a second
  // intra-op thread a step waits at each operator for a thread another
  // process may hold (measured beside a build on 2 cores: 1,023 bytes/s on
  // one thread, 18 on two). The re-running baseline keeps its threads.
  // OpenBLAS has threads of its own: on two, a GEMM of a few rows spent a
  // third of the step in sched_yield, handing its packing to the other.
  const int threads = at::get_num_threads();
  const int blas_threads = openblas_get_num_threads();
  if (!rerun) {
    at::set_num_threads(1);
    openblas_set_num_threads(1);
  }
  const double memory_before = link != nullptr ? link->attend_seconds() : 0;
  const auto start = std::chrono::steady_clock::now();
  torch::Tensor logits;
  for (size_t i = 0; i < prompts[0].size(); ++i) {
    torch::Tensor b = torch::empty({lanes}, torch::kInt64);
    for (int l = 0; l < lanes; ++l) {
      b[l] = static_cast<int64_t>(
          static_cast<unsigned char>(prompts[static_cast<size_t>(l)][i]));
    }
    logits = step(b);
  }
  for (int64_t i = 0; i < bytes; ++i) {
    const torch::Tensor next =
        temperature <= 0
            ? logits.argmax(-1)
            : torch::multinomial(torch::softmax(logits / temperature, -1), 1)
                  .view({lanes});
    for (int l = 0; l < lanes; ++l) {
      out.texts[static_cast<size_t>(l)] +=
          static_cast<char>(next[l].item<int64_t>());
    }
    logits = step(next);
  }
  out.seconds =
      std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
          .count();
  at::set_num_threads(threads);
  openblas_set_num_threads(blas_threads);
  out.memory_seconds =
      link != nullptr ? link->attend_seconds() - memory_before : 0;
  out.bytes *= lanes;
  return out;
}

}  // namespace knnmem::model
