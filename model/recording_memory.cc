#include "model/recording_memory.h"

#include <filesystem>
#include <system_error>
#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace knnmem::model {
namespace {

// `t` as contiguous float32 [rows, ...] on the CPU.
torch::Tensor Rows(const torch::Tensor& t) {
  return t.detach().to(torch::kCPU, torch::kFloat32).contiguous();
}

absl::StatusOr<std::FILE*> OpenTsv(const std::string& path,
                                   const char* header) {
  std::FILE* f = std::fopen(path.c_str(), "w");
  if (f == nullptr) {
    return absl::NotFoundError(absl::StrCat("cannot create '", path, "'"));
  }
  std::fputs(header, f);
  return f;
}

}  // namespace

absl::StatusOr<std::unique_ptr<RecordingMemory>> RecordingMemory::Create(
    const std::string& dir, Memory* inner) {
  std::error_code error;
  std::filesystem::create_directories(dir, error);
  if (error) {
    return absl::NotFoundError(
        absl::StrCat("--out: cannot create '", dir, "': ", error.message()));
  }
  ASSIGN_OR_RETURN(std::FILE * documents, OpenTsv(dir + "/documents.tsv",
                                                  "document\tkey_row\tkeys\n"));
  absl::StatusOr<std::FILE*> calls = OpenTsv(
      dir + "/queries.tsv", "document\tquery_row\tqueries\tkeys_in_memory\n");
  if (!calls.ok()) {
    std::fclose(documents);
    return calls.status();
  }
  return std::unique_ptr<RecordingMemory>(
      new RecordingMemory(dir, inner, documents, *calls));
}

RecordingMemory::RecordingMemory(std::string dir, Memory* inner,
                                 std::FILE* documents, std::FILE* query_calls)
    : dir_(std::move(dir)),
      inner_(inner),
      documents_(documents),
      query_calls_(query_calls) {}

RecordingMemory::~RecordingMemory() { Close().IgnoreError(); }

absl::Status RecordingMemory::Close() {
  absl::Status s;
  for (std::unique_ptr<NpyWriter>* w : {&keys_, &values_, &queries_}) {
    if (*w == nullptr) continue;
    absl::Status closed = (*w)->Close();
    if (s.ok()) s = closed;
    w->reset();
  }
  for (std::FILE** f : {&documents_, &query_calls_}) {
    if (*f == nullptr) continue;
    if (std::fclose(*f) != 0 && s.ok()) {
      s = absl::InternalError(absl::StrCat("cannot write into '", dir_, "'"));
    }
    *f = nullptr;
  }
  return s;
}

absl::Status RecordingMemory::CheckOpen(const std::string& stream) const {
  if (stream == open_) return absl::OkStatus();
  return absl::FailedPreconditionError(absl::StrCat(
      "dump-keys: a call for document '", stream, "' while '", open_,
      "' is open: record one document at a time (one lane)"));
}

absl::Status RecordingMemory::BeginStream(const std::string& stream,
                                          const MemoryShape& shape) {
  if (!open_.empty()) {
    return absl::FailedPreconditionError(
        absl::StrCat("dump-keys: document '", stream, "' begins while '", open_,
                     "' is open: record one document at a time (one lane)"));
  }
  if (keys_ == nullptr) {
    ASSIGN_OR_RETURN(keys_, NpyWriter::Create(dir_ + "/keys.npy",
                                              {shape.heads, shape.key_dim}));
    ASSIGN_OR_RETURN(values_,
                     NpyWriter::Create(dir_ + "/values.npy",
                                       {shape.heads, shape.value_dim}));
    ASSIGN_OR_RETURN(queries_, NpyWriter::Create(dir_ + "/queries.npy",
                                                 {shape.heads, shape.key_dim}));
  } else if (keys_->row_floats() != int64_t{shape.heads} * shape.key_dim ||
             values_->row_floats() != int64_t{shape.heads} * shape.value_dim) {
    return absl::InvalidArgumentError(
        "dump-keys: documents of different shapes in one dump");
  }
  open_ = stream;
  open_key_row_ = keys_->rows();
  open_appended_ = 0;
  return inner_->BeginStream(stream, shape);
}

absl::Status RecordingMemory::EndStream(const std::string& stream) {
  RETURN_IF_ERROR(CheckOpen(stream));
  std::fprintf(documents_, "%s\t%lld\t%lld\n", stream.c_str(),
               static_cast<long long>(open_key_row_),
               static_cast<long long>(open_appended_));
  open_.clear();
  return inner_->EndStream(stream);
}

absl::Status RecordingMemory::Append(const std::string& stream, int64_t first,
                                     const torch::Tensor& keys,
                                     const torch::Tensor& values) {
  RETURN_IF_ERROR(CheckOpen(stream));
  if (first != open_appended_) {
    return absl::FailedPreconditionError(
        absl::StrCat("dump-keys: document '", stream, "' appends at ", first,
                     " after ", open_appended_, " keys"));
  }
  const torch::Tensor k = Rows(keys), v = Rows(values);
  RETURN_IF_ERROR(keys_->Append(k.data_ptr<float>(), k.size(0)));
  RETURN_IF_ERROR(values_->Append(v.data_ptr<float>(), v.size(0)));
  open_appended_ += k.size(0);
  return inner_->Append(stream, first, keys, values);
}

absl::Status RecordingMemory::RecordQueries(const std::string& stream,
                                            const torch::Tensor& queries) {
  RETURN_IF_ERROR(CheckOpen(stream));
  const torch::Tensor q = Rows(queries);
  std::fprintf(query_calls_, "%s\t%lld\t%lld\t%lld\n", stream.c_str(),
               static_cast<long long>(queries_->rows()),
               static_cast<long long>(q.size(0)),
               static_cast<long long>(open_appended_));
  return queries_->Append(q.data_ptr<float>(), q.size(0));
}

absl::StatusOr<Neighbours> RecordingMemory::Search(const std::string& stream,
                                                   const torch::Tensor& queries,
                                                   int k) {
  RETURN_IF_ERROR(RecordQueries(stream, queries));
  return inner_->Search(stream, queries, k);
}

absl::StatusOr<Attention> RecordingMemory::Attend(
    const std::string& stream, const torch::Tensor& queries, int k,
    const AttendOptions& options) {
  RETURN_IF_ERROR(RecordQueries(stream, queries));
  return inner_->Attend(stream, queries, k, options);
}

}  // namespace knnmem::model
