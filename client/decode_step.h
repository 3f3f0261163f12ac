// The client side of DecodeStep: one generation step of many streams in
// one call. Builds the request from float32 arrays and decodes each step's
// answer, which succeeds or fails on its own.
#ifndef KNNMEM_CLIENT_DECODE_STEP_H_
#define KNNMEM_CLIENT_DECODE_STEP_H_

#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "base/dtype.h"
#include "knnmem/v1/memory.pb.h"

namespace knnmem::client {

// Decoded Attend results.
struct Attention {
  int64_t queries = 0;
  int64_t heads = 0;
  int64_t value_dim = 0;
  std::vector<float> output;  // [queries, heads, value_dim]
  std::vector<float> lse;     // [queries, heads]; -inf for an empty memory
};

// One stream's part of a step: float32 queries [n, heads, key_dim] (n may
// be 0 when it only appends), and optionally rows to append before the
// lookup: keys [t, heads, key_dim] and values [t, heads, value_dim] at
// first_position.. (empty: none). The spans must outlive the call.
struct Step {
  std::string stream_id;
  uint32_t layer = 0;
  int64_t heads = 0;
  int64_t key_dim = 0;
  int64_t value_dim = 0;  // needed only with rows to append
  absl::Span<const float> queries;
  int64_t first_position = 0;
  absl::Span<const float> keys;
  absl::Span<const float> values;
};

// What every step of a call shares.
struct StepParams {
  uint32_t k = 32;
  std::vector<float> scale;      // empty, one value, or one per head
  std::vector<float> age_alpha;  // empty: no age penalty
  float age_tau = 0;
  bool sync = false;                   // fsync the WAL for appending steps
  DType wire_dtype = DType::kFloat32;  // of appended keys and values
};

// One step's answer: its own status; when OK, the layer's next position
// after the append, and the attention of its queries (empty without).
struct StepResult {
  absl::Status status;
  int64_t next_position = 0;
  Attention attention;
};

// The request for `steps`; INVALID_ARGUMENT naming "steps[i]" when an
// input's sizes are not whole [.., heads, dim] rows.
absl::StatusOr<v1::DecodeStepRequest> MakeDecodeStepRequest(
    absl::Span<const Step> steps, const StepParams& params);

// Decodes one step's result (its status included).
StepResult DecodeStepResult(const v1::StreamStepResult& result);

// Decodes an AttendResponse's output and lse.
absl::StatusOr<Attention> DecodeAttentionTensors(const v1::Tensor& output,
                                                 const v1::Tensor& lse);

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_DECODE_STEP_H_
