// knnmem-model generate: continues a prompt byte by byte in one or more
// lanes at once (Generator: one new position per step, the kNN layer asking
// memory one query per head per lane), the XL cache and each lane's memory
// filled as it goes.
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/generator.h"
#include "model/memory_link.h"

namespace knnmem::model {

absl::Status GenerateCommand(CliArgs& args) {
  const std::string checkpoint = args.String("checkpoint", "");
  if (checkpoint.empty()) {
    return absl::InvalidArgumentError("--checkpoint: required");
  }
  const std::string prompt = args.String("prompt", "#include <");
  ASSIGN_OR_RETURN(int64_t bytes, args.Int("bytes", 400));
  ASSIGN_OR_RETURN(int64_t memory_size, args.Int("memory", 8192));
  ASSIGN_OR_RETURN(int64_t lanes, args.Int("lanes", 1));
  ASSIGN_OR_RETURN(double temperature, args.Double("temperature", 0.8));
  ASSIGN_OR_RETURN(int64_t seed, args.Int("seed", 1));
  ASSIGN_OR_RETURN(bool rerun, args.Bool("rerun", false));
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory, MemoryFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
  if (prompt.empty()) return absl::InvalidArgumentError("--prompt: empty");
  if (lanes < 1 || lanes > 4096) {
    return absl::InvalidArgumentError(
        absl::StrCat("--lanes: ", lanes, " is not in [1, 4096]"));
  }
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
      temperature, rerun);
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

}  // namespace knnmem::model
