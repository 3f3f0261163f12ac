// DType: the float formats vectors are stored and sent in, and conversions
// between them and float32. No protobuf: the server's core uses this, and
// only the wire codec (proto/tensor_codec.h) maps it to knnmem.v1.DType.
//
// Tensor conventions, fixed once for the whole project: vectors are
// row-major [tokens, heads, dim] (queries [n, heads, dim]) arrays of one
// DType, little-endian, without padding.
#ifndef KNNMEM_BASE_DTYPE_H_
#define KNNMEM_BASE_DTYPE_H_

#include <cstddef>
#include <cstdint>
#include <cstring>
#include <string>
#include <vector>

#include "absl/strings/string_view.h"
#include "absl/types/span.h"

namespace knnmem {

// Storage and transport formats for floats. Values equal knnmem.v1.DType.
enum class DType : int {
  kFloat32 = 1,
  kFloat16 = 2,   // IEEE 754 binary16
  kBFloat16 = 3,  // upper half of binary32, round to nearest even
};

// True when this CPU has F16C and the OS saves AVX state (CPUID: clang
// before 16 knows no "f16c" for __builtin_cpu_supports). Cached.
bool CpuHasF16c();

// Bytes per element: 4 or 2.
size_t ElementSize(DType dtype);
// "float32", "float16" or "bfloat16".
const char* DTypeName(DType dtype);
// Scalar conversions. Rounding is to nearest even; NaN stays NaN, overflow
// becomes infinity.
uint16_t FloatToHalf(float f);
float HalfToFloat(uint16_t h);
// Inline: the search kernels convert queries with it.
inline uint16_t FloatToBFloat16(float f) {
  uint32_t x;
  std::memcpy(&x, &f, sizeof x);
  if ((x & 0x7fffffffu) > 0x7f800000u) {  // NaN: keep it quiet and a NaN
    return static_cast<uint16_t>((x >> 16) | 0x40u);
  }
  return static_cast<uint16_t>((x + 0x7fffu + ((x >> 16) & 1u)) >> 16);
}
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

}  // namespace knnmem

#endif  // KNNMEM_BASE_DTYPE_H_
