// Memory attention: softmax over each (query, head)'s top-k scores and the
// weighted sum of the matching values, computed where the values live so
// that only output[n, heads, value_dim] and lse[n, heads] cross the network.
#ifndef KNNMEM_SERVER_SEARCH_ATTENTION_H_
#define KNNMEM_SERVER_SEARCH_ATTENTION_H_

#include <vector>

#include "base/worker_pool.h"
#include "server/memory/layer_memory.h"
#include "server/search/exact_search.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

struct AttendOptions {
  // Per head: logit = scale[h] * (score - age_alpha[h] * log1p(age / age_tau)),
  // with age = snapshot.next_position - 1 - position. age_alpha empty: no
  // penalty.
  std::vector<float> scale;      // heads values
  std::vector<float> age_alpha;  // empty or heads values
  float age_tau = 1.0f;
};

// Attend's answer.
struct Attention {
  uint32_t queries = 0;
  uint32_t heads = 0;
  uint32_t value_dim = 0;
  std::vector<float> output;  // [queries, heads, value_dim]
  std::vector<float> lse;     // [queries, heads]; -inf where nothing is stored
};

// Attends over the entries that `top` (ExactSearch's or TieredSearch's
// answer over the same snapshot) selected. Parallel over queries on `pool`.
Attention Attend(const StreamSpec& spec, const LayerSnapshot& snapshot,
                 const Neighbours& top, const AttendOptions& options,
                 WorkerPool& pool);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_ATTENTION_H_
