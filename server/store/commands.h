// The store's commands: requests validated at the edge (the service layer's
// request_validation.h builds them from wire messages), which the store and
// the layers below trust without checking shapes again.
#ifndef KNNMEM_SERVER_STORE_COMMANDS_H_
#define KNNMEM_SERVER_STORE_COMMANDS_H_

#include <cstddef>
#include <cstdint>
#include <functional>
#include <optional>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/string_view.h"
#include "base/dtype.h"
#include "server/search/attention.h"
#include "server/search/exact_search.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

// A validated Append: `rows` tokens at first_position.., token-major
// [rows, heads, dim] bytes of `dtype` (which the store converts to the
// storage dtype when they differ).
struct AppendCommand {
  std::string stream_id;
  StreamSpec spec;  // the spec it was validated against
  uint32_t layer = 0;
  int64_t first_position = 0;
  size_t rows = 0;
  DType dtype = DType::kFloat32;
  absl::string_view keys;
  absl::string_view values;
  bool sync = false;
};

struct AppendResult {
  int64_t next_position = 0;
  uint64_t stored = 0;   // rows newly stored
  uint64_t evicted = 0;  // rows evicted to make room
};

// A validated Search: float32 queries [n, heads, key_dim].
struct SearchCommand {
  std::string stream_id;
  StreamSpec spec;
  uint32_t layer = 0;
  std::vector<float> queries;
  SearchOptions options;
  bool exact = false;  // scan APPROXIMATE layers exactly too
};

// A validated Attend: float32 queries [n, heads, key_dim], k, and the
// per-head scale and age penalty expanded to `heads` values.
struct AttendCommand {
  std::string stream_id;
  StreamSpec spec;
  uint32_t layer = 0;
  std::vector<float> queries;
  uint32_t k = 32;
  AttendOptions options;
  std::function<bool()> cancelled;  // see SearchOptions::cancelled
};

// One stream's part of a validated DecodeStep: its rows are appended
// first, then its queries attended.
struct StepCommand {
  std::optional<AppendCommand> append;
  std::optional<AttendCommand> attend;
};

// One step's answer: its own status; when OK, what it appended and attended.
struct StepResult {
  absl::Status status;
  int64_t next_position = 0;  // the layer's, after the append
  AppendResult appended;      // zero without rows
  Attention attention;        // empty without queries
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_STORE_COMMANDS_H_
