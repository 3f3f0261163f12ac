#include "model/far_repeats.h"

#include <cstdint>

#include "absl/container/flat_hash_map.h"

namespace knnmem::model {

std::vector<bool> FarRepeats(absl::string_view text, int segment, int context) {
  const int64_t n = static_cast<int64_t>(text.size());
  std::vector<bool> far(text.size(), false);
  // Each context seen so far -> where its latest occurrence ended.
  absl::flat_hash_map<absl::string_view, int64_t> latest;
  for (int64_t p = context; p < n; ++p) {
    const absl::string_view seen = text.substr(static_cast<size_t>(p - context),
                                               static_cast<size_t>(context));
    auto [it, first] = latest.try_emplace(seen, p);
    if (first) continue;
    const int64_t window = ((p - 1) / segment - 1) * segment;
    far[static_cast<size_t>(p)] = it->second <= window;
    it->second = p;
  }
  return far;
}

}  // namespace knnmem::model
