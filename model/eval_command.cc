// knnmem-model eval: bits per byte on the validation documents at several
// memory sizes, for one checkpoint or several side by side, overall and on
// the far repeats (far_repeats.h) apart: a table, JSON, and a PNG plot with
// a line per checkpoint.
#include <cmath>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/algorithm/container.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "absl/strings/str_join.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/eval_rows.h"
#include "model/eval_tally.h"
#include "model/progress.h"
#include "model/remote_memory.h"

namespace knnmem::model {
namespace {

// Per document read, bits per byte (all, and on the far repeats), on stderr.
void PrintDocuments(const EvalTally& tally, const std::vector<Document>& docs) {
  for (const auto& [index, sum] : tally.documents()) {
    std::fprintf(stderr, "  %-36s %8.4f bits/byte over %lld bytes\n",
                 docs[static_cast<size_t>(index)].name.c_str(),
                 sum.bits_per_byte(), static_cast<long long>(sum.bytes));
  }
}

absl::StatusOr<EvalRow> Evaluate(Transformer model, Memory* memory,
                                 int64_t memory_size,
                                 const std::vector<Document>& docs, int lanes,
                                 int64_t segments, const std::string& label) {
  torch::NoGradGuard no_grad;
  model->eval();
  model->knn_attention()->ResetMemoryShare();
  DocumentReader reader(model, memory, lanes, memory_size, true,
                        absl::StrCat("eval-", memory_size));
  const int segment = model->config().segment;
  SegmentBatcher batches(&docs, lanes, segment, 0, false, false);
  batches.set_max_segments_per_document(segments);
  int64_t total = 0;
  for (const Document& d : docs) {
    total += std::min<int64_t>(
        segments, SegmentBatcher::FullSegments(d.bytes.size(), segment));
  }
  Progress progress(label, total);
  EvalTally tally(&docs, segment);
  int64_t done = 0;
  while (!batches.Done()) {
    const auto batch = batches.Next();
    const StepResult r = reader.Step(batch);
    tally.Add(batch, r.per_byte);
    for (const auto& s : batch) done += s.has_value();
    progress.Update(done, r.bytes, r.loss.item<double>());
  }
  progress.Finish();
  if (reader.link().failures() > 0) {
    return absl::UnavailableError(absl::StrCat(
        label, ": ", reader.link().failures(),
        " memory calls failed (their documents read on without memory); the "
        "row would not measure memory"));
  }
  PrintDocuments(tally, docs);
  if (const auto* remote = dynamic_cast<const RemoteMemory*>(memory);
      remote != nullptr && remote->entries_at_end() > 0) {
    std::fprintf(stderr,
                 "  approximate tier: %lld of %lld entries indexed at the "
                 "documents' ends (so far)\n",
                 static_cast<long long>(remote->indexed_at_end()),
                 static_cast<long long>(remote->entries_at_end()));
  }
  EvalRow row;
  row.label = label;
  row.memory = memory_size;
  row.bits_per_byte = tally.all().bits_per_byte();
  row.bytes = tally.all().bytes;
  row.memory_share =
      model->knn_attention()->memory_share().mean().item<double>();
  row.far_bits_per_byte = tally.far().bits_per_byte();
  row.far_bytes = tally.far().bytes;
  row.rest_bits_per_byte = tally.rest().bits_per_byte();
  return row;
}

std::string Floats(const torch::Tensor& t) {
  const torch::Tensor c = t.detach().to(torch::kFloat32).contiguous();
  std::vector<std::string> parts;
  for (int64_t i = 0; i < c.numel(); ++i) {
    parts.push_back(absl::StrFormat("%.2f", c.data_ptr<float>()[i]));
  }
  return absl::StrCat("[", absl::StrJoin(parts, " "), "]");
}

// What the kNN layer learned, per head: how memory is weighed.
void PrintKnnLayer(const std::string& checkpoint, Transformer& model) {
  AttentionLayer& knn = model->knn_attention();
  std::fprintf(
      stderr,
      "%s: kNN layer (%s) b_h %s, position bias of memory %s, scale "
      "%s, memory's scale %s, age alpha %s\n",
      checkpoint.c_str(),
      model->config().mix == MemoryMix::kGate ? "gate" : "joint",
      Floats(knn->named_parameters()["gate_bias"]).c_str(),
      Floats(knn->memory_position_bias()).c_str(), Floats(knn->scale()).c_str(),
      Floats(knn->memory_scale()).c_str(), Floats(knn->age_alpha()).c_str());
}

// What eval measures for each checkpoint.
struct EvalPlan {
  std::vector<int64_t> sizes = {0, 2048, 8192, 32768};  // memory per head
  bool approximate = false;                             // APPROXIMATE streams
  bool without_age_penalty = true;  // the extra row (see below)
  int lanes = 6;
  int64_t segments = 128;  // per document, from its start
};

// Every row of one checkpoint: each memory size, and (when the plan says
// so) the largest again without the learned age penalty when the model has
// one.
absl::StatusOr<std::vector<EvalRow>> EvaluateCheckpoint(
    const std::string& checkpoint, const EvalPlan& plan, Memory* memory,
    const std::vector<Document>& docs) {
  ASSIGN_OR_RETURN(ModelConfig config, LoadCheckpointConfig(checkpoint));
  Transformer model(config);
  RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());
  PrintKnnLayer(checkpoint, model);
  const std::string kind = plan.approximate ? " approximate" : "";
  const std::vector<int64_t>& sizes = plan.sizes;
  const int lanes = plan.lanes;
  const int64_t segments = plan.segments;
  std::vector<EvalRow> rows;
  for (int64_t size : sizes) {
    ASSIGN_OR_RETURN(EvalRow row,
                     Evaluate(model, memory, size, docs, lanes, segments,
                              absl::StrCat("memory ", size, kind)));
    rows.push_back(row);
  }
  if (config.age_penalty && plan.without_age_penalty && !sizes.empty()) {
    torch::Tensor alpha = model->knn_attention()->age_alpha();
    torch::NoGradGuard no_grad;
    alpha.zero_();
    ASSIGN_OR_RETURN(
        EvalRow row,
        Evaluate(
            model, memory, sizes.back(), docs, lanes, segments,
            absl::StrCat("memory ", sizes.back(), kind, " no age penalty")));
    row.age_penalty_off = true;
    rows.push_back(row);
  }
  for (EvalRow& r : rows) {
    r.checkpoint = checkpoint;
    r.approximate = plan.approximate && r.memory > 0;
  }
  return rows;
}

class EvalCommand final : public Command {
 public:
  void AddFlags(FlagSet& f) override {
    f.Strings("checkpoint", &checkpoints_, "DIR,DIR...",
              "the checkpoints to evaluate, side by side: one table, one "
              "plot");
    f.Strings("rows", &saved_, "FILE,FILE...",
              "instead of --checkpoint: the table and plot of rows saved by "
              "eval --json, evaluated apart (with --json and --png alone)");
    f.String("json", &json_, "FILE", "also write the rows to FILE as JSON");
    f.String("png", &png_, "FILE", "also plot the rows into FILE");
    f.Ints("memory", &plan_.sizes, "N,N...", "memory entries per head");
    f.Int("segments", &plan_.segments, "N",
          "segments read of each document, from its start")
        .AtLeast(1);
    f.Int("lanes", &plan_.lanes, "N", "documents read side by side")
        .Range(1, 4096);
    f.Bool("without-age-penalty", &plan_.without_age_penalty,
           "a model with a learned age penalty: the largest memory again "
           "without it");
    AddMemoryFlags(f, &memory_flags_);
    AddCorpusFlags(f, &corpus_flags_);
  }

  absl::Status Run(const FlagSet& flags) override;

 private:
  std::vector<std::string> checkpoints_, saved_;
  std::string json_, png_;
  EvalPlan plan_;
  MemoryFlags memory_flags_;
  CorpusFlags corpus_flags_;
};

absl::Status EvalCommand::Run(const FlagSet& flags) {
  std::vector<std::string> checkpoints = checkpoints_;
  const std::vector<std::string>& saved = saved_;
  if (checkpoints.empty() == saved.empty()) {
    return absl::InvalidArgumentError(
        "--checkpoint DIR[,DIR...] or --rows FILE[,FILE...] (one of them)");
  }
  const std::string& json = json_;
  const std::string& png = png_;
  std::vector<EvalRow> rows;
  if (!saved.empty()) {
    // Rows evaluated before (perhaps apart, in parallel): table and plot.
    for (const FlagSet::Registered& flag : flags.registered()) {
      if (flags.Given(flag.name) && flag.name != "rows" &&
          flag.name != "json" && flag.name != "png") {
        return absl::InvalidArgumentError(
            absl::StrCat("--", flag.name, ": not with --rows"));
      }
    }
    for (const std::string& file : saved) {
      ASSIGN_OR_RETURN(std::vector<EvalRow> more, ReadJson(file));
      for (const EvalRow& r : more) {
        if (absl::c_find(checkpoints, r.checkpoint) == checkpoints.end()) {
          checkpoints.push_back(r.checkpoint);
        }
      }
      rows.insert(rows.end(), more.begin(), more.end());
    }
  } else {
    EvalPlan plan = plan_;
    plan.approximate = memory_flags_.index == "approximate";
    ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory,
                     MemoryFromFlags(memory_flags_));
    ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(corpus_flags_));
    std::fprintf(stderr,
                 "knnmem-model eval: validation %s; the first %lld "
                 "segments of each\n",
                 DescribeDocuments(corpus.validation).c_str(),
                 static_cast<long long>(plan.segments));
    for (const std::string& checkpoint : checkpoints) {
      ASSIGN_OR_RETURN(std::vector<EvalRow> more,
                       EvaluateCheckpoint(checkpoint, plan, memory.get(),
                                          corpus.validation));
      rows.insert(rows.end(), more.begin(), more.end());
    }
  }
  // Each row also against the first row (the first checkpoint, first size).
  const double base = rows.front().bits_per_byte;
  std::printf("\n%-24s %-40s %10s %9s %10s %10s %9s %9s %9s\n", "checkpoint",
              "run", "bits/byte", "vs first", "bytes", "mem share", "far b/B",
              "rest b/B", "far share");
  auto maybe = [](double value, const char* format) {
    return std::isnan(value) ? std::string("-")
                             : absl::StrFormat(format, value);
  };
  for (const EvalRow& r : rows) {
    std::printf("%-24s %-40s %10.4f %+8.2f%% %10lld %10s %9s %9s %9s\n",
                r.checkpoint.c_str(), r.label.c_str(), r.bits_per_byte,
                100.0 * (r.bits_per_byte / base - 1.0),
                static_cast<long long>(r.bytes),
                maybe(r.memory_share, "%.3f").c_str(),
                maybe(r.far_bits_per_byte, "%.4f").c_str(),
                maybe(r.rest_bits_per_byte, "%.4f").c_str(),
                maybe(std::isnan(r.far_bits_per_byte) || r.bytes == 0
                          ? std::nan("")
                          : static_cast<double>(r.far_bytes) / r.bytes,
                      "%.3f")
                    .c_str());
  }
  if (!json.empty()) RETURN_IF_ERROR(WriteJson(json, rows));
  if (!png.empty()) RETURN_IF_ERROR(WritePlot(png, checkpoints, rows));
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Command> NewEvalCommand() {
  return std::make_unique<EvalCommand>();
}

}  // namespace knnmem::model
