// RecordingMemory: a Memory that passes every call to another and records
// what the kNN layer sent it, for `knnmem-model dump-keys`: the attention
// keys and queries the approximate tier is measured on (W-real in
// knnmem-bench). It writes into a directory:
//
//   keys.npy     float32 [rows, heads, key_dim]: every appended key, in
//                order; a stream's rows are its positions 0, 1, ...
//   values.npy   float32 [rows, heads, value_dim]: the appended values
//   queries.npy  float32 [rows, heads, key_dim]: every query (Search,
//                Attend, AttendMany), in order
//   documents.tsv  "document  key_row  keys": per stream (the column is
//                its id: one stream per document), the row of its first
//                key in keys.npy and how many it appended
//   queries.tsv  "document  query_row  queries  keys_in_memory": per call,
//                its first row in queries.npy, its rows, and how many keys
//                the stream had appended when it was asked
//
// The .npy files are NumPy's format (numpy.load opens them; base/npy.h).
// One stream at a time (read with one lane): a call for another stream
// while one is open is FAILED_PRECONDITION, as is an append that does not
// continue the stream's positions.
#ifndef KNNMEM_MODEL_RECORDING_MEMORY_H_
#define KNNMEM_MODEL_RECORDING_MEMORY_H_

#include <cstdio>
#include <memory>
#include <string>

#include "base/npy.h"
#include "model/memory.h"

namespace knnmem::model {

class RecordingMemory final : public Memory {
 public:
  // Records into `dir` (created if missing; files in it replaced) what is
  // sent to `inner`, which must outlive it.
  static absl::StatusOr<std::unique_ptr<RecordingMemory>> Create(
      const std::string& dir, Memory* inner);
  ~RecordingMemory() override;

  // Writes the .npy headers and closes every file.
  absl::Status Close();
  int64_t keys() const { return keys_ ? keys_->rows() : 0; }
  int64_t queries() const { return queries_ ? queries_->rows() : 0; }

  absl::Status BeginStream(const std::string& stream,
                           const MemoryShape& shape) override;
  absl::Status EndStream(const std::string& stream) override;
  absl::Status Append(const std::string& stream, int64_t first,
                      const torch::Tensor& keys,
                      const torch::Tensor& values) override;
  absl::StatusOr<Neighbours> Search(const std::string& stream,
                                    const torch::Tensor& queries,
                                    int k) override;
  absl::StatusOr<Attention> Attend(const std::string& stream,
                                   const torch::Tensor& queries, int k,
                                   const AttendOptions& options) override;

 private:
  RecordingMemory(std::string dir, Memory* inner, std::FILE* documents,
                  std::FILE* query_calls);
  // FAILED_PRECONDITION unless `stream` is the open one.
  absl::Status CheckOpen(const std::string& stream) const;
  absl::Status RecordQueries(const std::string& stream,
                             const torch::Tensor& queries);

  const std::string dir_;
  Memory* const inner_;
  std::FILE* documents_;
  std::FILE* query_calls_;
  std::unique_ptr<NpyWriter> keys_, values_, queries_;
  std::string open_;           // the open stream ("" when none)
  int64_t open_key_row_ = 0;   // its first row in keys.npy
  int64_t open_appended_ = 0;  // keys it appended
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_RECORDING_MEMORY_H_
