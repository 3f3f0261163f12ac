// Rows of a packed array copied to shuffled places of another buffer, as a
// layer's blocks hold the keys of an approximate list: for the kernels that
// read rows by address.
#ifndef KNNMEM_TESTS_SUPPORT_SCATTERED_ROWS_H_
#define KNNMEM_TESTS_SUPPORT_SCATTERED_ROWS_H_

#include <algorithm>
#include <cstdint>
#include <cstring>
#include <numeric>
#include <random>
#include <string>
#include <vector>

namespace knnmem::testing {

struct ScatteredRows {
  std::string bytes;                // every row, at a shuffled place
  std::vector<const char*> row_at;  // where row r of the packed array is
};

// `packed` holds rows of `row_bytes` one after another.
inline ScatteredRows Scatter(const std::string& packed, size_t row_bytes,
                             std::mt19937& rng) {
  const size_t rows = packed.size() / row_bytes;
  std::vector<size_t> place(rows);
  std::iota(place.begin(), place.end(), size_t{0});
  std::shuffle(place.begin(), place.end(), rng);
  ScatteredRows out{std::string(packed.size(), '\0'), {}};
  out.row_at.resize(rows);
  for (size_t r = 0; r < rows; ++r) {
    std::memcpy(out.bytes.data() + place[r] * row_bytes,
                packed.data() + r * row_bytes, row_bytes);
    out.row_at[r] = out.bytes.data() + place[r] * row_bytes;
  }
  return out;
}

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_SCATTERED_ROWS_H_
