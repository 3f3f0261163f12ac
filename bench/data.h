// The benchmark's data: one seeded set of keys, values and queries that every
// system (knnmem and each peer) receives, in the layouts each one needs.
//
// Contract: MakeBenchData is deterministic for a given (shape, seed): every
// element is drawn from N(0, 1) by std::normal_distribution<float> over one
// std::mt19937 in the order keys, values, queries. Each key and each query
// vector (one token, one head) is then L2-normalised, as the paper does for
// the kNN layer; values are not. Row r of the wire layout is the token at
// stream position r.
#ifndef KNNMEM_BENCH_DATA_H_
#define KNNMEM_BENCH_DATA_H_

#include <cstdint>
#include <vector>

namespace knnmem::bench {

// The paper shape and the workload sizes.
struct Shape {
  int heads = 8;
  int key_dim = 128;
  int value_dim = 128;
  int queries = 512;     // queries per Search/Attend
  int batch_rows = 512;  // rows per Append (one segment)
  int k = 32;
  int64_t entries = 65536;  // rows generated: the largest memory measured
};

struct BenchData {
  Shape shape;
  // Wire layout, row-major.
  std::vector<float> keys;     // [entries, heads, key_dim]
  std::vector<float> values;   // [entries, heads, value_dim]
  std::vector<float> queries;  // [queries, heads, key_dim]
  // Per-head contiguous copies for FAISS and sgemm.
  std::vector<std::vector<float>> head_keys;     // heads x [entries, key_dim]
  std::vector<std::vector<float>> head_queries;  // heads x [queries, key_dim]

  // Rows [first, first + rows) of the wire layout.
  const float* KeyRows(int64_t first) const {
    return keys.data() + first * shape.heads * shape.key_dim;
  }
  const float* ValueRows(int64_t first) const {
    return values.data() + first * shape.heads * shape.value_dim;
  }
};

BenchData MakeBenchData(const Shape& shape, uint32_t seed);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_DATA_H_
