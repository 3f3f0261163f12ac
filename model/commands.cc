#include "model/commands.h"

#include <chrono>
#include <filesystem>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/server_child.h"
#include "base/status_macros.h"
#include "base/temp_dir.h"
#include "model/in_process_memory.h"
#include "model/remote_memory.h"

namespace knnmem::model {
namespace {

// --documents directories: the bounds of a document (a directory's files).
constexpr int64_t kMinDirectoryBytes = 256 << 10;
constexpr int64_t kMaxDirectoryBytes = int64_t{64} << 20;

// --server spawn: a RemoteMemory over a knnmem-server child of this process
// (its data in a temporary directory), stopped and removed with it.
class ChildServerMemory : public RemoteMemory {
 public:
  ChildServerMemory(std::unique_ptr<TempDir> dir,
                    std::unique_ptr<ServerChild> child,
                    std::chrono::milliseconds deadline, bool approximate)
      : RemoteMemory(child->address(), deadline, approximate),
        dir_(std::move(dir)),
        child_(std::move(child)) {}

 private:
  std::unique_ptr<TempDir> dir_;        // removed last
  std::unique_ptr<ServerChild> child_;  // stopped first
};

}  // namespace

void AddConfigFlags(FlagSet& f, ConfigFlags* c) {
  ModelConfig& m = c->config;
  f.Int("layers", &m.layers, "N", "transformer layers");
  f.Int("d-model", &m.d_model, "N", "model width");
  f.Int("heads", &m.heads, "N", "attention heads; they divide --d-model");
  f.Int("ffn", &c->ffn, "N",
        "hidden width of the feed-forward blocks (0: 4 x --d-model)");
  f.Int("segment", &m.segment, "N",
        "bytes per segment; the XL cache holds one segment");
  f.Int("knn-layer", &m.knn_layer, "N",
        "the kNN-augmented layer, 0-based (-1: at 2/3 depth)");
  f.Int("top-k", &m.top_k, "K", "memories the kNN layer reads per query");
  f.Enum("mix", &m.mix,
         {{"gate", MemoryMix::kGate}, {"joint", MemoryMix::kJoint}},
         "how memory joins local attention: gate, a learned sigmoid(b_h) "
         "mix of the two; joint, the retrieved pairs in the local softmax, "
         "weighted by exp(b_h)");
  f.Double("gate-init", &m.gate_init, "X", "b_h at the start");
  f.Bool("age-penalty", &m.age_penalty,
         "a learned per-head staleness penalty on memory scores");
  f.Bool("edge-bias", &m.edge_bias,
         "joint: memory takes the position bias of the farthest key the "
         "local window holds");
  f.Bool("memory-scale", &m.memory_scale,
         "memory's scores get a learned scale of their own");
}

absl::StatusOr<ModelConfig> ConfigFromFlags(const ConfigFlags& flags) {
  ModelConfig c = flags.config;
  c.ffn = flags.ffn != 0 ? flags.ffn : 4 * c.d_model;
  RETURN_IF_ERROR(ValidateConfig(c));
  return c;
}

std::string DefaultServerBinary() {
  std::error_code e;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", e);
  return (self.parent_path().parent_path() / "server" / "knnmem-server")
      .string();
}

void AddMemoryFlags(FlagSet& f, MemoryFlags* m) {
  f.String("server", &m->server, "HOST:PORT|spawn",
           "use a knnmem server; \"spawn\" starts one (--server-binary) as a "
           "child, its data in a temporary directory; without it the server "
           "core runs in process");
  f.String("server-binary", &m->server_binary, "PATH",
           "the knnmem-server --server spawn starts")
      .DefaultText("BUILD/server/knnmem-server beside this BUILD/model");
  f.Int("deadline-ms", &m->deadline_ms, "N",
        "deadline of each call to the server")
      .AtLeast(1);
  f.Choice("index", &m->index, {"exact", "approximate"},
           "approximate: documents' memories are APPROXIMATE streams (a "
           "server only)");
}

absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(const MemoryFlags& m) {
  const std::string& server = m.server;
  const std::string binary =
      m.server_binary.empty() ? DefaultServerBinary() : m.server_binary;
  const bool approximate = m.index == "approximate";
  const std::chrono::milliseconds deadline(m.deadline_ms);
  if (server == "spawn") {
    ASSIGN_OR_RETURN(std::unique_ptr<TempDir> dir,
                     TempDir::Create("knnmem-model-server-"));
    absl::StatusOr<std::unique_ptr<ServerChild>> child =
        ServerChild::Start(binary, dir->path(), {"--metrics-address", "none"});
    if (!child.ok()) {
      return absl::FailedPreconditionError(absl::StrCat(
          "--server spawn: starting ", binary, ": ", child.status().message()));
    }
    return std::unique_ptr<Memory>(std::make_unique<ChildServerMemory>(
        std::move(dir), *std::move(child), deadline, approximate));
  }
  if (!server.empty()) {
    return std::unique_ptr<Memory>(
        std::make_unique<RemoteMemory>(server, deadline, approximate));
  }
  if (approximate) {
    return absl::InvalidArgumentError(
        "--index approximate: needs --server (the in-process memory is exact)");
  }
  ASSIGN_OR_RETURN(std::unique_ptr<InProcessMemory> local,
                   InProcessMemory::Create("", 2));
  return std::unique_ptr<Memory>(std::move(local));
}

void AddCorpusFlags(FlagSet& f, CorpusFlags* c) {
  f.Strings("data", &c->data, "A,B...",
            "directories or globs, split by document name into train and "
            "validation")
      .DefaultText("this machine's C++ and Python standard libraries");
  f.Choice("documents", &c->documents, {"files", "directories"},
           "what a document is: a file, or a directory right below a "
           "source's root, its subtree's text files joined, each after a "
           "header line (the byte 0x1C, its path, a newline); the root's own "
           "files make one more");
  f.Int("min-bytes", &c->min_bytes, "N", "shorter documents are dropped")
      .AtLeast(0)
      .DefaultText("20000 for files, 256 KiB for directories");
  f.Int("max-bytes", &c->max_bytes, "N", "longer documents are dropped")
      .AtLeast(0)
      .DefaultText("4 MiB for files, 64 MiB for directories");
  f.Int("holdout", &c->holdout, "N",
        "the validation share, in per mille of the documents")
      .Range(0, 1000);
}

absl::StatusOr<Corpus> CorpusFromFlags(const CorpusFlags& c) {
  CorpusOptions options;
  options.validation_per_mille = c.holdout;
  if (c.documents == "directories") {
    options.unit = DocumentUnit::kDirectory;
    options.min_bytes = kMinDirectoryBytes;
    options.max_bytes = kMaxDirectoryBytes;
  }
  const int64_t min_bytes =
      c.min_bytes >= 0 ? c.min_bytes : static_cast<int64_t>(options.min_bytes);
  const int64_t max_bytes =
      c.max_bytes >= 0 ? c.max_bytes : static_cast<int64_t>(options.max_bytes);
  if (max_bytes < min_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min-bytes ", min_bytes, ", --max-bytes ", max_bytes,
                     ": 0 <= --min-bytes <= --max-bytes"));
  }
  options.min_bytes = static_cast<size_t>(min_bytes);
  options.max_bytes = static_cast<size_t>(max_bytes);
  options.sources = c.data.empty() ? DefaultSources() : c.data;
  return LoadCorpus(options);
}

}  // namespace knnmem::model
