#include "tests/support/oracle.h"

#include <algorithm>
#include <cmath>
#include <set>
#include <sstream>
#include <string>

namespace knnmem::testing {
namespace {

double Dot(const float* a, const float* b, int n) {
  double s = 0;
  for (int i = 0; i < n; ++i) s += static_cast<double>(a[i]) * b[i];
  return s;
}

}  // namespace

std::vector<OracleHit> OracleTopK(const OracleMemory& memory,
                                  const float* query, int head, int k) {
  std::vector<OracleHit> all;
  for (const auto& [position, keys] : memory.keys) {
    all.push_back({Dot(query + head * memory.key_dim,
                       keys.data() + head * memory.key_dim, memory.key_dim),
                   position});
  }
  std::sort(all.begin(), all.end(), [](const OracleHit& a, const OracleHit& b) {
    return a.score > b.score || (a.score == b.score && a.position > b.position);
  });
  if (static_cast<int>(all.size()) > k) all.resize(k);
  return all;
}

std::string CompareWithOracle(const OracleMemory& memory, const float* query,
                              int head, int k, const float* scores,
                              const int64_t* positions, double tolerance) {
  const std::vector<OracleHit> want = OracleTopK(memory, query, head, k);
  std::ostringstream err;
  std::set<int64_t> seen;
  for (int j = 0; j < k; ++j) {
    if (j >= static_cast<int>(want.size())) {
      if (positions[j] != -1 || !(std::isinf(scores[j]) && scores[j] < 0)) {
        err << "rank " << j << ": want empty (-1, -inf), got (" << positions[j]
            << ", " << scores[j] << ")";
        return err.str();
      }
      continue;
    }
    // Rank j's score must match the oracle's rank-j score...
    if (std::abs(scores[j] - want[j].score) > tolerance) {
      err << "rank " << j << ": score " << scores[j] << ", oracle "
          << want[j].score << " (position " << want[j].position << ")";
      return err.str();
    }
    // ...and be the true score of the position returned.
    auto it = memory.keys.find(positions[j]);
    if (it == memory.keys.end()) {
      err << "rank " << j << ": position " << positions[j] << " is not stored";
      return err.str();
    }
    const double truth =
        Dot(query + head * memory.key_dim,
            it->second.data() + head * memory.key_dim, memory.key_dim);
    if (std::abs(scores[j] - truth) > tolerance) {
      err << "rank " << j << ": position " << positions[j] << " scored "
          << scores[j] << " but its true score is " << truth;
      return err.str();
    }
    if (!seen.insert(positions[j]).second) {
      err << "rank " << j << ": position " << positions[j] << " repeated";
      return err.str();
    }
    if (positions[j] != want[j].position &&
        std::abs(want[j].score - truth) > tolerance) {
      err << "rank " << j << ": position " << positions[j] << ", oracle "
          << want[j].position;
      return err.str();
    }
  }
  return "";
}

}  // namespace knnmem::testing
