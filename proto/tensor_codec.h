// Tensor codec: knnmem.v1.Tensor messages to and from DType arrays
// (base/dtype.h). Vectors travel as raw little-endian bytes in one of three
// float formats; this module checks shapes and builds or reads the messages.
// The server's service layer and the client use it.
#ifndef KNNMEM_PROTO_TENSOR_CODEC_H_
#define KNNMEM_PROTO_TENSOR_CODEC_H_

#include <cstdint>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "base/dtype.h"
#include "knnmem/v1/memory.pb.h"

namespace knnmem {

// Maps a wire dtype to DType; INVALID_ARGUMENT naming `field` for anything
// but FLOAT32, FLOAT16 and BFLOAT16.
absl::StatusOr<DType> DTypeFromProto(v1::DType dtype, absl::string_view field);
v1::DType DTypeToProto(DType dtype);

// Builds a float tensor of `shape` from float32 values, stored as `dtype`.
v1::Tensor MakeTensor(absl::Span<const float> values,
                      absl::Span<const int64_t> shape, DType dtype);

// Checks that `tensor` is a float tensor of rank shape.size() whose dims
// equal `shape` where `shape[i] >= 0` (a negative entry accepts any positive
// size) and whose byte length matches. Returns the dims. INVALID_ARGUMENT
// messages name `field` (for example "keys" or "queries").
absl::StatusOr<std::vector<int64_t>> CheckFloatTensor(
    const v1::Tensor& tensor, absl::Span<const int64_t> shape,
    absl::string_view field);

// Decodes a float tensor (any float dtype) to float32, without shape checks.
absl::StatusOr<std::vector<float>> TensorToFloats(const v1::Tensor& tensor,
                                                  absl::string_view field);

}  // namespace knnmem

#endif  // KNNMEM_PROTO_TENSOR_CODEC_H_
