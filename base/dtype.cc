#include "base/dtype.h"

#include <cpuid.h>
#include <immintrin.h>

#include <algorithm>
#include <cmath>
#include <cstring>
#include <limits>

#include "absl/strings/string_view.h"

namespace knnmem {
namespace {

uint32_t FloatBits(float f) {
  uint32_t u;
  std::memcpy(&u, &f, sizeof u);
  return u;
}

float BitsToFloat(uint32_t u) {
  float f;
  std::memcpy(&f, &u, sizeof f);
  return f;
}

// Bulk binary16 conversions with F16C; used only when the CPU has it.
__attribute__((target("avx,f16c"))) void FloatsToHalvesF16c(const float* in,
                                                            size_t count,
                                                            uint16_t* out) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i h =
        _mm256_cvtps_ph(_mm256_loadu_ps(in + i), _MM_FROUND_TO_NEAREST_INT);
    _mm_storeu_si128(reinterpret_cast<__m128i*>(out + i), h);
  }
  for (; i < count; ++i) out[i] = FloatToHalf(in[i]);
}

__attribute__((target("avx,f16c"))) void HalvesToFloatsF16c(const uint16_t* in,
                                                            size_t count,
                                                            float* out) {
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    __m128i h = _mm_loadu_si128(reinterpret_cast<const __m128i*>(in + i));
    _mm256_storeu_ps(out + i, _mm256_cvtph_ps(h));
  }
  for (; i < count; ++i) out[i] = HalfToFloat(in[i]);
}

}  // namespace

bool CpuHasF16c() {
  // CPUID leaf 1, ECX bit 29 (clang-14 knows no "f16c" for
  // __builtin_cpu_supports), and the OS saving AVX state.
  static const bool has = [] {
    unsigned a = 0, b = 0, c = 0, d = 0;
    return __get_cpuid(1, &a, &b, &c, &d) != 0 && (c & bit_F16C) != 0 &&
           __builtin_cpu_supports("avx");
  }();
  return has;
}

size_t ElementSize(DType dtype) { return dtype == DType::kFloat32 ? 4 : 2; }

const char* DTypeName(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return "float32";
    case DType::kFloat16:
      return "float16";
    case DType::kBFloat16:
      return "bfloat16";
  }
  return "unknown";
}

uint16_t FloatToHalf(float f) {
  const uint32_t x = FloatBits(f);
  const uint32_t sign = (x >> 16) & 0x8000u;
  const uint32_t abs = x & 0x7fffffffu;
  if (abs >= 0x7f800000u) {  // Inf or NaN
    return static_cast<uint16_t>(sign | 0x7c00u |
                                 (abs > 0x7f800000u ? 0x200u : 0u));
  }
  if (abs >= 0x477ff000u) return static_cast<uint16_t>(sign | 0x7c00u);
  if (abs < 0x38800000u) {  // subnormal or zero in binary16
    // Scale so that the binary16 subnormal unit (2^-24) becomes 1.0 and let
    // the float adder round to nearest even.
    const float scaled = BitsToFloat(abs) * 16777216.0f;  // 2^24
    return static_cast<uint16_t>(sign |
                                 static_cast<uint32_t>(std::nearbyint(scaled)));
  }
  // Normal: rebias exponent, round mantissa from 23 to 10 bits.
  const uint32_t mant_odd = (abs >> 13) & 1u;
  const uint32_t rounded = abs + 0xfffu + mant_odd;
  return static_cast<uint16_t>(sign | ((rounded - 0x38000000u) >> 13));
}

float HalfToFloat(uint16_t h) {
  const uint32_t sign = static_cast<uint32_t>(h & 0x8000u) << 16;
  const uint32_t exp = (h >> 10) & 0x1fu;
  const uint32_t mant = h & 0x3ffu;
  if (exp == 0) {
    const float v = static_cast<float>(mant) * 5.9604644775390625e-8f;  // 2^-24
    return sign ? -v : v;
  }
  if (exp == 31) return BitsToFloat(sign | 0x7f800000u | (mant << 13));
  return BitsToFloat(sign | ((exp + 112u) << 23) | (mant << 13));
}

float BFloat16ToFloat(uint16_t b) {
  return BitsToFloat(static_cast<uint32_t>(b) << 16);
}

void EncodeFloats(const float* in, size_t count, DType dtype, void* out) {
  if (count == 0) return;  // `in` and `out` may be null
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(out, in, count * sizeof(float));
      return;
    case DType::kFloat16: {
      auto* o = static_cast<uint16_t*>(out);
      if (CpuHasF16c()) {
        FloatsToHalvesF16c(in, count, o);
      } else {
        for (size_t i = 0; i < count; ++i) o[i] = FloatToHalf(in[i]);
      }
      return;
    }
    case DType::kBFloat16: {
      auto* o = static_cast<uint16_t*>(out);
      for (size_t i = 0; i < count; ++i) o[i] = FloatToBFloat16(in[i]);
      return;
    }
  }
}

void DecodeFloats(const void* in, size_t count, DType dtype, float* out) {
  if (count == 0) return;  // `in` and `out` may be null
  switch (dtype) {
    case DType::kFloat32:
      std::memcpy(out, in, count * sizeof(float));
      return;
    case DType::kFloat16: {
      const auto* i16 = static_cast<const uint16_t*>(in);
      if (CpuHasF16c()) {
        HalvesToFloatsF16c(i16, count, out);
      } else {
        for (size_t i = 0; i < count; ++i) out[i] = HalfToFloat(i16[i]);
      }
      return;
    }
    case DType::kBFloat16: {
      const auto* i16 = static_cast<const uint16_t*>(in);
      for (size_t i = 0; i < count; ++i) out[i] = BFloat16ToFloat(i16[i]);
      return;
    }
  }
}

std::string TranscodeFloats(const void* in, size_t count, DType from,
                            DType to) {
  constexpr size_t kChunk = 4096;
  std::string out(count * ElementSize(to), '\0');
  float tmp[kChunk];
  const char* src = static_cast<const char*>(in);
  for (size_t i = 0; i < count; i += kChunk) {
    const size_t n = std::min(kChunk, count - i);
    DecodeFloats(src + i * ElementSize(from), n, from, tmp);
    EncodeFloats(tmp, n, to, out.data() + i * ElementSize(to));
  }
  return out;
}

std::string PackFloats(absl::Span<const float> values, DType dtype) {
  std::string out(values.size() * ElementSize(dtype), '\0');
  EncodeFloats(values.data(), values.size(), dtype, out.data());
  return out;
}

std::vector<float> UnpackFloats(absl::string_view bytes, DType dtype) {
  std::vector<float> out(bytes.size() / ElementSize(dtype));
  DecodeFloats(bytes.data(), out.size(), dtype, out.data());
  return out;
}

bool AllFinite(const void* data, size_t count, DType dtype) {
  if (dtype == DType::kFloat32) {
    const auto* p = static_cast<const uint32_t*>(data);
    uint32_t bad = 0;
    for (size_t i = 0; i < count; ++i) {
      // Exponent all ones means Inf or NaN.
      bad |= static_cast<uint32_t>((p[i] & 0x7f800000u) == 0x7f800000u);
    }
    return bad == 0;
  }
  const uint16_t mask = dtype == DType::kFloat16 ? 0x7c00u : 0x7f80u;
  const auto* p = static_cast<const uint16_t*>(data);
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i) {
    bad |= static_cast<uint32_t>((p[i] & mask) == mask);
  }
  return bad == 0;
}

float LargestFinite(DType dtype) {
  switch (dtype) {
    case DType::kFloat32:
      return std::numeric_limits<float>::max();
    case DType::kFloat16:
      return 65504.0f;
    case DType::kBFloat16:
      return BFloat16ToFloat(0x7f7f);
  }
  return 0;
}

namespace {

// True when no element's masked bits exceed `limit`: one pass, vectorised
// with AVX2 where the CPU has it.
__attribute__((target("avx2"))) bool Below32Avx2(const uint32_t* p,
                                                 size_t count, uint32_t limit) {
  const __m256i mask = _mm256_set1_epi32(0x7fffffff);
  // Signed compare is exact: masked values and the limit are < 2^31.
  const __m256i lim = _mm256_set1_epi32(static_cast<int>(limit));
  __m256i bad = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 8 <= count; i += 8) {
    const __m256i v = _mm256_and_si256(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), mask);
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi32(v, lim));
  }
  uint32_t tail = 0;
  for (; i < count; ++i)
    tail |= static_cast<uint32_t>((p[i] & 0x7fffffffu) > limit);
  return _mm256_testz_si256(bad, bad) && tail == 0;
}

__attribute__((target("avx2"))) bool Below16Avx2(const uint16_t* p,
                                                 size_t count, uint16_t limit) {
  const __m256i mask = _mm256_set1_epi16(0x7fff);
  const __m256i lim = _mm256_set1_epi16(static_cast<int16_t>(limit));
  __m256i bad = _mm256_setzero_si256();
  size_t i = 0;
  for (; i + 16 <= count; i += 16) {
    const __m256i v = _mm256_and_si256(
        _mm256_loadu_si256(reinterpret_cast<const __m256i*>(p + i)), mask);
    bad = _mm256_or_si256(bad, _mm256_cmpgt_epi16(v, lim));
  }
  uint32_t tail = 0;
  for (; i < count; ++i)
    tail |= static_cast<uint32_t>((p[i] & 0x7fffu) > limit);
  return _mm256_testz_si256(bad, bad) && tail == 0;
}

bool HasAvx2() {
  static const bool has = __builtin_cpu_supports("avx2");
  return has;
}

}  // namespace

bool AllWithin(const void* data, size_t count, DType dtype, float bound) {
  // Magnitudes compare like their bit patterns once the sign is masked off,
  // and NaN and Inf sort above every finite bound.
  if (dtype == DType::kFloat32) {
    const uint32_t limit = FloatBits(bound) & 0x7fffffffu;
    const auto* p = static_cast<const uint32_t*>(data);
    if (HasAvx2()) return Below32Avx2(p, count, limit);
    uint32_t bad = 0;
    for (size_t i = 0; i < count; ++i)
      bad |= static_cast<uint32_t>((p[i] & 0x7fffffffu) > limit);
    return bad == 0;
  }
  const bool half = dtype == DType::kFloat16;
  uint16_t limit =
      bound >= LargestFinite(dtype)
          ? static_cast<uint16_t>(half ? 0x7bff : 0x7f7f)
          : static_cast<uint16_t>(
                (half ? FloatToHalf(bound) : FloatToBFloat16(bound)) & 0x7fff);
  // Rounding may have gone up: step down to the largest value <= bound.
  while (limit > 0 &&
         (half ? HalfToFloat(limit) : BFloat16ToFloat(limit)) > bound)
    --limit;
  const auto* p = static_cast<const uint16_t*>(data);
  if (HasAvx2()) return Below16Avx2(p, count, limit);
  uint32_t bad = 0;
  for (size_t i = 0; i < count; ++i)
    bad |= static_cast<uint32_t>((p[i] & 0x7fffu) > limit);
  return bad == 0;
}

}  // namespace knnmem
