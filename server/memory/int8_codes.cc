#include "server/memory/int8_codes.h"

#include <algorithm>
#include <cmath>

namespace knnmem {

void QuantizeRows(const float* keys, uint32_t rows, uint32_t dim, int8_t* codes,
                  float* scales) {
  for (uint32_t r = 0; r < rows; ++r) {
    const float* k = keys + size_t{r} * dim;
    int8_t* c = codes + size_t{r} * dim;
    float largest = 0.0f;
    for (uint32_t d = 0; d < dim; ++d)
      largest = std::max(largest, std::abs(k[d]));
    const float s = largest / 127.0f;
    scales[r] = s;
    for (uint32_t d = 0; d < dim; ++d) {
      const float v = s > 0.0f ? std::nearbyint(k[d] / s) : 0.0f;
      c[d] = static_cast<int8_t>(std::clamp(v, -127.0f, 127.0f));
    }
  }
}

}  // namespace knnmem
