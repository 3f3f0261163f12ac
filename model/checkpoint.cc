#include "model/checkpoint.h"

#include <cstdio>
#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/numbers.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_split.h"

namespace knnmem::model {
namespace {

namespace fs = std::filesystem;

// Moves a finished temporary file into place.
absl::Status Publish(const std::string& temp, const std::string& path) {
  std::error_code e;
  fs::rename(temp, path, e);
  if (e) {
    return absl::InternalError(
        absl::StrCat("rename ", temp, ": ", e.message()));
  }
  return absl::OkStatus();
}

absl::Status WriteText(const std::string& path, const std::string& text) {
  const std::string temp = path + ".tmp";
  {
    std::ofstream out(temp, std::ios::binary | std::ios::trunc);
    out << text;
    if (!out.flush()) {
      return absl::InternalError(absl::StrCat("cannot write ", temp));
    }
  }
  return Publish(temp, path);
}

absl::StatusOr<std::string> ReadText(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  if (!in) return absl::NotFoundError(absl::StrCat("cannot read ", path));
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

// torch::save to a temporary name, then rename.
template <typename T>
absl::Status SaveTorch(const T& what, const std::string& path) {
  const std::string temp = path + ".tmp";
  try {
    torch::save(what, temp);
  } catch (const c10::Error& e) {
    return absl::InternalError(absl::StrCat("saving ", path, ": ", e.what()));
  }
  return Publish(temp, path);
}

}  // namespace

absl::Status SaveCheckpoint(const std::string& dir, Transformer& model,
                            torch::optim::Optimizer* optimizer,
                            const TrainState& state) {
  std::error_code e;
  fs::create_directories(dir, e);
  if (e)
    return absl::InternalError(absl::StrCat("mkdir ", dir, ": ", e.message()));
  if (absl::Status s =
          WriteText(dir + "/config.txt", FormatConfig(model->config()));
      !s.ok()) {
    return s;
  }
  if (absl::Status s = SaveTorch(model, dir + "/model.pt"); !s.ok()) return s;
  if (optimizer != nullptr) {
    if (absl::Status s = SaveTorch(*optimizer, dir + "/optimizer.pt");
        !s.ok()) {
      return s;
    }
  }
  // Last: state.txt names a step whose files are all in place.
  return WriteText(
      dir + "/state.txt",
      absl::StrCat("step=", state.step, "\nbatches=", state.batches,
                   "\ntokens=", state.tokens, "\nmemory=", state.memory, "\n"));
}

bool HasCheckpoint(const std::string& dir) {
  return fs::exists(dir + "/state.txt") && fs::exists(dir + "/model.pt");
}

absl::StatusOr<ModelConfig> LoadCheckpointConfig(const std::string& dir) {
  absl::StatusOr<std::string> text = ReadText(dir + "/config.txt");
  if (!text.ok()) return text.status();
  return ParseConfig(*text);
}

absl::StatusOr<TrainState> LoadCheckpoint(const std::string& dir,
                                          Transformer& model,
                                          torch::optim::Optimizer* optimizer) {
  absl::StatusOr<std::string> text = ReadText(dir + "/state.txt");
  if (!text.ok()) return text.status();
  TrainState state;
  for (absl::string_view line :
       absl::StrSplit(*text, '\n', absl::SkipEmpty())) {
    std::pair<absl::string_view, absl::string_view> kv =
        absl::StrSplit(line, '=');
    int64_t* field = kv.first == "step"      ? &state.step
                     : kv.first == "batches" ? &state.batches
                     : kv.first == "tokens"  ? &state.tokens
                     : kv.first == "memory"  ? &state.memory
                                             : nullptr;
    if (field == nullptr || !absl::SimpleAtoi(kv.second, field)) {
      return absl::DataLossError(
          absl::StrCat(dir, "/state.txt: cannot read '", line, "'"));
    }
  }
  try {
    torch::load(model, dir + "/model.pt");
    if (optimizer != nullptr && fs::exists(dir + "/optimizer.pt")) {
      torch::load(*optimizer, dir + "/optimizer.pt");
    }
  } catch (const c10::Error& e) {
    return absl::DataLossError(absl::StrCat("loading ", dir, ": ", e.what()));
  }
  return state;
}

}  // namespace knnmem::model
