#include "bench/data.h"

#include <cmath>
#include <random>

namespace knnmem::bench {
namespace {

void Fill(std::mt19937& rng, std::vector<float>& out, size_t count) {
  std::normal_distribution<float> normal(0.0f, 1.0f);
  out.resize(count);
  for (float& x : out) x = normal(rng);
}

// L2-normalises each consecutive `dim` floats of `v`.
void NormaliseRows(std::vector<float>& v, int dim) {
  for (size_t row = 0; row + dim <= v.size(); row += dim) {
    double sum = 0;
    for (int i = 0; i < dim; ++i) sum += double{v[row + i]} * v[row + i];
    const float inv = sum > 0 ? static_cast<float>(1.0 / std::sqrt(sum)) : 0;
    for (int i = 0; i < dim; ++i) v[row + i] *= inv;
  }
}

// Copies head h of [rows, heads, dim] into heads x [rows, dim].
std::vector<std::vector<float>> SplitHeads(const std::vector<float>& v,
                                           int64_t rows, int heads, int dim) {
  std::vector<std::vector<float>> out(heads);
  for (int h = 0; h < heads; ++h) {
    out[h].resize(static_cast<size_t>(rows) * dim);
    for (int64_t r = 0; r < rows; ++r) {
      const float* src = v.data() + (r * heads + h) * dim;
      std::copy(src, src + dim, out[h].data() + r * dim);
    }
  }
  return out;
}

}  // namespace

BenchData MakeBenchData(const Shape& shape, uint32_t seed) {
  BenchData d;
  d.shape = shape;
  std::mt19937 rng(seed);
  const size_t tokens = static_cast<size_t>(shape.entries) * shape.heads;
  Fill(rng, d.keys, tokens * shape.key_dim);
  Fill(rng, d.values, tokens * shape.value_dim);
  Fill(rng, d.queries,
       static_cast<size_t>(shape.queries) * shape.heads * shape.key_dim);
  NormaliseRows(d.keys, shape.key_dim);
  NormaliseRows(d.queries, shape.key_dim);
  d.head_keys = SplitHeads(d.keys, shape.entries, shape.heads, shape.key_dim);
  d.head_queries =
      SplitHeads(d.queries, shape.queries, shape.heads, shape.key_dim);
  return d;
}

}  // namespace knnmem::bench
