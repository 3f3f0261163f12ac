// NumPy .npy files (format version 1.0) of float32 in C order: what
// `knnmem-model dump-keys` writes and the benchmark's W-real reads, and
// what numpy.load opens as it is.
//
// NpyWriter appends rows of a fixed shape and writes the final row count
// into the header at Close; the header is padded to 128 bytes, so that a
// count of any size fits in place. ReadNpy takes '<f4' C-order files only.
#ifndef KNNMEM_BASE_NPY_H_
#define KNNMEM_BASE_NPY_H_

#include <cstdint>
#include <cstdio>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"

namespace knnmem {

class NpyWriter {
 public:
  // Creates `path` for rows of `row_shape` (e.g. {heads, key_dim}).
  static absl::StatusOr<std::unique_ptr<NpyWriter>> Create(
      const std::string& path, std::vector<int64_t> row_shape);
  ~NpyWriter();  // closes the file if Close was not called (errors lost)

  NpyWriter(const NpyWriter&) = delete;
  NpyWriter& operator=(const NpyWriter&) = delete;

  // Appends `rows` rows, each the product of row_shape floats.
  absl::Status Append(const float* data, int64_t rows);
  // Writes the header with the final shape and closes the file.
  absl::Status Close();
  int64_t rows() const { return rows_; }
  int64_t row_floats() const { return row_floats_; }

 private:
  NpyWriter(std::string path, std::FILE* file, std::vector<int64_t> row_shape);
  absl::Status WriteHeader();

  std::string path_;
  std::FILE* file_;
  std::vector<int64_t> row_shape_;
  int64_t row_floats_ = 1;
  int64_t rows_ = 0;
};

struct NpyArray {
  std::vector<int64_t> shape;
  std::vector<float> data;  // C order
};

// Reads a float32 C-order .npy file; INVALID_ARGUMENT naming the file for
// any other dtype, order or a malformed header, NOT_FOUND when it cannot be
// opened, DATA_LOSS when it holds fewer bytes than its shape says.
absl::StatusOr<NpyArray> ReadNpy(const std::string& path);

}  // namespace knnmem

#endif  // KNNMEM_BASE_NPY_H_
