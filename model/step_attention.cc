#include "model/step_attention.h"

#include <immintrin.h>

#include <algorithm>
#include <cmath>

#include "server/search/few_query_scan.h"

namespace knnmem::model {
namespace {

FewQueryIsa Isa() {
  static const FewQueryIsa isa = FewQueryIsaOfCpu();
  return isa;
}

// out[d] += w * row[d] for d < dim.
__attribute__((target("avx2,fma"))) void AddScaled(float w, const float* row,
                                                   uint32_t dim, float* out) {
  const __m256 ww = _mm256_set1_ps(w);
  uint32_t d = 0;
  for (; d + 8 <= dim; d += 8) {
    _mm256_storeu_ps(out + d, _mm256_fmadd_ps(ww, _mm256_loadu_ps(row + d),
                                              _mm256_loadu_ps(out + d)));
  }
  for (; d < dim; ++d) out[d] += w * row[d];
}

// A part's tensor with each (lane, head)'s rows packed, [B, H, n, Dh].
torch::Tensor RowsPacked(const torch::Tensor& t) {
  return t.stride(3) == 1 && t.stride(2) == t.size(3) ? t : t.contiguous();
}

}  // namespace

bool StepAttentionAvailable() { return Isa() != FewQueryIsa::kNone; }

StepAttentionResult StepAttention(const torch::Tensor& q,
                                  const std::vector<torch::Tensor>& keys,
                                  const std::vector<torch::Tensor>& values,
                                  int64_t cache_rows,
                                  const torch::Tensor& cache_valid,
                                  const torch::Tensor& factor,
                                  const torch::Tensor& position_bias,
                                  const std::vector<int64_t>& distance_bucket) {
  const int64_t b = q.size(0), h = q.size(1), dh = q.size(3);
  std::vector<torch::Tensor> ks, vs;
  int64_t n = 0;
  for (size_t i = 0; i < keys.size(); ++i) {
    ks.push_back(RowsPacked(keys[i]));
    vs.push_back(RowsPacked(values[i]));
    n += keys[i].size(2);
  }
  const torch::Tensor queries = q.contiguous();
  const torch::Tensor f = factor.contiguous();
  const torch::Tensor bias = position_bias.contiguous();
  const torch::Tensor valid = cache_valid.to(torch::kBool).contiguous();
  const int64_t buckets = bias.size(1);
  StepAttentionResult r{torch::zeros({b, h, 1, dh}), torch::empty({b, h, 1})};
  std::vector<float> scores(static_cast<size_t>(n));
  const float* qp = queries.data_ptr<float>();
  const float* fp = f.data_ptr<float>();
  const float* bp = bias.data_ptr<float>();
  const bool* vp = valid.data_ptr<bool>();
  float* op = r.out.data_ptr<float>();
  float* lp = r.lse.data_ptr<float>();
  for (int64_t lane = 0; lane < b; ++lane) {
    for (int64_t head = 0; head < h; ++head) {
      const float* query = qp + (lane * h + head) * dh;
      // Scores of every key, the cache's then the segment's.
      int64_t first = 0;
      for (const torch::Tensor& part : ks) {
        const int64_t rows = part.size(2);
        const float* base = part.data_ptr<float>() + lane * part.stride(0) +
                            head * part.stride(1);
        ScoreFewQueries(Isa(), query, static_cast<size_t>(dh), 1,
                        static_cast<uint32_t>(dh),
                        reinterpret_cast<const char*>(base), DType::kFloat32,
                        static_cast<uint32_t>(rows), scores.data() + first,
                        static_cast<size_t>(rows));
        first += rows;
      }
      // Scaled, biased by distance (the query is at n - 1), masked.
      const float scale = fp[f.numel() == 1 ? 0 : head];
      const float* head_bias = bp + head * buckets;
      const int64_t stale = vp[lane] ? 0 : cache_rows;
      float top = kMasked;
      for (int64_t j = 0; j < n; ++j) {
        const float s =
            j < stale
                ? kMasked
                : scores[j] * scale +
                      head_bias[distance_bucket[static_cast<
                          size_t>(std::min<int64_t>(
                          n - 1 - j,
                          static_cast<int64_t>(distance_bucket.size()) - 1))]];
        scores[j] = s;
        top = std::max(top, s);
      }
      double sum = 0;
      for (int64_t j = 0; j < n; ++j) sum += std::exp(scores[j] - top);
      const float lse = top + static_cast<float>(std::log(sum));
      lp[lane * h + head] = lse;
      // The values, weighted.
      float* out = op + (lane * h + head) * dh;
      first = 0;
      for (const torch::Tensor& part : vs) {
        const int64_t rows = part.size(2);
        const float* base = part.data_ptr<float>() + lane * part.stride(0) +
                            head * part.stride(1);
        for (int64_t j = 0; j < rows; ++j) {
          const float w = std::exp(scores[first + j] - lse);
          if (w != 0.0f) {
            AddScaled(w, base + j * dh, static_cast<uint32_t>(dh), out);
          }
        }
        first += rows;
      }
    }
  }
  return r;
}

}  // namespace knnmem::model
