// knnmem-model bench: inference tokens per second of the same model on the
// same documents with the in-process memory and with a knnmem server on
// loopback (Attend: only outputs cross the network). With --generate:
// bytes per second generating (one position per step, several lanes), with
// memory in process, through the server (one DecodeStep per step) and
// without memory, against re-running the partial segment for every byte.
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/server_child.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
#include "model/generator.h"
#include "model/in_process_memory.h"
#include "model/remote_memory.h"

namespace knnmem::model {
namespace {

// Bytes per second over the first `segments` segments of each document.
double TokensPerSecond(Transformer model, Memory* memory, int64_t memory_size,
                       const std::vector<Document>& docs, int lanes,
                       int64_t segments) {
  torch::NoGradGuard no_grad;
  model->eval();
  DocumentReader reader(model, memory, lanes, memory_size, true, "bench");
  SegmentBatcher batches(&docs, lanes, model->config().segment, 0, false,
                         false);
  batches.set_max_segments_per_document(segments);
  int64_t bytes = 0;
  const auto start = std::chrono::steady_clock::now();
  while (!batches.Done()) bytes += reader.Step(batches.Next()).bytes;
  return bytes /
         std::chrono::duration<double>(std::chrono::steady_clock::now() - start)
             .count();
}

// Lane i's prompt: the first `bytes` bytes of validation document i (of
// those long enough).
absl::StatusOr<std::vector<std::string>> Prompts(
    const std::vector<Document>& docs, int lanes, int64_t bytes) {
  std::vector<std::string> prompts;
  for (const Document& d : docs) {
    if (static_cast<int64_t>(d.bytes.size()) < bytes) continue;
    prompts.push_back(d.bytes.substr(0, static_cast<size_t>(bytes)));
    if (static_cast<int>(prompts.size()) == lanes) return prompts;
  }
  return absl::FailedPreconditionError(
      absl::StrCat("--prompt-bytes: fewer than ", lanes,
                   " validation documents of ", bytes, " bytes"));
}

struct GenerateRow {
  std::string name;
  Generated run;
};

absl::Status BenchGenerate(Transformer model, Memory* in_process,
                           Memory* remote, int64_t memory_size,
                           const std::vector<std::string>& prompts,
                           int64_t bytes, int64_t reps) {
  torch::NoGradGuard no_grad;
  model->eval();
  const ModelConfig& c = model->config();
  const int lanes = static_cast<int>(prompts.size());
  auto run = [&](Memory* memory, bool rerun) {
    MemoryLink link(memory, lanes,
                    {c.heads, c.head_dim(), c.head_dim(), memory_size}, true);
    for (int l = 0; l < lanes; ++l) {
      link.BeginStream(l, absl::StrCat("bench-generate-", l));
    }
    torch::manual_seed(1);
    Generated g = GenerateBytes(model, memory != nullptr ? &link : nullptr,
                                prompts, bytes, 0.8, rerun);
    if (link.failures() > 0) {
      std::fprintf(stderr, "knnmem-model bench: %lld memory calls failed\n",
                   static_cast<long long>(link.failures()));
    }
    return g;
  };
  // Medians of `reps` runs, the variants interleaved; the re-running
  // baseline once (it is slow).
  std::vector<std::vector<Generated>> runs(3);
  for (int64_t r = 0; r < reps; ++r) {
    runs[0].push_back(run(in_process, false));
    runs[1].push_back(run(remote, false));
    runs[2].push_back(run(nullptr, false));
  }
  auto median = [](std::vector<Generated> v) {
    std::sort(v.begin(), v.end(), [](const Generated& a, const Generated& b) {
      return a.seconds < b.seconds;
    });
    return v[v.size() / 2];
  };
  std::vector<GenerateRow> rows = {
      {"incremental, memory in process", median(runs[0])},
      {"incremental, memory on the server", median(runs[1])},
      {"incremental, no memory", median(runs[2])},
      {"re-running (before), in process", run(in_process, true)},
  };
  std::printf("%-36s %12s %10s %14s\n", "generation", "bytes/s", "seconds",
              "memory share");
  for (const GenerateRow& r : rows) {
    std::printf("%-36s %12.0f %10.2f %13.1f%%\n", r.name.c_str(),
                r.run.bytes / r.run.seconds, r.run.seconds,
                100 * r.run.memory_seconds / r.run.seconds);
  }
  const double incremental = rows[0].run.bytes / rows[0].run.seconds;
  std::printf("%-36s %12.2f\n%-36s %12.2f\n", "incremental / re-running",
              incremental / (rows[3].run.bytes / rows[3].run.seconds),
              "server / in process",
              (rows[1].run.bytes / rows[1].run.seconds) / incremental);
  return absl::OkStatus();
}

class BenchCommand final : public Command {
 public:
  void AddFlags(FlagSet& f) override {
    f.String("checkpoint", &checkpoint_, "DIR",
             "the model (without it: a new one of the shape the flags give)");
    f.String("server", &server_, "HOST:PORT",
             "the server to compare with (without it: a knnmem-server child "
             "of --server-binary)");
    f.String("server-binary", &server_binary_, "PATH",
             "the knnmem-server to start without --server")
        .DefaultText("BUILD/server/knnmem-server beside this BUILD/model");
    f.Int("memory", &memory_size_, "N", "memory entries per head").AtLeast(0);
    f.Int("segments", &segments_, "N",
          "segments read of each document, from its start")
        .AtLeast(1);
    f.Int("lanes", &lanes_, "N", "documents (or generating lanes) side by side")
        .Range(1, 4096);
    f.Int("reps", &reps_, "N", "runs of each variant; medians are reported")
        .AtLeast(1);
    f.Bool("generate", &generate_,
           "generation bytes/s, memory in process, on the server and none, "
           "against re-running; the share waiting on memory");
    f.Int("prompt-bytes", &prompt_bytes_, "N",
          "--generate: each lane's prompt, the start of a validation document")
        .AtLeast(1);
    f.Int("bytes", &generate_bytes_, "N", "--generate: bytes generated")
        .AtLeast(1);
    AddConfigFlags(f, &config_flags_);
    AddCorpusFlags(f, &corpus_flags_);
  }

  absl::Status Run(const FlagSet& flags) override;

 private:
  std::string checkpoint_, server_, server_binary_;
  int64_t memory_size_ = 8192;
  int64_t segments_ = 32;
  int64_t lanes_ = 4;
  int64_t reps_ = 3;
  bool generate_ = false;
  int64_t prompt_bytes_ = 1024;
  int64_t generate_bytes_ = 256;
  ConfigFlags config_flags_;
  CorpusFlags corpus_flags_;
};

absl::Status BenchCommand::Run(const FlagSet& flags) {
  const std::string& checkpoint = checkpoint_;
  const std::string& server = server_;
  const std::string binary =
      server_binary_.empty() ? DefaultServerBinary() : server_binary_;
  const int64_t memory_size = memory_size_, segments = segments_,
                lanes = lanes_, reps = reps_, prompt_bytes = prompt_bytes_,
                generate_bytes = generate_bytes_;
  const bool generate = generate_;
  ASSIGN_OR_RETURN(ModelConfig flags_config, ConfigFromFlags(config_flags_));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(corpus_flags_));
  ModelConfig config = flags_config;
  if (!checkpoint.empty()) {
    ASSIGN_OR_RETURN(config, LoadCheckpointConfig(checkpoint));
  }
  Transformer model(config);
  if (!checkpoint.empty()) {
    RETURN_IF_ERROR(LoadCheckpoint(checkpoint, model, nullptr).status());
  }
  std::unique_ptr<TempDir> dir;
  std::unique_ptr<ServerChild> child;
  std::string address = server;
  if (address.empty()) {
    ASSIGN_OR_RETURN(dir, TempDir::Create("knnmem-model-bench-"));
    ASSIGN_OR_RETURN(child, ServerChild::Start(binary, dir->path(),
                                               {"--metrics-address", "none"}));
    address = child->address();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessMemory> local,
                   InProcessMemory::Create("", 2));
  RemoteMemory remote(address, std::chrono::seconds(30));
  if (generate) {
    ASSIGN_OR_RETURN(
        std::vector<std::string> prompts,
        Prompts(corpus.validation, static_cast<int>(lanes), prompt_bytes));
    std::printf(
        "knnmem-model bench --generate: %lld lanes, %lld prompt bytes each "
        "then %lld generated, memory %lld per head, server %s\n",
        static_cast<long long>(lanes), static_cast<long long>(prompt_bytes),
        static_cast<long long>(generate_bytes),
        static_cast<long long>(memory_size), address.c_str());
    RETURN_IF_ERROR(BenchGenerate(model, local.get(), &remote, memory_size,
                                  prompts, generate_bytes, reps));
    if (child) RETURN_IF_ERROR(child->Stop());
    return absl::OkStatus();
  }
  std::printf(
      "knnmem-model bench: %lld lanes, %lld segments of %d bytes per "
      "document, memory %lld per head, server %s\n",
      static_cast<long long>(lanes), static_cast<long long>(segments),
      config.segment, static_cast<long long>(memory_size), address.c_str());
  // Alternate the two, to share the machine's drift; report medians.
  std::vector<double> in_process, over_grpc;
  for (int64_t r = 0; r < reps; ++r) {
    in_process.push_back(TokensPerSecond(model, local.get(), memory_size,
                                         corpus.validation,
                                         static_cast<int>(lanes), segments));
    over_grpc.push_back(TokensPerSecond(model, &remote, memory_size,
                                        corpus.validation,
                                        static_cast<int>(lanes), segments));
  }
  auto median = [](std::vector<double> v) {
    std::sort(v.begin(), v.end());
    return v[v.size() / 2];
  };
  const double a = median(in_process), b = median(over_grpc);
  std::printf("%-22s %12s\n%-22s %12.0f\n%-22s %12.0f\n%-22s %12.3f\n",
              "backend", "tokens/s", "in-process", a, "remote (loopback)", b,
              "remote / in-process", b / a);
  if (child) RETURN_IF_ERROR(child->Stop());
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Command> NewBenchCommand() {
  return std::make_unique<BenchCommand>();
}

}  // namespace knnmem::model
