// SealedTier: what the RAM layer knows of an index built over a layer's
// older entries. The approximate layer's ApproximateIndex implements it, so
// that LayerMemory can hold the tier and snapshot it without depending on
// the layer above it.
#ifndef KNNMEM_SERVER_MEMORY_SEALED_TIER_H_
#define KNNMEM_SERVER_MEMORY_SEALED_TIER_H_

#include <cstddef>
#include <cstdint>

namespace knnmem {

class SealedTier {
 public:
  virtual ~SealedTier() = default;
  // Positions below this are in the tier; -1 before any. Read by
  // LayerMemory::Snapshot under the layer's lock, so that a snapshot's tier
  // never covers a position the snapshot does not retain.
  virtual int64_t indexed_end() const = 0;
  // Bytes of RAM the tier holds.
  virtual size_t bytes() const = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_MEMORY_SEALED_TIER_H_
