#include "server/store/new_rows.h"

#include "base/dtype.h"

namespace knnmem {

NewRows::NewRows(const AppendCommand& cmd, int64_t next) {
  const StreamSpec& spec = cmd.spec;
  const size_t key_elems = size_t{spec.heads} * spec.key_dim;
  const size_t value_elems = size_t{spec.heads} * spec.value_dim;
  key_row_bytes_ = key_elems * ElementSize(spec.storage_dtype);
  value_row_bytes_ = value_elems * ElementSize(spec.storage_dtype);
  const int64_t end = cmd.first_position + static_cast<int64_t>(cmd.rows);
  if (end <= next) return;  // a replay: already stored
  const size_t skip = static_cast<size_t>(next - cmd.first_position);
  rows_ = cmd.rows - skip;
  const size_t in_es = ElementSize(cmd.dtype);
  keys_ = cmd.keys.data() + skip * key_elems * in_es;
  values_ = cmd.values.data() + skip * value_elems * in_es;
  if (cmd.dtype == spec.storage_dtype) return;
  converted_keys_ =
      TranscodeFloats(keys_, rows_ * key_elems, cmd.dtype, spec.storage_dtype);
  converted_values_ = TranscodeFloats(values_, rows_ * value_elems, cmd.dtype,
                                      spec.storage_dtype);
  keys_ = converted_keys_.data();
  values_ = converted_values_.data();
}

}  // namespace knnmem
