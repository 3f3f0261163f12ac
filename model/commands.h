// The knnmem-model commands (train, eval, generate, bench, dump-keys,
// corpus) and what they share: the model's shape from flags, the memory
// backend, the corpus.
#ifndef KNNMEM_MODEL_COMMANDS_H_
#define KNNMEM_MODEL_COMMANDS_H_

#include <memory>
#include <string>
#include <vector>

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
absl::Status CorpusCommand(CliArgs& args);

// --layers, --d-model, --heads, --ffn, --segment, --knn-layer, --top-k,
// --mix, --gate-init, --age-penalty over the defaults.
absl::StatusOr<ModelConfig> ConfigFromFlags(CliArgs& args);
// --server HOST:PORT: the remote backend (with --deadline-ms); --server
// spawn: the same over a knnmem-server child of this process
// (--server-binary, default the one beside this binary's directory:
// BUILD/server/knnmem-server), its data in a temporary directory under
// $TMPDIR; otherwise the server core in process, its RocksDB in a temporary
// directory. --index exact (default) or approximate (remote only): the
// documents' streams' IndexKind.
absl::StatusOr<std::unique_ptr<Memory>> MemoryFromFlags(CliArgs& args);
// BUILD/server/knnmem-server for this BUILD/model/knnmem-model.
std::string DefaultServerBinary();
// --data a,b,...: directories or globs (default: the machine's C++ and
// Python standard libraries); --documents files (default) or directories
// (corpus.h's DocumentUnit); --min-bytes and --max-bytes bound a document
// (defaults: files 20,000 to 4 MiB, directories 256 KiB to 64 MiB);
// --holdout: split by document name into train and validation.
absl::StatusOr<Corpus> CorpusFromFlags(CliArgs& args);
// One line on `documents`: how many, their bytes, and the distribution of
// their lengths (min, quartiles, max).
std::string DescribeDocuments(const std::vector<Document>& documents);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_COMMANDS_H_
