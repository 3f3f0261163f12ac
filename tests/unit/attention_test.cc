#include "server/search/attention.h"

#include <gtest/gtest.h>

#include <random>

#include "tests/support/attention_oracle.h"

namespace knnmem {
namespace {

using testing::AttendOracle;
using testing::OracleAttention;
using testing::OracleMemory;

struct Case {
  DType dtype;
  int64_t appended;
  uint64_t capacity;
  bool age_penalty;
};

class AttentionTest : public ::testing::TestWithParam<Case> {};

TEST_P(AttentionTest, EqualsSoftmaxOverTheBruteForceTopK) {
  const Case c = GetParam();
  StreamSpec spec;
  spec.layers = 1;
  spec.heads = 3;
  spec.key_dim = 32;
  spec.value_dim = 12;
  spec.capacity = c.capacity;
  spec.storage_dtype = c.dtype;
  LayerMemory memory(spec);
  OracleMemory oracle{3, 32, {}};
  std::map<int64_t, std::vector<float>> values;
  std::mt19937 rng(21);
  std::normal_distribution<float> normal;
  const size_t ke = 3 * 32, ve = 3 * 12, es = ElementSize(c.dtype);
  std::vector<float> k(c.appended * ke), v(c.appended * ve);
  for (float& x : k) x = normal(rng);
  for (float& x : v) x = normal(rng);
  const std::string kb = PackFloats(k, c.dtype), vb = PackFloats(v, c.dtype);
  const std::vector<float> rk = UnpackFloats(kb, c.dtype),
                           rv = UnpackFloats(vb, c.dtype);
  {
    knnmem::MutexLock lock(&memory.append_mutex());
    memory.AppendRows(kb.data(), ke * es, vb.data(), ve * es, c.appended);
  }
  for (int64_t p = std::max<int64_t>(0, c.appended - c.capacity);
       p < c.appended; ++p) {
    oracle.keys[p].assign(rk.begin() + p * ke, rk.begin() + (p + 1) * ke);
    values[p].assign(rv.begin() + p * ve, rv.begin() + (p + 1) * ve);
  }
  const uint32_t n = 9, topk = 16;
  std::vector<float> queries(n * ke);
  for (float& x : queries) x = normal(rng);
  WorkerPool pool(2);
  const LayerSnapshot snapshot = memory.Snapshot();
  SearchOptions so;
  so.k = topk;
  const Neighbours top = ExactSearch(spec, snapshot, queries, so, pool).value();
  AttendOptions ao;
  ao.scale = {0.5f, 0.17f, 1.0f};
  if (c.age_penalty) {
    ao.age_alpha = {0.0f, 2.0f, 0.7f};
    ao.age_tau = 50.0f;
  }
  const Attention r = Attend(spec, snapshot, top, ao, pool);
  ASSERT_EQ(r.output.size(), size_t{n} * 3 * 12);
  for (uint32_t q = 0; q < n; ++q) {
    for (int h = 0; h < 3; ++h) {
      const OracleAttention want = AttendOracle(
          oracle, values, 12, queries.data() + q * ke, h, topk, ao.scale[h],
          c.age_penalty ? ao.age_alpha[h] : 0.0, ao.age_tau);
      const float lse = r.lse[q * 3 + h];
      if (std::isinf(want.lse)) {
        EXPECT_TRUE(std::isinf(lse) && lse < 0);
      } else {
        EXPECT_NEAR(lse, want.lse, 1e-4 * std::max(1.0, std::abs(want.lse)));
      }
      for (int d = 0; d < 12; ++d) {
        EXPECT_NEAR(r.output[(q * 3 + h) * 12 + d], want.output[d], 1e-4)
            << "query " << q << " head " << h << " dim " << d;
      }
    }
  }
}

INSTANTIATE_TEST_SUITE_P(
    Cases, AttentionTest,
    ::testing::Values(Case{DType::kFloat32, 3000, 100000, false},
                      Case{DType::kFloat32, 3000, 1000, true},
                      Case{DType::kFloat16, 2000, 100000, true},
                      Case{DType::kBFloat16, 500, 100000, false},
                      Case{DType::kFloat32, 5, 100000, true},
                      Case{DType::kFloat32, 0, 10, false}));

}  // namespace
}  // namespace knnmem
