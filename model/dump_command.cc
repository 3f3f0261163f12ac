// knnmem-model dump-keys: the kNN layer's keys, values and queries over the
// longest validation documents, read as eval reads them (one lane), into a
// directory of .npy files (recording_memory.h): real attention keys for the
// benchmark's W-real (`knnmem-bench --keys DIR`).
#include <algorithm>
#include <cstdio>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/progress.h"
#include "model/recording_memory.h"

namespace knnmem::model {

absl::Status DumpKeysCommand(CliArgs& args) {
  const std::string checkpoint = args.String("checkpoint", "");
  const std::string out = args.String("out", "");
  if (checkpoint.empty() || out.empty()) {
    return absl::InvalidArgumentError("dump-keys: --checkpoint DIR --out DIR");
  }
  ASSIGN_OR_RETURN(int64_t longest, args.Int("longest", 4));
  ASSIGN_OR_RETURN(int64_t segments, args.Int("segments", 1024));
  // The memory the model reads with: the kNN layer's keys and queries do
  // not depend on it (it feeds only the layer's output), so a small one
  // keeps the dump fast.
  ASSIGN_OR_RETURN(int64_t memory_size, args.Int("memory", 2048));
  if (longest < 1 || segments < 1 || memory_size < 1) {
    return absl::InvalidArgumentError(
        "dump-keys: --longest, --segments and --memory must be positive");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory, MemoryFromFlags(args));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
  ASSIGN_OR_RETURN(ModelConfig config, LoadCheckpointConfig(checkpoint));
  Transformer model(config);
  RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());

  // The longest documents (ties by name), so that memories fill.
  std::vector<Document> docs = corpus.validation;
  std::sort(docs.begin(), docs.end(), [](const Document& a, const Document& b) {
    return a.bytes.size() != b.bytes.size() ? a.bytes.size() > b.bytes.size()
                                            : a.name < b.name;
  });
  if (docs.size() > static_cast<size_t>(longest)) docs.resize(longest);
  if (docs.empty()) {
    return absl::FailedPreconditionError("dump-keys: no validation document");
  }
  int64_t total = 0;
  for (const Document& d : docs) {
    total += std::min<int64_t>(
        segments, SegmentBatcher::FullSegments(d.bytes.size(), config.segment));
  }
  ASSIGN_OR_RETURN(std::unique_ptr<RecordingMemory> recorder,
                   RecordingMemory::Create(out, memory.get()));
  int64_t failures = 0;
  {
    torch::NoGradGuard no_grad;
    model->eval();
    DocumentReader reader(model, recorder.get(), 1, memory_size, true, "dump");
    SegmentBatcher batches(&docs, 1, config.segment, 0, false, false);
    batches.set_max_segments_per_document(segments);
    Progress progress("dump-keys", total);
    int64_t done = 0;
    while (!batches.Done()) {
      const auto batch = batches.Next();
      const StepResult r = reader.Step(batch);
      done += batch[0].has_value();
      progress.Update(done, r.bytes, r.loss.item<double>());
    }
    progress.Finish();
    failures = reader.link().failures();
  }  // the reader ends the last document
  const int64_t keys = recorder->keys(), queries = recorder->queries();
  RETURN_IF_ERROR(recorder->Close());
  if (failures > 0) {
    return absl::InternalError(absl::StrCat(
        "dump-keys: ", failures, " memory call(s) failed (see above)"));
  }
  std::printf(
      "dump-keys: %zu document(s), %lld keys and %lld queries of %d "
      "heads x %d in %s\n",
      docs.size(), static_cast<long long>(keys),
      static_cast<long long>(queries), config.heads, config.head_dim(),
      out.c_str());
  return absl::OkStatus();
}

}  // namespace knnmem::model
