// knnmem-model dump-keys: the kNN layer's keys, values and queries over the
// longest validation documents, read as eval reads them (one lane), into a
// directory of .npy files (recording_memory.h): real attention keys for the
// benchmark's W-real (`knnmem-bench --keys DIR`).
#include <algorithm>
#include <cstdio>
#include <memory>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/progress.h"
#include "model/recording_memory.h"

namespace knnmem::model {

namespace {

class DumpKeysCommand final : public Command {
 public:
  void AddFlags(FlagSet& f) override {
    f.String("checkpoint", &checkpoint_, "DIR", "the model").Required();
    f.String("out", &out_, "DIR", "where the dump goes").Required();
    f.Int("longest", &longest_, "N", "the N longest validation documents")
        .AtLeast(1);
    f.Int("segments", &segments_, "N",
          "segments read of each document, from its start")
        .AtLeast(1);
    // The memory the model reads with: the kNN layer's keys and queries do
    // not depend on it (it feeds only the layer's output), so a small one
    // keeps the dump fast.
    f.Int("memory", &memory_size_, "N",
          "memory entries per head the model reads with (the keys and "
          "queries do not depend on it)")
        .AtLeast(1);
    AddMemoryFlags(f, &memory_flags_);
    AddCorpusFlags(f, &corpus_flags_);
  }

  absl::Status Run(const FlagSet& flags) override;

 private:
  std::string checkpoint_, out_;
  int64_t longest_ = 4;
  int64_t segments_ = 1024;
  int64_t memory_size_ = 2048;
  MemoryFlags memory_flags_;
  CorpusFlags corpus_flags_;
};

absl::Status DumpKeysCommand::Run(const FlagSet& flags) {
  const std::string& checkpoint = checkpoint_;
  const std::string& out = out_;
  const int64_t longest = longest_, segments = segments_,
                memory_size = memory_size_;
  ASSIGN_OR_RETURN(std::unique_ptr<Memory> memory,
                   MemoryFromFlags(memory_flags_));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(corpus_flags_));
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

}  // namespace

std::unique_ptr<Command> NewDumpKeysCommand() {
  return std::make_unique<DumpKeysCommand>();
}

}  // namespace knnmem::model
