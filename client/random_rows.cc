#include "client/random_rows.h"

namespace knnmem {

std::vector<float> RandomUniform(uint64_t seed, size_t count) {
  std::vector<float> out(count);
  uint64_t state = seed;
  for (size_t i = 0; i < count; ++i) {
    uint64_t z = (state += 0x9e3779b97f4a7c15ull);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ull;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebull;
    z ^= z >> 31;
    out[i] = static_cast<float>(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
  }
  return out;
}

}  // namespace knnmem
