// Int8 codes of keys: each key row as int8 with one float32 scale, a quarter
// of the float32 bytes. A few-query scan reads the codes and scores again,
// in float32, only the rows that may enter the top k
// (server/search/int8_list_scan.h, which proves the bound).
#ifndef KNNMEM_SERVER_MEMORY_INT8_CODES_H_
#define KNNMEM_SERVER_MEMORY_INT8_CODES_H_

#include <cstdint>

namespace knnmem {

// The codes and scales of `rows` float32 keys of `dim` elements (finite):
// codes[r * dim + d] = round(keys / scales[r]), scales[r] = max_d |k_d| / 127;
// a zero row has scale 0.
void QuantizeRows(const float* keys, uint32_t rows, uint32_t dim, int8_t* codes,
                  float* scales);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_MEMORY_INT8_CODES_H_
