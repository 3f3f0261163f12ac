// knnmem-model generate: continues a prompt byte by byte, with the XL
// cache and the document's memory filled as it goes.
#include <cstdio>
#include <random>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/memory_link.h"

namespace knnmem::model {
namespace {

// The model over a growing text: full segments are committed to the XL
// state (and, as they leave the cache, to memory); the partial segment is
// re-run on a copy of the state for each new byte.
class Continuation {
 public:
  Continuation(Transformer model, MemoryLink* link)
      : model_(model), link_(link) {}

  // Logits of the byte after the text so far.
  torch::Tensor Next() {
    if (pending_.empty()) return last_;  // a segment was just committed
    XlState scratch = state_;
    return model_->forward(Tokens(), scratch, link_)[0][-1];
  }

  void Add(char byte) {
    pending_ += byte;
    if (static_cast<int>(pending_.size()) < model_->config().segment) return;
    last_ = ForwardAndEvict(model_, Tokens(), state_, link_)[0][-1];
    pending_.clear();
  }

 private:
  torch::Tensor Tokens() const {
    torch::Tensor t =
        torch::empty({1, static_cast<int64_t>(pending_.size())}, torch::kInt64);
    for (size_t i = 0; i < pending_.size(); ++i) {
      t[0][static_cast<int64_t>(i)] = static_cast<unsigned char>(pending_[i]);
    }
    return t;
  }

  Transformer model_;
  MemoryLink* const link_;
  XlState state_;
  std::string pending_;
  torch::Tensor last_;
};

}  // namespace

absl::Status GenerateCommand(CliArgs& args) {
  const std::string checkpoint = args.String("checkpoint", "");
  if (checkpoint.empty()) {
    return absl::InvalidArgumentError("--checkpoint: required");
  }
  const std::string prompt = args.String("prompt", "#include <");
  ASSIGN_OR_RETURN(int64_t bytes, args.Int("bytes", 400));
  ASSIGN_OR_RETURN(int64_t memory_size, args.Int("memory", 8192));
  ASSIGN_OR_RETURN(double temperature, args.Double("temperature", 0.8));
  ASSIGN_OR_RETURN(int64_t seed, args.Int("seed", 1));
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory, MemoryFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
  if (prompt.empty()) return absl::InvalidArgumentError("--prompt: empty");
  ASSIGN_OR_RETURN(ModelConfig config, LoadCheckpointConfig(checkpoint));
  Transformer model(config);
  RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());
  model->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(static_cast<uint64_t>(seed));
  MemoryLink link(
      memory.get(), 1,
      {config.heads, config.head_dim(), config.head_dim(), memory_size}, true);
  link.StartDocument(0, absl::StrCat("generate-", seed));
  Continuation text(model, &link);
  for (char c : prompt) text.Add(c);
  std::fputs(prompt.c_str(), stdout);
  for (int64_t i = 0; i < bytes; ++i) {
    const torch::Tensor logits = text.Next();
    const int64_t next =
        temperature <= 0
            ? logits.argmax().item<int64_t>()
            : torch::multinomial(torch::softmax(logits / temperature, -1), 1)
                  .item<int64_t>();
    const char byte = static_cast<char>(next);
    std::fputc(byte, stdout);
    text.Add(byte);
  }
  std::fputc('\n', stdout);
  return absl::OkStatus();
}

}  // namespace knnmem::model
