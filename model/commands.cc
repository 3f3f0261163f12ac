#include "model/commands.h"

#include <chrono>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/status_macros.h"
#include "model/in_process_memory.h"
#include "model/remote_memory.h"

namespace knnmem::model {

absl::StatusOr<ModelConfig> ConfigFromFlags(CliArgs& args) {
  ModelConfig c;
  ASSIGN_OR_RETURN(int64_t layers, args.Int("layers", c.layers));
  ASSIGN_OR_RETURN(int64_t d_model, args.Int("d-model", c.d_model));
  ASSIGN_OR_RETURN(int64_t heads, args.Int("heads", c.heads));
  ASSIGN_OR_RETURN(int64_t ffn, args.Int("ffn", 4 * d_model));
  ASSIGN_OR_RETURN(int64_t segment, args.Int("segment", c.segment));
  ASSIGN_OR_RETURN(int64_t knn_layer, args.Int("knn-layer", c.knn_layer));
  ASSIGN_OR_RETURN(int64_t top_k, args.Int("top-k", c.top_k));
  ASSIGN_OR_RETURN(double gate_init, args.Double("gate-init", c.gate_init));
  c.layers = static_cast<int>(layers);
  c.d_model = static_cast<int>(d_model);
  c.heads = static_cast<int>(heads);
  c.ffn = static_cast<int>(ffn);
  c.segment = static_cast<int>(segment);
  c.knn_layer = static_cast<int>(knn_layer);
  c.top_k = static_cast<int>(top_k);
  c.gate_init = static_cast<float>(gate_init);
  const std::string mix = args.String("mix", "gate");
  if (mix != "gate" && mix != "joint") {
    return absl::InvalidArgumentError(
        absl::StrCat("--mix: '", mix, "' (gate or joint)"));
  }
  c.mix = mix == "gate" ? MemoryMix::kGate : MemoryMix::kJoint;
  ASSIGN_OR_RETURN(c.age_penalty, args.Bool("age-penalty", c.age_penalty));
  ASSIGN_OR_RETURN(c.edge_bias, args.Bool("edge-bias", c.edge_bias));
  ASSIGN_OR_RETURN(c.memory_scale, args.Bool("memory-scale", c.memory_scale));
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(CliArgs& args) {
  const std::string server = args.String("server", "");
  ASSIGN_OR_RETURN(int64_t deadline_ms, args.Int("deadline-ms", 10000));
  if (!server.empty()) {
    return std::unique_ptr<Memory>(std::make_unique<RemoteMemory>(
        server, std::chrono::milliseconds(deadline_ms)));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessMemory> local,
                   InProcessMemory::Create("", 2));
  return std::unique_ptr<Memory>(std::move(local));
}

absl::StatusOr<Corpus> CorpusFromFlags(CliArgs& args) {
  CorpusOptions options;
  ASSIGN_OR_RETURN(int64_t holdout,
                   args.Int("holdout", options.validation_per_mille));
  if (holdout < 0 || holdout > 1000) {
    return absl::InvalidArgumentError("--holdout: 0 to 1000 (per mille)");
  }
  options.validation_per_mille = static_cast<uint32_t>(holdout);
  const std::string data = args.String("data", "");
  options.sources = data.empty() ? DefaultSources()
                                 : std::vector<std::string>(absl::StrSplit(
                                       data, ',', absl::SkipEmpty()));
  return LoadCorpus(options);
}

}  // namespace knnmem::model
