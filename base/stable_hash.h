// Hashes stable across processes, builds and languages (unlike absl::Hash,
// which is seeded per process): the model's train/validation split and the
// sharded clients' placement of streams depend on them, so a change here
// moves documents and streams. The Python client implements the same.
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

// Fnv1a64, then SplitMix64's finaliser: well mixed in every bit, so that
// rendezvous hashing over it spreads streams evenly.
inline uint64_t MixedHash64(absl::string_view text) {
  uint64_t h = Fnv1a64(text);
  h ^= h >> 30;
  h *= 0xbf58476d1ce4e5b9ULL;
  h ^= h >> 27;
  h *= 0x94d049bb133111ebULL;
  return h ^ (h >> 31);
}

}  // namespace knnmem

#endif  // KNNMEM_BASE_STABLE_HASH_H_
