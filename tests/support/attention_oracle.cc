#include "tests/support/attention_oracle.h"

#include <cmath>
#include <limits>

namespace knnmem::testing {

OracleAttention AttendOracle(
    const OracleMemory& memory,
    const std::map<int64_t, std::vector<float>>& values, int value_dim,
    const float* query, int head, int k, double scale, double alpha,
    double tau) {
  OracleAttention a{std::vector<double>(value_dim, 0.0),
                    -std::numeric_limits<double>::infinity()};
  const std::vector<OracleHit> hits = OracleTopK(memory, query, head, k);
  if (hits.empty()) return a;
  const int64_t newest = memory.keys.rbegin()->first;
  std::vector<double> logits;
  double max_logit = -std::numeric_limits<double>::infinity();
  for (const OracleHit& h : hits) {
    const double age = static_cast<double>(newest - h.position);
    logits.push_back(scale * (h.score - alpha * std::log1p(age / tau)));
    max_logit = std::max(max_logit, logits.back());
  }
  double sum = 0;
  for (double l : logits) sum += std::exp(l - max_logit);
  a.lse = max_logit + std::log(sum);
  for (size_t j = 0; j < hits.size(); ++j) {
    const double p = std::exp(logits[j] - a.lse);
    const std::vector<float>& v = values.at(hits[j].position);
    for (int d = 0; d < value_dim; ++d)
      a.output[d] += p * v[head * value_dim + d];
  }
  return a;
}

}  // namespace knnmem::testing
