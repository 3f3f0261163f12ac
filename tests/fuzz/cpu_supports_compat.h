// Force-included (-include) into base/dtype.cc when the compiler's
// __builtin_cpu_supports does not know "f16c" (clang before 16: "invalid cpu
// feature string for builtin"; GCC, which the main build uses, knows it).
// Answers the question dtype.cc asks with CPUID and XGETBV, as
// GCC does: F16C, and AVX with the YMM state enabled by the OS. Any other
// feature string answers false, i.e. the portable code path.
#ifndef KNNMEM_TESTS_FUZZ_CPU_SUPPORTS_COMPAT_H_
#define KNNMEM_TESTS_FUZZ_CPU_SUPPORTS_COMPAT_H_

#include <cpuid.h>

#include <cstring>

inline bool KnnmemFuzzCpuSupports(const char* feature) {
  if (std::strcmp(feature, "f16c") != 0) return false;
  unsigned eax = 0, ebx = 0, ecx = 0, edx = 0;
  if (__get_cpuid(1, &eax, &ebx, &ecx, &edx) == 0) return false;
  const bool osxsave = (ecx & bit_OSXSAVE) != 0;
  const bool avx = (ecx & bit_AVX) != 0;
  const bool f16c = (ecx & bit_F16C) != 0;
  if (!osxsave || !avx || !f16c) return false;
  unsigned xcr0_lo = 0, xcr0_hi = 0;
  __asm__("xgetbv" : "=a"(xcr0_lo), "=d"(xcr0_hi) : "c"(0));
  return (xcr0_lo & 0x6) == 0x6;  // XMM and YMM state
}

#define __builtin_cpu_supports(feature) KnnmemFuzzCpuSupports(feature)

#endif  // KNNMEM_TESTS_FUZZ_CPU_SUPPORTS_COMPAT_H_
