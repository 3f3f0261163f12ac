#include "bench/recall.h"

#include <algorithm>
#include <limits>

namespace knnmem::bench {

TopK TopKFromPositions(const std::vector<int64_t>& positions, int queries,
                       int heads, int k) {
  TopK t;
  t.queries = queries;
  t.heads = heads;
  t.k = k;
  t.ids.assign(heads, std::vector<int64_t>(static_cast<size_t>(queries) * k));
  for (int q = 0; q < queries; ++q) {
    for (int h = 0; h < heads; ++h) {
      const int64_t* src = positions.data() + (int64_t{q} * heads + h) * k;
      std::copy(src, src + k, t.ids[h].data() + int64_t{q} * k);
    }
  }
  return t;
}

double RecallAtK(const TopK& truth, const TopK& found) {
  if (truth.queries != found.queries || found.heads > truth.heads ||
      truth.k != found.k ||
      truth.ids.size() != static_cast<size_t>(truth.heads) ||
      found.ids.size() != static_cast<size_t>(found.heads)) {
    return std::numeric_limits<double>::quiet_NaN();
  }
  double sum = 0;
  int64_t lists = 0;
  std::vector<int64_t> a, b;
  for (int h = 0; h < found.heads; ++h) {
    for (int q = 0; q < truth.queries; ++q) {
      const size_t off = static_cast<size_t>(q) * truth.k;
      a.assign(truth.ids[h].begin() + off,
               truth.ids[h].begin() + off + truth.k);
      b.assign(found.ids[h].begin() + off,
               found.ids[h].begin() + off + truth.k);
      a.erase(std::remove(a.begin(), a.end(), -1), a.end());
      b.erase(std::remove(b.begin(), b.end(), -1), b.end());
      if (a.empty()) continue;
      std::sort(a.begin(), a.end());
      std::sort(b.begin(), b.end());
      std::vector<int64_t> common;
      std::set_intersection(a.begin(), a.end(), b.begin(), b.end(),
                            std::back_inserter(common));
      sum += static_cast<double>(common.size()) / static_cast<double>(a.size());
      ++lists;
    }
  }
  return lists == 0 ? std::numeric_limits<double>::quiet_NaN()
                    : sum / static_cast<double>(lists);
}

}  // namespace knnmem::bench
