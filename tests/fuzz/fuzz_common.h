// What request_fuzzer and make_corpus agree on: the layout of one fuzz input
// and the fixed stream specs it runs against.
//
// A fuzz input is
//   byte 0      the RPC (value % kRpcCount, in the order of enum Rpc)
//   byte 1      the stream spec (value % kSpecCount, an index into kSpecs)
//   byte 2      flags (kFlag*)
//   bytes 3..   the serialized request message of that RPC
#ifndef KNNMEM_TESTS_FUZZ_FUZZ_COMMON_H_
#define KNNMEM_TESTS_FUZZ_FUZZ_COMMON_H_

#include <cstddef>
#include <cstdint>

#include "server/spec/stream_spec.h"

namespace knnmem {
namespace fuzz {

enum class Rpc : uint8_t {
  kCreateStream = 0,
  kGetStream = 1,
  kListStreams = 2,
  kResetStream = 3,
  kDeleteStream = 4,
  kAppend = 5,
  kSearch = 6,
  kAttend = 7,
  kDecodeStep = 8,
};
inline constexpr uint8_t kRpcCount = 9;

inline constexpr size_t kHeaderBytes = 3;

// Append: before validation, first_position becomes the layer's next
// position minus (first_position & 7), as a client that tracks the stream
// would send (the low bits give replays of up to 7 rows). Without the flag
// the request's own first_position is used, so gaps and replays are fuzzed
// as they come.
inline constexpr uint8_t kFlagFollow = 1;
// ResetStream / DeleteStream: a valid request really drops the entries of
// the spec's stream (without it only the validation runs, so that the
// memory that Searches run against stays filled).
inline constexpr uint8_t kFlagDropEntries = 2;
// Append: the rows are staged (LayerMemory::StageRows) and the staging is
// dropped without Publish, as when the storage write fails.
inline constexpr uint8_t kFlagDiscardStaged = 4;

inline constexpr StreamSpec MakeSpec(uint32_t layers, uint32_t heads,
                                     uint32_t key_dim, uint32_t value_dim,
                                     uint64_t capacity, DType dtype) {
  StreamSpec s;
  s.layers = layers;
  s.heads = heads;
  s.key_dim = key_dim;
  s.value_dim = value_dim;
  s.capacity = capacity;
  s.index = IndexKind::kExact;
  s.storage_dtype = dtype;
  s.ttl_seconds = 0;
  return s;
}

// Heads 1..8, dims 1..64, every storage dtype, capacities from 1 to 4096
// (at most 4096 so that the fuzzer's memory stays bounded: a full layer is
// at most capacity + 2 * kMaxBlockRows rows).
inline constexpr StreamSpec kSpecs[] = {
    MakeSpec(1, 1, 1, 1, 1, DType::kFloat32),
    MakeSpec(2, 2, 3, 5, 100, DType::kFloat16),
    MakeSpec(1, 8, 16, 8, 4096, DType::kBFloat16),
    MakeSpec(3, 4, 64, 32, 1000, DType::kFloat32),
    MakeSpec(1, 3, 33, 1, 2048, DType::kFloat16),
    MakeSpec(2, 1, 8, 64, 4096, DType::kFloat32),
    MakeSpec(1, 5, 64, 2, 70, DType::kBFloat16),
};
inline constexpr size_t kSpecCount = sizeof(kSpecs) / sizeof(kSpecs[0]);

}  // namespace fuzz
}  // namespace knnmem

#endif  // KNNMEM_TESTS_FUZZ_FUZZ_COMMON_H_
