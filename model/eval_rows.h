// EvalRow: one line of knnmem-model eval's table (a checkpoint at one
// memory size), and its files: JSON rows written and read back (eval --json,
// eval --rows) and the PNG plot, a line per checkpoint.
#ifndef KNNMEM_MODEL_EVAL_ROWS_H_
#define KNNMEM_MODEL_EVAL_ROWS_H_

#include <cmath>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"

namespace knnmem::model {

struct EvalRow {
  std::string checkpoint;
  std::string label;
  bool age_penalty_off = false;  // the "no age penalty" row
  int64_t memory = 0;
  double bits_per_byte = 0;
  int64_t bytes = 0;
  // The kNN layer's mean mix weight of memory over queries that had
  // memory, averaged over heads; NaN without memory.
  double memory_share = std::nan("");
  bool approximate = false;  // memory's streams were APPROXIMATE
  // Bits per byte on the far repeats (far_repeats.h) and on the other bytes;
  // NaN when not measured (rows of older files).
  double far_bits_per_byte = std::nan("");
  int64_t far_bytes = 0;
  double rest_bits_per_byte = std::nan("");
};

// {"rows": [...]}, one object per row, one row per line (base/json.h);
// doubles with 6 significant digits, NaN as null.
absl::Status WriteJson(const std::string& path,
                       const std::vector<EvalRow>& rows);
// The rows of a file WriteJson wrote (or an older one, whose rows lack the
// members added since: they keep EvalRow's defaults); NOT_FOUND when it
// cannot be read; INVALID_ARGUMENT when it is not JSON with a "rows" array
// that holds rows ("holds no rows of eval --json"), or naming the row that
// lacks a member or has one of another type.
absl::StatusOr<std::vector<EvalRow>> ReadJson(const std::string& path);
// Bits per byte against memory size (log scale), a line per checkpoint
// (through its EXACT rows, and its APPROXIMATE ones at sizes without an
// EXACT row), drawn by gnuplot.
absl::Status WritePlot(const std::string& path,
                       const std::vector<std::string>& checkpoints,
                       const std::vector<EvalRow>& rows);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_EVAL_ROWS_H_
