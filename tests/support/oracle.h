// Brute-force oracle for top-k inner-product search, written independently
// of the server's kernel: double-precision dot products over every retained
// entry, then a full sort.
#ifndef KNNMEM_TESTS_SUPPORT_ORACLE_H_
#define KNNMEM_TESTS_SUPPORT_ORACLE_H_

#include <cstdint>
#include <map>
#include <string>
#include <vector>

namespace knnmem::testing {

// The memory of one (stream, layer) as the test wrote it: for each
// position, float32 keys [heads, key_dim] (already rounded to the storage
// dtype where it matters).
struct OracleMemory {
  int heads = 0;
  int key_dim = 0;
  std::map<int64_t, std::vector<float>> keys;  // position -> [heads, key_dim]
};

struct OracleHit {
  double score;
  int64_t position;
};

// Top-k hits (best first) of query [heads, key_dim] row `q` for `head`.
std::vector<OracleHit> OracleTopK(const OracleMemory& memory,
                                  const float* query, int head, int k);

// Checks one (query, head) answer against the oracle. Positions may differ
// only where the oracle's scores tie within `tolerance`; every returned
// score must be the true score of its returned position; missing entries
// must be (-inf, -1). Returns "" when the answer is right, else a
// description of the first difference.
std::string CompareWithOracle(const OracleMemory& memory, const float* query,
                              int head, int k, const float* scores,
                              const int64_t* positions, double tolerance);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_ORACLE_H_
