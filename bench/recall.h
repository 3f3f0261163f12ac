// Top-k answers in one layout for every system, and recall@k between them.
//
// Contract: TopK holds, per head, the ids (stream positions; FAISS labels
// equal positions because rows are added in position order) of the k best
// entries of each query, [queries, k] row-major, -1 for an empty slot.
// RecallAtK is |found ∩ truth| / |truth without -1| averaged over every
// (query, head) of `found`, whose heads may be the first few of `truth`'s;
// order within the k does not matter.
#ifndef KNNMEM_BENCH_RECALL_H_
#define KNNMEM_BENCH_RECALL_H_

#include <cstdint>
#include <vector>

namespace knnmem::bench {

struct TopK {
  int queries = 0;
  int heads = 0;
  int k = 0;
  std::vector<std::vector<int64_t>> ids;  // heads x [queries, k]
};

// Builds TopK from a [queries, heads, k] positions array (a knnmem answer).
TopK TopKFromPositions(const std::vector<int64_t>& positions, int queries,
                       int heads, int k);

// Mean recall of `found` against `truth`; NaN when the shapes differ.
double RecallAtK(const TopK& truth, const TopK& found);

}  // namespace knnmem::bench

#endif  // KNNMEM_BENCH_RECALL_H_
