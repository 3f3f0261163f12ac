// knnmem-model generate: continues a prompt byte by byte in one or more
// lanes at once (Generator: one new position per step, the kNN layer asking
// memory one query per head per lane), the XL cache and each lane's memory
// filled as it goes.
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/generator.h"
#include "model/memory_link.h"

namespace knnmem::model {

namespace {

class GenerateCommand final : public Command {
 public:
  void AddFlags(FlagSet& f) override {
    f.String("checkpoint", &checkpoint_, "DIR", "the model").Required();
    f.String("prompt", &prompt_, "TEXT", "what the text starts with")
        .NonEmpty();
    f.Int("bytes", &bytes_, "N", "bytes generated after the prompt").AtLeast(0);
    f.Int("memory", &memory_size_, "N", "memory entries per head").AtLeast(0);
    f.Int("lanes", &lanes_, "N",
          "lanes generating from the same prompt at once")
        .Range(1, 4096);
    f.Double("temperature", &temperature_, "X", "sampling temperature");
    f.Int("seed", &seed_, "S", "seed of the sampling");
    f.Bool("rerun", &rerun_,
           "re-run the partial segment for every byte, as before "
           "incremental decoding");
    AddMemoryFlags(f, &memory_flags_);
  }

  absl::Status Run(const FlagSet& flags) override;

 private:
  std::string checkpoint_;
  std::string prompt_ = "#include <";
  int64_t bytes_ = 400;
  int64_t memory_size_ = 8192;
  int64_t lanes_ = 1;
  double temperature_ = 0.8;
  int64_t seed_ = 1;
  bool rerun_ = false;
  MemoryFlags memory_flags_;
};

absl::Status GenerateCommand::Run(const FlagSet& flags) {
  const std::string& checkpoint = checkpoint_;
  const std::string& prompt = prompt_;
  const int64_t bytes = bytes_, memory_size = memory_size_, lanes = lanes_,
                seed = seed_;
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory,
                   MemoryFromFlags(memory_flags_));
  ASSIGN_OR_RETURN(ModelConfig config, LoadCheckpointConfig(checkpoint));
  Transformer model(config);
  RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());
  model->eval();
  torch::NoGradGuard no_grad;
  torch::manual_seed(static_cast<uint64_t>(seed));
  MemoryLink link(
      memory.get(), static_cast<int>(lanes),
      {config.heads, config.head_dim(), config.head_dim(), memory_size}, true);
  for (int l = 0; l < lanes; ++l) {
    link.BeginStream(l, absl::StrCat("generate-", seed, "-", l));
  }
  const Generated out = GenerateBytes(
      model, &link,
      std::vector<std::string>(static_cast<size_t>(lanes), prompt), bytes,
      temperature_, rerun_);
  for (int l = 0; l < lanes; ++l) {
    if (lanes > 1) std::printf("--- lane %d\n", l);
    std::printf("%s\n", out.texts[static_cast<size_t>(l)].c_str());
  }
  std::fflush(stdout);  // the text first, then the numbers
  std::fprintf(stderr,
               "knnmem-model generate: %lld lanes x %lld bytes in %.2f s "
               "(%.0f bytes/s over all lanes, prompt included; %.0f%% of it "
               "waiting on memory)\n",
               static_cast<long long>(lanes),
               static_cast<long long>(prompt.size() + bytes), out.seconds,
               out.bytes / out.seconds,
               out.seconds > 0 ? 100 * out.memory_seconds / out.seconds : 0.0);
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Command> NewGenerateCommand() {
  return std::make_unique<GenerateCommand>();
}

}  // namespace knnmem::model
