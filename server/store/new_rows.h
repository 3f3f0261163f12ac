// NewRows: the part of a validated Append that a layer does not hold yet,
// in the layer's storage dtype. MemoryStore's append and the fuzzer's model
// of it share it, so that the two skip replays and convert alike.
#ifndef KNNMEM_SERVER_STORE_NEW_ROWS_H_
#define KNNMEM_SERVER_STORE_NEW_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <string>

#include "server/store/commands.h"

namespace knnmem {

// Rows of `cmd` at positions >= `next` (the layer's next position; the ones
// before it are a replay, already stored), as token-major bytes of
// cmd.spec.storage_dtype: borrowed from the command when its dtype is the
// storage dtype, converted (and owned here) otherwise. Requires
// cmd.first_position <= next: the caller refuses a gap first. Neither
// copyable nor movable, since keys() and values() may point into it.
class NewRows {
 public:
  NewRows(const AppendCommand& cmd, int64_t next);
  NewRows(const NewRows&) = delete;
  NewRows& operator=(const NewRows&) = delete;

  size_t rows() const { return rows_; }  // 0: every row is a replay
  const char* keys() const { return keys_; }
  const char* values() const { return values_; }
  size_t key_row_bytes() const { return key_row_bytes_; }
  size_t value_row_bytes() const { return value_row_bytes_; }

 private:
  size_t rows_ = 0;
  const char* keys_ = nullptr;
  const char* values_ = nullptr;
  size_t key_row_bytes_ = 0;
  size_t value_row_bytes_ = 0;
  std::string converted_keys_;
  std::string converted_values_;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_NEW_ROWS_H_
