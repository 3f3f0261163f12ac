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

std::string DefaultServerBinary() {
  std::error_code e;
  const std::filesystem::path self =
      std::filesystem::read_symlink("/proc/self/exe", e);
  return (self.parent_path().parent_path() / "server" / "knnmem-server")
      .string();
}

absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(CliArgs& args) {
  const std::string server = args.String("server", "");
  const std::string binary =
      args.String("server-binary", DefaultServerBinary());
  ASSIGN_OR_RETURN(int64_t deadline_ms, args.Int("deadline-ms", 10000));
  const std::string index = args.String("index", "exact");
  if (index != "exact" && index != "approximate") {
    return absl::InvalidArgumentError(
        absl::StrCat("--index: '", index, "' (exact or approximate)"));
  }
  if (deadline_ms < 1) {
    return absl::InvalidArgumentError(
        absl::StrCat("--deadline-ms: ", deadline_ms, " (at least 1)"));
  }
  const bool approximate = index == "approximate";
  const std::chrono::milliseconds deadline(deadline_ms);
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

absl::StatusOr<Corpus> CorpusFromFlags(CliArgs& args) {
  CorpusOptions options;
  ASSIGN_OR_RETURN(int64_t holdout,
                   args.Int("holdout", options.validation_per_mille));
  if (holdout < 0 || holdout > 1000) {
    return absl::InvalidArgumentError("--holdout: 0 to 1000 (per mille)");
  }
  options.validation_per_mille = static_cast<uint32_t>(holdout);
  const std::string unit = args.String("documents", "files");
  if (unit != "files" && unit != "directories") {
    return absl::InvalidArgumentError(
        absl::StrCat("--documents: '", unit, "' (files or directories)"));
  }
  if (unit == "directories") {
    options.unit = DocumentUnit::kDirectory;
    options.min_bytes = kMinDirectoryBytes;
    options.max_bytes = kMaxDirectoryBytes;
  }
  ASSIGN_OR_RETURN(
      int64_t min_bytes,
      args.Int("min-bytes", static_cast<int64_t>(options.min_bytes)));
  ASSIGN_OR_RETURN(
      int64_t max_bytes,
      args.Int("max-bytes", static_cast<int64_t>(options.max_bytes)));
  if (min_bytes < 0 || max_bytes < min_bytes) {
    return absl::InvalidArgumentError(
        absl::StrCat("--min-bytes ", min_bytes, ", --max-bytes ", max_bytes,
                     ": 0 <= --min-bytes <= --max-bytes"));
  }
  options.min_bytes = static_cast<size_t>(min_bytes);
  options.max_bytes = static_cast<size_t>(max_bytes);
  const std::string data = args.String("data", "");
  options.sources = data.empty() ? DefaultSources()
                                 : std::vector<std::string>(absl::StrSplit(
                                       data, ',', absl::SkipEmpty()));
  return LoadCorpus(options);
}

}  // namespace knnmem::model
