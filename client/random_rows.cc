#include "client/random_rows.h"

#include "base/stable_hash.h"

namespace knnmem::client {

std::vector<float> RandomUniform(uint64_t seed, size_t count) {
  std::vector<float> out(count);
  uint64_t state = seed;
  for (size_t i = 0; i < count; ++i) {
    const uint64_t z = SplitMix64Next(&state);
    out[i] = static_cast<float>(z >> 40) * (1.0f / 16777216.0f) * 2.0f - 1.0f;
  }
  return out;
}

}  // namespace knnmem::client
