// The knnmem-model commands (train, eval, generate, bench, dump-keys,
// corpus) and what they share: the model's shape from flags, the memory
// backend, the corpus. Each command declares its flags on a FlagSet
// (base/flags.h), so its --help lists every one.
#ifndef KNNMEM_MODEL_COMMANDS_H_
#define KNNMEM_MODEL_COMMANDS_H_

#include <cstdint>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "base/flags.h"
#include "model/config.h"
#include "model/corpus.h"
#include "model/memory.h"

namespace knnmem::model {

// One knnmem-model command: its flags, whose variables it holds, and its
// run.
class Command {
 public:
  virtual ~Command() = default;
  // Registers the command's flags, each writing into this command.
  virtual void AddFlags(FlagSet& flags) = 0;
  // Runs once `flags` (those of AddFlags) are parsed; flags.Given() tells
  // which were on the command line. INVALID_ARGUMENT for a usage error.
  virtual absl::Status Run(const FlagSet& flags) = 0;
};

std::unique_ptr<Command> NewTrainCommand();
std::unique_ptr<Command> NewEvalCommand();
std::unique_ptr<Command> NewGenerateCommand();
std::unique_ptr<Command> NewBenchCommand();
std::unique_ptr<Command> NewDumpKeysCommand();
std::unique_ptr<Command> NewCorpusCommand();

// --layers, --d-model, --heads, --ffn, --segment, --knn-layer, --top-k,
// --mix, --gate-init, --age-penalty, --edge-bias, --memory-scale: the
// model's shape, over ModelConfig's defaults.
struct ConfigFlags {
  ModelConfig config;
  int ffn = 0;  // 0: 4 x d_model
};
void AddConfigFlags(FlagSet& flags, ConfigFlags* c);
// The config the flags give; INVALID_ARGUMENT when it cannot work
// (ValidateConfig).
absl::StatusOr<ModelConfig> ConfigFromFlags(const ConfigFlags& c);

// --server HOST:PORT: the remote backend (with --deadline-ms); --server
// spawn: the same over a knnmem-server child of this process
// (--server-binary, default the one beside this binary's directory:
// BUILD/server/knnmem-server), its data in a temporary directory under
// $TMPDIR; otherwise the server core in process, its RocksDB in a temporary
// directory. --index exact (default) or approximate (remote only): the
// documents' streams' IndexKind.
struct MemoryFlags {
  std::string server;
  std::string server_binary;  // empty: DefaultServerBinary()
  int64_t deadline_ms = 10000;
  std::string index = "exact";
};
void AddMemoryFlags(FlagSet& flags, MemoryFlags* m);
absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(const MemoryFlags& m);
// BUILD/server/knnmem-server for this BUILD/model/knnmem-model.
std::string DefaultServerBinary();

// --data a,b,...: directories or globs (default: the machine's C++ and
// Python standard libraries); --documents files (default) or directories
// (corpus.h's DocumentUnit); --min-bytes and --max-bytes bound a document
// (defaults: files 20,000 to 4 MiB, directories 256 KiB to 64 MiB);
// --holdout: split by document name into train and validation.
struct CorpusFlags {
  std::vector<std::string> data;  // empty: DefaultSources()
  std::string documents = "files";
  int64_t min_bytes = -1, max_bytes = -1;  // -1: the unit's default
  uint32_t holdout = CorpusOptions().validation_per_mille;
};
void AddCorpusFlags(FlagSet& flags, CorpusFlags* c);
absl::StatusOr<Corpus> CorpusFromFlags(const CorpusFlags& c);

// One line on `documents`: how many, their bytes, and the distribution of
// their lengths (min, quartiles, max).
std::string DescribeDocuments(const std::vector<Document>& documents);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_COMMANDS_H_
