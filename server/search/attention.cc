#include "server/search/attention.h"

#include <algorithm>
#include <cmath>
#include <limits>

namespace knnmem {

Attention Attend(const StreamSpec& spec, const LayerSnapshot& snapshot,
                 const Neighbours& top, const AttendOptions& options,
                 WorkerPool& pool) {
  const uint32_t heads = spec.heads, dv = spec.value_dim, k = top.k;
  Attention r;
  r.queries = top.queries;
  r.heads = heads;
  r.value_dim = dv;
  r.output.assign(size_t{top.queries} * heads * dv, 0.0f);
  r.lse.assign(size_t{top.queries} * heads,
               -std::numeric_limits<float>::infinity());
  const int64_t newest = snapshot.next_position - 1;
  const size_t es = ElementSize(spec.storage_dtype);
  constexpr uint32_t kQueriesPerTask = 64;
  const uint32_t tasks = (top.queries + kQueriesPerTask - 1) / kQueriesPerTask;
  pool.ParallelFor(tasks, [&](size_t task) {
    std::vector<float> logits(k), value(dv);
    std::vector<const char*> rows(k);
    const uint32_t q0 = static_cast<uint32_t>(task) * kQueriesPerTask;
    const uint32_t q1 = std::min(top.queries, q0 + kQueriesPerTask);
    for (uint32_t q = q0; q < q1; ++q) {
      for (uint32_t h = 0; h < heads; ++h) {
        const size_t base = (size_t{q} * heads + h) * k;
        const float* scores = top.scores.data() + base;
        const int64_t* positions = top.positions.data() + base;
        uint32_t n = 0;  // entries present: they come first, best first
        while (n < k && positions[n] >= 0) ++n;
        if (n == 0) continue;
        const float scale = options.scale[h];
        const float alpha =
            options.age_alpha.empty() ? 0.0f : options.age_alpha[h];
        float max_logit = -std::numeric_limits<float>::infinity();
        for (uint32_t j = 0; j < n; ++j) {
          float s = scores[j];
          if (alpha != 0.0f) {
            const float age = static_cast<float>(newest - positions[j]);
            s -= alpha * std::log1p(age / options.age_tau);
          }
          logits[j] = scale * s;
          max_logit = std::max(max_logit, logits[j]);
        }
        double sum = 0;
        for (uint32_t j = 0; j < n; ++j) {
          logits[j] = std::exp(logits[j] - max_logit);
          sum += logits[j];
        }
        float* out = r.output.data() + (size_t{q} * heads + h) * dv;
        const float inv = static_cast<float>(1.0 / sum);
        // The rows are scattered and cold (a decode step reads each once):
        // ask for all of them before the first is used.
        for (uint32_t j = 0; j < n; ++j) {
          const Block& b = snapshot.BlockOf(positions[j]);
          rows[j] =
              b.values(h) +
              static_cast<size_t>(positions[j] - b.first_position()) * dv * es;
          for (size_t line = 0; line < dv * es; line += 64) {
            __builtin_prefetch(rows[j] + line);
          }
        }
        for (uint32_t j = 0; j < n; ++j) {
          const float* v = reinterpret_cast<const float*>(rows[j]);
          if (spec.storage_dtype != DType::kFloat32) {
            DecodeFloats(rows[j], dv, spec.storage_dtype, value.data());
            v = value.data();
          }
          const float p = logits[j] * inv;
          for (uint32_t d = 0; d < dv; ++d) out[d] += p * v[d];
        }
        r.lse[size_t{q} * heads + h] =
            max_logit + static_cast<float>(std::log(sum));
      }
    }
  });
  return r;
}

}  // namespace knnmem
