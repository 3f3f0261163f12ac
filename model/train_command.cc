// knnmem-model train: trains (or resumes, or retrofits memory onto) a
// model on the corpus, with a progress line and checkpoints.
#include <csignal>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/progress.h"
#include "model/trainer.h"

namespace knnmem::model {
namespace {

volatile std::sig_atomic_t stop_requested = 0;
void RequestStop(int) { stop_requested = 1; }

}  // namespace

absl::Status TrainCommand(CliArgs& args) {
  const std::string out = args.String("out", "");
  if (out.empty()) return absl::InvalidArgumentError("--out: required");
  const std::string from = args.String("from", "");
  ASSIGN_OR_RETURN(int64_t steps, args.Int("steps", 2000));
  ASSIGN_OR_RETURN(double minutes, args.Double("minutes", 0));
  ASSIGN_OR_RETURN(int64_t lanes, args.Int("lanes", 8));
  ASSIGN_OR_RETURN(int64_t memory_size, args.Int("memory", 8192));
  ASSIGN_OR_RETURN(int64_t every, args.Int("checkpoint-every", 200));
  ASSIGN_OR_RETURN(int64_t seed, args.Int("seed", 1));
  TrainSettings settings;
  ASSIGN_OR_RETURN(settings.learning_rate, args.Double("lr", 1e-3));
  ASSIGN_OR_RETURN(int64_t warmup, args.Int("warmup", 200));
  settings.warmup = static_cast<int>(warmup);
  ASSIGN_OR_RETURN(ModelConfig flags_config, ConfigFromFlags(args));
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory, MemoryFromFlags(args));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
  if (lanes < 1 || steps < 1 || memory_size < 0 || every < 1) {
    return absl::InvalidArgumentError(
        "--lanes, --steps and --checkpoint-every must be positive, --memory "
        "at least 0");
  }

  // Resume from --out, or start from --from's weights (the retrofit: a
  // model trained without memory, now trained with it), or from scratch.
  const bool resume = HasCheckpoint(out);
  const std::string source = resume ? out : from;
  ModelConfig config = flags_config;
  if (!source.empty()) {
    ASSIGN_OR_RETURN(config, LoadCheckpointConfig(source));
  }
  const bool retrofit = !resume && !from.empty();
  if (retrofit) {
    // The retrofit keeps the shape it starts from; how memory is read is
    // the retrofit's to choose (none of it is in the weights).
    if (args.Has("mix")) config.mix = flags_config.mix;
    if (args.Has("top-k")) config.top_k = flags_config.top_k;
    if (args.Has("age-penalty")) config.age_penalty = flags_config.age_penalty;
    if (args.Has("edge-bias")) config.edge_bias = flags_config.edge_bias;
    if (args.Has("gate-init")) config.gate_init = flags_config.gate_init;
  }
  torch::manual_seed(static_cast<uint64_t>(seed));
  Transformer model(config);
  DocumentReader reader(model, memory.get(), static_cast<int>(lanes),
                        memory_size, false, absl::StrCat("train-", seed));
  Trainer trainer(model, &reader, settings);
  TrainState state;
  if (!source.empty()) {
    ASSIGN_OR_RETURN(
        state,
        LoadCheckpoint(source, model, resume ? &trainer.optimizer() : nullptr));
    if (!resume) state = TrainState{};  // a retrofit starts its own count
  }
  if (retrofit && args.Has("gate-init")) {
    // The memory-less model never trained b_h: the retrofit chooses where
    // memory starts (joint: its softmax mass scaled by exp(b_h)).
    torch::NoGradGuard no_grad;
    model->knn_attention()->named_parameters()["gate_bias"].fill_(
        config.gate_init);
  }
  state.memory = memory_size;
  trainer.set_steps(state.step);
  SegmentBatcher batches(&corpus.train, static_cast<int>(lanes), config.segment,
                         static_cast<uint64_t>(seed), true, true);
  batches.Skip(state.batches);
  std::fprintf(stderr,
               "knnmem-model train: %s%s; %lld lanes x "
               "%d bytes, memory %lld per head%s, until step %lld\n",
               resume ? "resuming; " : "",
               DescribeDocuments(corpus.train).c_str(),
               static_cast<long long>(lanes), config.segment,
               static_cast<long long>(memory_size),
               from.empty() ? "" : absl::StrCat(", from ", from).c_str(),
               static_cast<long long>(steps));
  std::signal(SIGINT, RequestStop);
  std::signal(SIGTERM, RequestStop);
  Progress progress("train", steps);
  progress.set_time_limit(minutes * 60);
  const auto start = std::chrono::steady_clock::now();
  auto out_of_time = [&] {
    return minutes > 0 && std::chrono::steady_clock::now() - start >
                              std::chrono::duration<double>(minutes * 60);
  };
  while (state.step < steps && !stop_requested && !out_of_time()) {
    const StepStats s = trainer.Step(batches.Next());
    ++state.step;
    state.batches = batches.calls();
    state.tokens += s.bytes;
    progress.Update(state.step, s.bytes, s.loss);
    if (state.step % every == 0) {
      RETURN_IF_ERROR(SaveCheckpoint(out, model, &trainer.optimizer(), state));
    }
  }
  progress.Finish();
  RETURN_IF_ERROR(SaveCheckpoint(out, model, &trainer.optimizer(), state));
  std::printf(
      "trained to step %lld (%lld bytes), loss %.4f nats = %.4f bits/byte; "
      "checkpoint %s; memory failures %lld\n",
      static_cast<long long>(state.step), static_cast<long long>(state.tokens),
      progress.loss(), progress.loss() / std::log(2.0), out.c_str(),
      static_cast<long long>(reader.link().failures()));
  return absl::OkStatus();
}

}  // namespace knnmem::model
