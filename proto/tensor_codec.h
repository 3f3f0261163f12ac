// Tensor codec: the one place that knows how vectors are laid out on the wire.
//
// Vectors travel as raw little-endian bytes in one of three float formats.
// This module converts between them and float32, checks shapes, and builds or
// reads knnmem.v1.Tensor messages. The server and the client both use it.
#ifndef KNNMEM_PROTO_TENSOR_CODEC_H_
#define KNNMEM_PROTO_TENSOR_CODEC_H_

#include <cstddef>
#include <cstdint>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "absl/types/span.h"
#include "knnmem/v1/memory.pb.h"

namespace knnmem {

// Storage and transport formats for floats. Values equal knnmem.v1.DType.
enum class DType : int {
  kFloat32 = 1,
  kFloat16 = 2,   // IEEE 754 binary16
  kBFloat16 = 3,  // upper half of binary32, round to nearest even
};

// Bytes per element: 4 or 2.
size_t ElementSize(DType dtype);
// "float32", "float16" or "bfloat16".
const char* DTypeName(DType dtype);
// Maps a wire dtype to DType; INVALID_ARGUMENT naming `field` for anything
// but FLOAT32, FLOAT16 and BFLOAT16.
absl::StatusOr<DType> DTypeFromProto(v1::DType dtype, absl::string_view field);
v1::DType DTypeToProto(DType dtype);

// Scalar conversions. Rounding is to nearest even; NaN stays NaN, overflow
// becomes infinity.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
uint16_t FloatToBFloat16(float f);
float BFloat16ToFloat(uint16_t b);

// Converts `count` floats to `dtype` into `out`, which holds
// count * ElementSize(dtype) bytes.
void EncodeFloats(const float* in, size_t count, DType dtype, void* out);
// Converts `count` elements of `dtype` at `in` to float32 into `out`.
void DecodeFloats(const void* in, size_t count, DType dtype, float* out);

// Converts `count` elements of `from` at `in` to `to`, through float32 in
// small chunks (no float32 copy of the whole input).
std::string TranscodeFloats(const void* in, size_t count, DType from, DType to);

// Convenience wrappers over the two functions above.
std::string PackFloats(absl::Span<const float> values, DType dtype);
std::vector<float> UnpackFloats(absl::string_view bytes, DType dtype);

// True when every element of `count` elements of `dtype` is finite.
bool AllFinite(const void* data, size_t count, DType dtype);
// True when every element is finite and at most `bound` in magnitude.
bool AllWithin(const void* data, size_t count, DType dtype, float bound);
// The largest finite magnitude `dtype` holds.
float LargestFinite(DType dtype);

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
