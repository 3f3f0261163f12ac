// knnmem-model train: trains (or resumes, or retrofits memory onto) a
// model on the corpus, with a progress line and checkpoints.
#include <csignal>
#include <cstdio>
#include <memory>
#include <string>

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

class TrainCommand final : public Command {
 public:
  TrainCommand() { settings_.warmup = 200; }

  void AddFlags(FlagSet& f) override {
    f.String("out", &out_, "DIR",
             "where checkpoints go; resumes when DIR already holds one")
        .Required();
    f.String("from", &from_, "DIR",
             "retrofit: start from a model trained without memory; its "
             "shape, with --mix, --top-k, --age-penalty, --edge-bias and "
             "--gate-init if given");
    f.Int("steps", &steps_, "N", "train until step N").AtLeast(1);
    f.Double("minutes", &minutes_, "M", "stop after M minutes (0: no limit)");
    f.Int("lanes", &lanes_, "N", "documents read side by side").Range(1, 4096);
    f.Int("memory", &memory_size_, "N", "memory entries per head").AtLeast(0);
    f.Int("checkpoint-every", &every_, "N", "steps between checkpoints")
        .AtLeast(1);
    f.Int("seed", &seed_, "S", "seed of the weights and the batches");
    f.Double("lr", &settings_.learning_rate, "X", "learning rate");
    f.Int("warmup", &settings_.warmup, "N", "steps of learning-rate warm-up")
        .AtLeast(0);
    AddConfigFlags(f, &config_flags_);
    AddMemoryFlags(f, &memory_flags_);
    AddCorpusFlags(f, &corpus_flags_);
  }

  absl::Status Run(const FlagSet& flags) override;

 private:
  std::string out_, from_;
  int64_t steps_ = 2000;
  double minutes_ = 0;
  int64_t lanes_ = 8;
  int64_t memory_size_ = 8192;
  int64_t every_ = 200;
  int64_t seed_ = 1;
  TrainSettings settings_;
  ConfigFlags config_flags_;
  MemoryFlags memory_flags_;
  CorpusFlags corpus_flags_;
};

absl::Status TrainCommand::Run(const FlagSet& flags) {
  const std::string& out = out_;
  const std::string& from = from_;
  const int64_t steps = steps_, lanes = lanes_, memory_size = memory_size_,
                every = every_, seed = seed_;
  const double minutes = minutes_;
  const TrainSettings& settings = settings_;
  ASSIGN_OR_RETURN(ModelConfig flags_config, ConfigFromFlags(config_flags_));
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory,
                   MemoryFromFlags(memory_flags_));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(corpus_flags_));

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
    if (flags.Given("mix")) config.mix = flags_config.mix;
    if (flags.Given("top-k")) config.top_k = flags_config.top_k;
    if (flags.Given("age-penalty"))
      config.age_penalty = flags_config.age_penalty;
    if (flags.Given("edge-bias")) config.edge_bias = flags_config.edge_bias;
    if (flags.Given("gate-init")) config.gate_init = flags_config.gate_init;
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
  if (retrofit && flags.Given("gate-init")) {
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
  if (state.step >= steps) {  // resumed at or past --steps: nothing to do
    std::printf("already trained to step %lld (%lld bytes); checkpoint %s\n",
                static_cast<long long>(state.step),
                static_cast<long long>(state.tokens), out.c_str());
    return absl::OkStatus();
  }
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

}  // namespace

std::unique_ptr<Command> NewTrainCommand() {
  return std::make_unique<TrainCommand>();
}

}  // namespace knnmem::model
