// The CLI's documented random rows, so that anyone can regenerate them:
// element i of stream `seed` is 2 * u - 1 with u = (splitmix64_i(seed) >> 40)
// * 2^-24, where splitmix64_i is the i-th output (i = 0, 1, ...) of
// SplitMix64 started at state `seed`. `append --random N --seed S` draws the
// keys [N, heads, key_dim] from seed S and the values [N, heads, value_dim]
// from seed S + 1; `search --random N --seed S` draws queries from seed S.
#ifndef KNNMEM_CLIENT_RANDOM_ROWS_H_
#define KNNMEM_CLIENT_RANDOM_ROWS_H_

#include <cstddef>
#include <cstdint>
#include <vector>

namespace knnmem::client {

std::vector<float> RandomUniform(uint64_t seed, size_t count);

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_RANDOM_ROWS_H_
