// knnmem-model: train, evaluate, sample from and benchmark the Memorizing
// Transformer whose memory lives in knnmem.
#include <malloc.h>

#include <cstdio>
#include <cstring>
#include <string>
#include <vector>

#include "model/commands.h"

namespace {

constexpr char kUsage[] = R"(usage: knnmem-model COMMAND [--flag=value ...]

commands:
  train     --out DIR [--steps N] [--minutes M] [--lanes 8] [--memory 8192]
            [--lr 1e-3] [--from DIR (retrofit: start from a model trained
            without memory; its shape, with --mix, --top-k,
            --age-penalty, --edge-bias and --gate-init if given)]
            [--checkpoint-every 200] [--data a,b]
            [--server HOST:PORT] [--layers --d-model --heads --ffn --segment
            --knn-layer --top-k --mix gate|joint --gate-init
            --age-penalty true|false --edge-bias true|false
            --memory-scale true|false]
            Resumes when DIR already holds a checkpoint.
  eval      --checkpoint DIR[,DIR...] [--memory 0,2048,8192,32768]
            [--segments 128 (per document)] [--lanes 6] [--json FILE]
            [--png FILE] [--data a,b ...] [--server HOST:PORT|spawn]
            [--index exact|approximate] [--deadline-ms 10000]
            [--without-age-penalty true (a model with a learned age
            penalty: the largest size again without it)]
            Several checkpoints: one table, one plot. Bits per byte overall,
            on the far repeats (the 16 bytes before the byte occurred last
            beyond the local window and XL cache) and on the rest.
  eval      --rows FILE[,FILE...] [--json FILE] [--png FILE]
            The table and plot of rows saved by eval --json, evaluated apart.
  generate  --checkpoint DIR [--prompt TEXT] [--bytes 400] [--memory 8192]
            [--lanes 1] [--temperature 0.8] [--seed 1] [--server HOST:PORT]
            [--rerun true (the partial segment re-run for every byte, as
            before incremental decoding)]
            Lanes generate from the same prompt at once, one position per
            step; with --server, one DecodeStep per step for all lanes.
  bench     [--checkpoint DIR] [--server HOST:PORT] [--memory 8192]
            [--segments 32] [--lanes 4]
            In-process vs remote (loopback) inference tokens per second.
  bench     --generate true [--prompt-bytes 1024] [--bytes 256] [--lanes 4]
            [--reps 3] ...: generation bytes/s, memory in process, on the
            server and none, against re-running; the share waiting on memory.
  dump-keys --checkpoint DIR --out DIR [--longest 4] [--segments 1024]
            [--memory 2048] [--data a,b] [--server HOST:PORT]
            The kNN layer's keys, values and queries over the N longest
            validation documents: keys.npy, values.npy, queries.npy (NumPy
            float32 [rows, heads, head_dim]), documents.tsv and queries.tsv;
            for knnmem-bench --keys DIR (W-real).
  corpus    [--data a,b] [--documents files|directories] [--min-bytes N]
            [--max-bytes N] [--holdout 50]
            The documents, their split and their length distribution.

--data: directories or globs (default: this machine's C++ and Python
standard libraries), split by document name into train and validation
(--holdout: the validation share in per mille, default 50). --documents
directories: a document is a directory right below a source's root, its
subtree's text files joined, each after a header line (the byte 0x1C, its
path, a newline); the root's own files make one more. Documents are
--min-bytes to --max-bytes long (defaults: files 20,000 to 4 MiB,
directories 256 KiB to 64 MiB).
--server: use a knnmem server; "spawn" starts one (--server-binary, default
BUILD/server/knnmem-server) as a child, its data in a temporary directory;
without it the server core runs in process. --index approximate: documents'
memories are APPROXIMATE streams (a server only).
)";

}  // namespace

int main(int argc, char** argv) {
  // Training allocates and frees tensors of megabytes every step; glibc's
  // default maps and unmaps each, and the page faults cost a third of a
  // step. Keep them in the heap (measured: 35 s -> 26 s for 25 steps).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  if (argc < 2 || std::strcmp(argv[1], "--help") == 0 ||
      std::strcmp(argv[1], "help") == 0) {
    std::fputs(kUsage, argc < 2 ? stderr : stdout);
    return argc < 2 ? 2 : 0;
  }
  const std::string command = argv[1];
  absl::StatusOr<knnmem::model::CliArgs> args = knnmem::model::CliArgs::Parse(
      std::vector<std::string>(argv + 2, argv + argc));
  absl::Status status = args.status();
  if (status.ok()) {
    if (command == "train") {
      status = knnmem::model::TrainCommand(*args);
    } else if (command == "eval") {
      status = knnmem::model::EvalCommand(*args);
    } else if (command == "generate") {
      status = knnmem::model::GenerateCommand(*args);
    } else if (command == "bench") {
      status = knnmem::model::BenchCommand(*args);
    } else if (command == "dump-keys") {
      status = knnmem::model::DumpKeysCommand(*args);
    } else if (command == "corpus") {
      status = knnmem::model::CorpusCommand(*args);
    } else {
      std::fprintf(stderr, "knnmem-model: unknown command '%s'\n%s",
                   command.c_str(), kUsage);
      return 2;
    }
  }
  if (!status.ok()) {
    std::fprintf(stderr, "knnmem-model %s: %s\n", command.c_str(),
                 std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}
