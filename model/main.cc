// knnmem-model: train, evaluate, sample from and benchmark the Memorizing
// Transformer whose memory lives in knnmem.
#include <malloc.h>

#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"
#include "base/flags.h"
#include "model/commands.h"

namespace knnmem::model {
namespace {

struct CommandEntry {
  const char* name;
  // What the command does, in lines of at most 78 columns.
  const char* about;
  std::unique_ptr<Command> (*make)();
};

const CommandEntry kCommands[] = {
    {"train",
     "Trains a model on the corpus, with checkpoints; resumes when --out\n"
     "already holds a checkpoint, or retrofits memory onto a model trained\n"
     "without it (--from).",
     NewTrainCommand},
    {"eval",
     "Bits per byte on the validation documents at each --memory size: "
     "overall,\n"
     "on the far repeats (the 16 bytes before the byte occurred last beyond "
     "the\n"
     "local window and XL cache) and on the rest. Several checkpoints: one\n"
     "table, one plot. --rows: the table and plot of rows saved by eval "
     "--json,\n"
     "evaluated apart.",
     NewEvalCommand},
    {"generate",
     "Continues --prompt byte by byte; lanes generate from the same prompt at\n"
     "once, one position per step; with --server, one DecodeStep per step for\n"
     "all lanes.",
     NewGenerateCommand},
    {"bench",
     "In-process vs remote (loopback) inference tokens per second; with\n"
     "--generate, generation bytes per second.",
     NewBenchCommand},
    {"dump-keys",
     "The kNN layer's keys, values and queries over the --longest validation\n"
     "documents: keys.npy, values.npy, queries.npy (NumPy float32 [rows, "
     "heads,\n"
     "head_dim]), documents.tsv and queries.tsv in --out; for knnmem-bench\n"
     "--keys DIR (W-real).",
     NewDumpKeysCommand},
    {"corpus", "The documents, their split and their length distribution.",
     NewCorpusCommand},
};

// The flags of `command` and --help, writing into the command and *help.
FlagSet CommandFlags(Command& command, bool* help) {
  FlagSet flags;
  command.AddFlags(flags);
  flags.Bool("help", help, "print this text and exit");
  return flags;
}

std::string Indented(absl::string_view text) {
  std::string out;
  for (absl::string_view line : absl::StrSplit(text, '\n')) {
    absl::StrAppend(&out, "  ", line, "\n");
  }
  return out;
}

// knnmem-model COMMAND --help.
std::string CommandHelp(const CommandEntry& entry) {
  std::unique_ptr<Command> command = entry.make();
  bool help = false;
  return absl::StrCat("usage: knnmem-model ", entry.name,
                      " [--flag=value ...]\n\n", Indented(entry.about), "\n",
                      CommandFlags(*command, &help).Help());
}

// knnmem-model --help.
std::string Usage() {
  std::string out =
      "usage: knnmem-model COMMAND [--flag=value ...]\n"
      "       knnmem-model COMMAND --help   (the command's flags)\n\n"
      "commands:\n";
  for (const CommandEntry& entry : kCommands) {
    absl::StrAppend(&out, "\n", entry.name, "\n", Indented(entry.about));
  }
  return out;
}

int Main(int argc, char** argv) {
  const std::vector<std::string> args = CommandLineArgs(argc, argv);
  bool help = false;
  FlagSet top;
  top.Bool("help", &help, "print this text and exit");
  absl::StatusOr<size_t> at = top.ParseUntilCommand(args);
  if (!at.ok()) {
    std::fprintf(stderr, "knnmem-model: %s\n%s",
                 std::string(at.status().message()).c_str(), Usage().c_str());
    return 2;
  }
  if (help || (*at < args.size() && args[*at] == "help")) {
    std::fputs(Usage().c_str(), stdout);
    return 0;
  }
  if (*at == args.size()) {
    std::fputs(Usage().c_str(), stderr);
    return 2;
  }
  const std::string& name = args[*at];
  const CommandEntry* entry = nullptr;
  for (const CommandEntry& e : kCommands) {
    if (name == e.name) entry = &e;
  }
  if (entry == nullptr) {
    std::fprintf(stderr, "knnmem-model: unknown command '%s'\n%s", name.c_str(),
                 Usage().c_str());
    return 2;
  }
  std::unique_ptr<Command> command = entry->make();
  bool command_help = false;
  FlagSet flags = CommandFlags(*command, &command_help);
  absl::Status status = flags.Parse(absl::MakeConstSpan(args).subspan(*at + 1));
  if (status.ok() && command_help) {
    std::fputs(CommandHelp(*entry).c_str(), stdout);
    return 0;
  }
  if (status.ok()) status = command->Run(flags);
  if (!status.ok()) {
    std::fprintf(stderr, "knnmem-model %s: %s\n", name.c_str(),
                 std::string(status.message()).c_str());
    return absl::IsInvalidArgument(status) ? 2 : 1;
  }
  return 0;
}

}  // namespace
}  // namespace knnmem::model

int main(int argc, char** argv) {
  // Training allocates and frees tensors of megabytes every step; glibc's
  // default maps and unmaps each, and the page faults cost a third of a
  // step. Keep them in the heap (measured: 35 s -> 26 s for 25 steps).
  mallopt(M_MMAP_THRESHOLD, 32 << 20);
  mallopt(M_TRIM_THRESHOLD, 1 << 30);
  return knnmem::model::Main(argc, argv);
}
