// Hashes stable across processes, builds and languages (unlike absl::Hash,
// which is seeded per process): the model's train/validation split and the
// sharded clients' placement of streams depend on them, so a change here
// moves documents and streams. The Python client implements the same. And
// SplitMix64, the generator of the CLI's --random rows and the bench's
// decode data.
#ifndef KNNMEM_BASE_STABLE_HASH_H_
#define KNNMEM_BASE_STABLE_HASH_H_

#include <cstdint>

#include "absl/strings/string_view.h"

namespace knnmem {

// 64-bit FNV-1a of `text`.
inline uint64_t Fnv1a64(absl::string_view text) {
  uint64_t hash = 0xcbf29ce484222325ULL;
  for (const unsigned char c : text) {
    hash ^= c;
    hash *= 0x100000001b3ULL;
  }
  return hash;
}

// SplitMix64's finaliser (Stafford's Mix13): every output bit depends on
// every input bit.
inline uint64_t SplitMix64Finalize(uint64_t z) {
  z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
  z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
  return z ^ (z >> 31);
}

// The next value of the SplitMix64 sequence whose state is *state.
inline uint64_t SplitMix64Next(uint64_t* state) {
  return SplitMix64Finalize(*state += 0x9e3779b97f4a7c15ULL);
}

// Fnv1a64, then SplitMix64's finaliser: well mixed in every bit, so that
// rendezvous hashing over it spreads streams evenly.
inline uint64_t MixedHash64(absl::string_view text) {
  return SplitMix64Finalize(Fnv1a64(text));
}

}  // namespace knnmem

#endif  // KNNMEM_BASE_STABLE_HASH_H_
