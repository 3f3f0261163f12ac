// knnmem-model bench: inference tokens per second of the same model on the
// same documents with the in-process memory and with a knnmem server on
// loopback (Attend: only outputs cross the network).
#include <unistd.h>

#include <chrono>
#include <cstdio>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "base/server_child.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "model/checkpoint.h"
#include "model/commands.h"
#include "model/document_reader.h"
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

std::string DefaultServerBinary() {
  std::error_code e;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", e);
  return (self.parent_path().parent_path() / "server" / "knnmem-server")
      .string();
}

}  // namespace

absl::Status BenchCommand(CliArgs& args) {
  const std::string checkpoint = args.String("checkpoint", "");
  const std::string server = args.String("server", "");
  const std::string binary =
      args.String("server-binary", DefaultServerBinary());
  ASSIGN_OR_RETURN(int64_t memory_size, args.Int("memory", 8192));
  ASSIGN_OR_RETURN(int64_t segments, args.Int("segments", 32));
  ASSIGN_OR_RETURN(int64_t lanes, args.Int("lanes", 4));
  ASSIGN_OR_RETURN(int64_t reps, args.Int("reps", 3));
  ASSIGN_OR_RETURN(ModelConfig flags_config, ConfigFromFlags(args));
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(args));
  RETURN_IF_ERROR(args.CheckAllUsed());
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
    ASSIGN_OR_RETURN(child, ServerChild::Start(binary, dir->path()));
    address = child->address();
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessMemory> local,
                   InProcessMemory::Create("", 2));
  RemoteMemory remote(address, std::chrono::seconds(30));
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

}  // namespace knnmem::model
