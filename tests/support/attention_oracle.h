// Brute-force memory attention for tests: the oracle's top-k, then softmax
// and the weighted sum of values in double precision.
#ifndef KNNMEM_TESTS_SUPPORT_ATTENTION_ORACLE_H_
#define KNNMEM_TESTS_SUPPORT_ATTENTION_ORACLE_H_

#include <map>
#include <vector>

#include "tests/support/oracle.h"

namespace knnmem::testing {

struct OracleAttention {
  std::vector<double> output;  // [value_dim]
  double lse;                  // -inf when the memory is empty
};

// `values` maps position -> [heads, value_dim]. `alpha` = 0 means no age
// penalty; age = newest position - entry position.
OracleAttention AttendOracle(
    const OracleMemory& memory,
    const std::map<int64_t, std::vector<float>>& values, int value_dim,
    const float* query, int head, int k, double scale, double alpha,
    double tau);

}  // namespace knnmem::testing

#endif  // KNNMEM_TESTS_SUPPORT_ATTENTION_ORACLE_H_
