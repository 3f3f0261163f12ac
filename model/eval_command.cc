// knnmem-model eval: bits per byte on the validation documents at several
// memory sizes, for one checkpoint: a table, JSON, and a PNG plot.
#include <cmath>
#include <cstdio>
#include <fstream>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"
#include "checkpoint.h"
#include "commands.h"
#include "document_reader.h"
#include "progress.h"
#include "status_macros.h"

namespace knnmem::model {
namespace {

struct EvalRow {
  std::string label;
  int64_t memory = 0;
  double bits_per_byte = 0;
  int64_t bytes = 0;
};

EvalRow Evaluate(Transformer model, Memory* memory, int64_t memory_size,
                 const std::vector<Document>& docs, int lanes, int64_t segments,
                 const std::string& label) {
  torch::NoGradGuard no_grad;
  model->eval();
  DocumentReader reader(model, memory, lanes, memory_size, true,
                        absl::StrCat("eval-", memory_size));
  SegmentBatcher batches(&docs, lanes, model->config().segment, 0, false,
                         false);
  batches.set_max_segments_per_document(segments);
  int64_t total = 0;
  for (const Document& d : docs) {
    total += std::min<int64_t>(
        segments,
        SegmentBatcher::FullSegments(d.bytes.size(), model->config().segment));
  }
  Progress progress(label, total);
  double nats = 0;
  int64_t bytes = 0, done = 0;
  while (!batches.Done()) {
    const auto batch = batches.Next();
    const StepResult r = reader.Step(batch);
    nats += r.loss.item<double>() * r.bytes;
    bytes += r.bytes;
    for (const auto& s : batch) done += s.has_value();
    progress.Update(done, r.bytes, r.loss.item<double>());
  }
  progress.Finish();
  return {label, memory_size,
          nats / std::max<int64_t>(1, bytes) / std::log(2.0), bytes};
}

absl::Status WriteJson(const std::string& path, const std::string& checkpoint,
                       const std::vector<EvalRow>& rows) {
  std::vector<std::string> items;
  for (const EvalRow& r : rows) {
    items.push_back(absl::StrCat("  {\"label\": \"", r.label,
                                 "\", \"memory\": ", r.memory,
                                 ", \"bits_per_byte\": ", r.bits_per_byte,
                                 ", \"bytes\": ", r.bytes, "}"));
  }
  std::ofstream out(path);
  out << "{\"checkpoint\": \"" << checkpoint << "\", \"rows\": [\n"
      << absl::StrJoin(items, ",\n") << "\n]}\n";
  if (!out.flush())
    return absl::InternalError(absl::StrCat("cannot write ", path));
  return absl::OkStatus();
}

// Bits per byte against memory size (log scale), drawn by gnuplot.
absl::Status WritePlot(const std::string& path,
                       const std::vector<EvalRow>& rows) {
  const std::string data = path + ".dat";
  {
    std::ofstream out(data);
    for (const EvalRow& r : rows) {
      if (r.label.rfind("memory", 0) == 0) {
        out << std::max<int64_t>(r.memory, 256) << " " << r.bits_per_byte
            << "\n";
      }
    }
  }
  const std::string script = absl::StrCat(
      "set terminal png size 640,400; set output '", path,
      "'; set logscale x 2; set xlabel 'memory per head (0 drawn at 256)'; "
      "set ylabel 'bits per byte'; set grid; plot '",
      data, "' with linespoints title 'validation'");
  const std::string command = absl::StrCat("gnuplot -e \"", script, "\" 2>&1");
  if (std::system(command.c_str()) != 0) {
    return absl::FailedPreconditionError(
        "--png: gnuplot failed (scripts/install-deps model installs it)");
  }
  std::remove(data.c_str());
  return absl::OkStatus();
}

}  // namespace

absl::Status EvalCommand(CliArgs& args) {
  const std::string checkpoint = args.String("checkpoint", "");
  if (checkpoint.empty())
    return absl::InvalidArgumentError("--checkpoint: required");
  ASSIGN_OR_RETURN(std::vector<int64_t> sizes,
                   args.Ints("memory", {0, 2048, 8192, 32768}));
  ASSIGN_OR_RETURN(int64_t segments, args.Int("segments", 128));
  ASSIGN_OR_RETURN(int64_t lanes, args.Int("lanes", 6));
  const std::string json = args.String("json", "");
  const std::string png = args.String("png", "");
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory, MemoryFromFlags(args));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
  ASSIGN_OR_RETURN(ModelConfig config, LoadCheckpointConfig(checkpoint));
  Transformer model(config);
  RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());

  std::vector<EvalRow> rows;
  for (int64_t size : sizes) {
    rows.push_back(Evaluate(model, memory.get(), size, corpus.validation,
                            static_cast<int>(lanes), segments,
                            absl::StrCat("memory ", size)));
  }
  // Staleness: the largest memory again without the learned age penalty.
  if (config.age_penalty && !sizes.empty()) {
    torch::Tensor alpha = model->knn_attention()->age_alpha();
    const torch::Tensor saved = alpha.detach().clone();
    {
      torch::NoGradGuard no_grad;
      alpha.zero_();
    }
    rows.push_back(
        Evaluate(model, memory.get(), sizes.back(), corpus.validation,
                 static_cast<int>(lanes), segments,
                 absl::StrCat("memory ", sizes.back(), " no age penalty")));
    torch::NoGradGuard no_grad;
    alpha.copy_(saved);
  }
  std::printf("\n%-32s %14s %12s\n", "run", "bits/byte", "bytes");
  for (const EvalRow& r : rows) {
    std::printf("%-32s %14.4f %12lld\n", r.label.c_str(), r.bits_per_byte,
                static_cast<long long>(r.bytes));
  }
  if (!json.empty()) RETURN_IF_ERROR(WriteJson(json, checkpoint, rows));
  if (!png.empty()) RETURN_IF_ERROR(WritePlot(png, rows));
  return absl::OkStatus();
}

}  // namespace knnmem::model
