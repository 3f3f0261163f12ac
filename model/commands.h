// The knnmem-model commands (train, eval, generate, bench, dump-keys) and
// what they
// share: the model's shape from flags, the memory backend, the corpus.
#ifndef KNNMEM_MODEL_COMMANDS_H_
#define KNNMEM_MODEL_COMMANDS_H_

#include <memory>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "model/cli_args.h"
#include "model/config.h"
#include "model/corpus.h"
#include "model/memory.h"

namespace knnmem::model {

absl::Status TrainCommand(CliArgs& args);
absl::Status EvalCommand(CliArgs& args);
absl::Status GenerateCommand(CliArgs& args);
absl::Status BenchCommand(CliArgs& args);
absl::Status DumpKeysCommand(CliArgs& args);

// --layers, --d-model, --heads, --ffn, --segment, --knn-layer, --top-k,
// --mix, --gate-init, --age-penalty over the defaults.
absl::StatusOr<ModelConfig> ConfigFromFlags(CliArgs& args);
// --server HOST:PORT: the remote backend (with --deadline-ms); otherwise
// the server core in process, its RocksDB in a temporary directory.
absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(CliArgs& args);
// --data a,b,...: directories or globs (default: the machine's C++ and
// Python standard libraries); split by file into train and validation.
absl::StatusOr<Corpus> CorpusFromFlags(CliArgs& args);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_COMMANDS_H_
