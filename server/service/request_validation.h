// Request validation: turns wire requests into typed commands, once, at the
// edge. Every error is INVALID_ARGUMENT and its message starts with the
// request field it is about (for example "keys.shape[2] = 64, want 128").
// Deeper layers trust the commands and do not re-check shapes.
#ifndef KNNMEM_SERVER_SERVICE_REQUEST_VALIDATION_H_
#define KNNMEM_SERVER_SERVICE_REQUEST_VALIDATION_H_

#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "knnmem/v1/memory.pb.h"
#include "proto/tensor_codec.h"
#include "server/spec/stream_spec.h"
#include "server/store/commands.h"

namespace knnmem {

// Wire spec to StreamSpec: unspecified index and storage dtype default to
// EXACT and FLOAT32; everything else must be within the limits.
absl::StatusOr<StreamSpec> SpecFromProto(const v1::StreamSpec& spec);
void SpecToProto(const StreamSpec& spec, v1::StreamSpec* out);

// Checks an Append against the stream's spec: layer in range, keys
// [t, heads, key_dim] and values [t, heads, value_dim] float tensors of the
// same dtype and t, finite, and positions that stay below kMaxPosition.
// The command views the request's bytes: it must not outlive `request`.
absl::StatusOr<AppendCommand> ValidateAppend(const v1::AppendRequest& request,
                                             const StreamSpec& spec);

// Checks a Search: layer in range, queries [n, heads, key_dim] finite, k in
// [1, kMaxK]. Decodes the queries to float32.
absl::StatusOr<SearchCommand> ValidateSearch(const v1::SearchRequest& request,
                                             const StreamSpec& spec);

// Checks an Attend like a Search, plus: scale and age_alpha hold 0, 1 or
// `heads` finite values (scale > 0), and age_tau is finite and > 0 when
// age_alpha is set. Expands both to one value per head.
absl::StatusOr<AttendCommand> ValidateAttend(const v1::AttendRequest& request,
                                             const StreamSpec& spec);

// The checks of a DecodeStep that concern the whole call: 1 to kMaxSteps
// steps, k in [1, kMaxK].
absl::Status ValidateDecodeStepCall(const v1::DecodeStepRequest& request);

// Checks steps[i] of a DecodeStep against its stream's spec: rows as an
// Append's (if keys or values are set), queries as an Attend's (if set),
// at least one of the two, and the call's scale and age penalty against
// the stream's heads. Messages name "steps[i].FIELD". The command views
// the request's bytes: it must not outlive `request`.
absl::StatusOr<StepCommand> ValidateStep(const v1::DecodeStepRequest& request,
                                         int i, const StreamSpec& spec);

// Puts "steps[i]." before a message that starts with a field of the step
// (a failure of steps[i] alone). OK stays OK.
absl::Status InStep(int i, const absl::Status& s);

// Bytes a DecodeStepResponse for `steps` will take (a close upper bound).
size_t DecodeStepResponseBytes(absl::Span<const StepCommand> steps);

// Bytes a SearchResponse for `cmd` will take on the wire (a close upper
// bound), to refuse answers over the message size limit before computing them.
size_t SearchResponseBytes(const SearchCommand& cmd);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_REQUEST_VALIDATION_H_
