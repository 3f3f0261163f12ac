#include "server/store/memory_store.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <functional>
#include <random>
#include <string>
#include <thread>
#include <vector>

#include "absl/strings/match.h"
#include "base/temp_dir.h"
#include "tests/support/oracle.h"

namespace knnmem {
namespace {

using testing::CompareWithOracle;
using testing::OracleMemory;

StreamSpec Spec(uint64_t capacity, DType dtype = DType::kFloat32) {
  StreamSpec s;
  s.layers = 2;
  s.heads = 2;
  s.key_dim = 16;
  s.value_dim = 4;
  s.capacity = capacity;
  s.storage_dtype = dtype;
  return s;
}

class MemoryStoreTest : public ::testing::Test {
 protected:
  void Open(uint64_t memory_budget_bytes = 0, TierOptions tier = {}) {
    store_.reset();
    MemoryStore::Options options;
    options.tier = tier;
    options.data_dir = dir_.path();
    options.shards = 4;
    options.pool = &pool_;
    options.default_ttl_seconds = 100;
    options.clock = &clock_;
    options.memory_budget_bytes = memory_budget_bytes;
    options.on_load = [this](double seconds) {
      load_seconds_.push_back(seconds);
    };
    auto s = MemoryStore::Open(options);
    ASSERT_TRUE(s.ok()) << s.status();
    store_ = std::move(*s);
  }
  void SetUp() override { Open(); }

  void Create(const std::string& id, const StreamSpec& spec) {
    bool created = false;
    ASSERT_TRUE(store_->CreateStream(id, spec, &created).ok());
  }

  // Appends `rows` random rows at `first`, recording them in `oracle`.
  absl::StatusOr<AppendResult> AppendRandom(const std::string& id,
                                            const StreamSpec& spec,
                                            uint32_t layer, int64_t first,
                                            size_t rows,
                                            OracleMemory* oracle = nullptr,
                                            DType wire = DType::kFloat32) {
    std::normal_distribution<float> normal;
    std::vector<float> k(rows * spec.heads * spec.key_dim),
        v(rows * spec.heads * spec.value_dim);
    for (float& x : k) x = normal(rng_);
    for (float& x : v) x = normal(rng_);
    const std::string kb = PackFloats(k, wire), vb = PackFloats(v, wire);
    AppendCommand cmd{id, spec, layer, first, rows, wire, kb, vb, false};
    auto r = store_->Append(cmd);
    if (r.ok() && oracle != nullptr) {
      // The oracle holds keys as stored: rounded through the wire and the
      // storage dtype.
      std::vector<float> stored =
          UnpackFloats(PackFloats(UnpackFloats(kb, wire), spec.storage_dtype),
                       spec.storage_dtype);
      const size_t ke = spec.heads * spec.key_dim;
      for (size_t i = 0; i < rows; ++i) {
        if (first + int64_t(i) < r->next_position - int64_t(r->stored))
          continue;
        oracle->keys[first + i].assign(stored.begin() + i * ke,
                                       stored.begin() + (i + 1) * ke);
      }
      while (oracle->keys.size() > spec.capacity)
        oracle->keys.erase(oracle->keys.begin());
    }
    return r;
  }

  void ExpectSearchMatches(const std::string& id, const StreamSpec& spec,
                           uint32_t layer, const OracleMemory& oracle,
                           uint32_t k) {
    std::normal_distribution<float> normal;
    SearchCommand cmd{
        id, spec, layer, std::vector<float>(7 * spec.heads * spec.key_dim), {}};
    for (float& x : cmd.queries) x = normal(rng_);
    cmd.options.k = k;
    auto r = store_->Search(cmd);
    ASSERT_TRUE(r.ok()) << r.status();
    for (uint32_t q = 0; q < 7; ++q) {
      for (uint32_t h = 0; h < spec.heads; ++h) {
        const size_t base = (q * spec.heads + h) * k;
        EXPECT_EQ(
            CompareWithOracle(
                oracle, cmd.queries.data() + q * spec.heads * spec.key_dim, h,
                k, r->scores.data() + base, r->positions.data() + base, 1e-3),
            "");
      }
    }
  }

  TempDir dir_;
  FakeClock clock_;
  WorkerPool pool_{2};
  std::unique_ptr<MemoryStore> store_;
  std::mt19937 rng_{5};
  std::vector<double> load_seconds_;
};

TEST_F(MemoryStoreTest, CreateIsIdempotentForTheSameSpecOnly) {
  bool created = false;
  ASSERT_TRUE(store_->CreateStream("s", Spec(10), &created).ok());
  EXPECT_TRUE(created);
  ASSERT_TRUE(store_->CreateStream("s", Spec(10), &created).ok());
  EXPECT_FALSE(created);
  auto again = store_->CreateStream("s", Spec(11), &created);
  EXPECT_EQ(again.status().code(), absl::StatusCode::kAlreadyExists);
  EXPECT_TRUE(absl::StartsWith(again.status().message(), "stream_id: "))
      << again.status();
}

TEST_F(MemoryStoreTest, RetriedAppendIsStoredOnceAndGapFails) {
  const StreamSpec spec = Spec(1000);
  Create("s", spec);
  OracleMemory oracle{2, 16, {}};
  auto a = AppendRandom("s", spec, 0, 0, 10, &oracle);
  ASSERT_TRUE(a.ok());
  EXPECT_EQ(a->stored, 10u);
  auto replay =
      AppendRandom("s", spec, 0, 0, 10);  // different bytes, same positions
  ASSERT_TRUE(replay.ok());
  EXPECT_EQ(replay->stored, 0u);
  EXPECT_EQ(replay->next_position, 10);
  auto overlap = AppendRandom("s", spec, 0, 5, 10, &oracle);  // 5 new rows
  ASSERT_TRUE(overlap.ok());
  EXPECT_EQ(overlap->stored, 5u);
  auto gap = AppendRandom("s", spec, 0, 16, 1);
  EXPECT_EQ(gap.status().code(), absl::StatusCode::kFailedPrecondition);
  EXPECT_TRUE(absl::StartsWith(gap.status().message(), "first_position: 16"))
      << gap.status();
  ExpectSearchMatches("s", spec, 0, oracle, 20);  // the replay left no trace
  auto state = store_->GetStream("s");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->layers[0].next_position, 15);
  EXPECT_EQ(state->layers[1].next_position, 0);
}

TEST_F(MemoryStoreTest, RestartRebuildsEveryStreamExactly) {
  for (DType dtype : {DType::kFloat32, DType::kFloat16, DType::kBFloat16}) {
    const StreamSpec spec = Spec(500, dtype);
    const std::string id = std::string("s-") + DTypeName(dtype);
    Create(id, spec);
    OracleMemory oracle{2, 16, {}};
    int64_t next = 0;
    for (int i = 0; i < 9; ++i) {
      auto r = AppendRandom(id, spec, 1, next, 97, &oracle, DType::kFloat32);
      ASSERT_TRUE(r.ok()) << r.status();
      next = r->next_position;
    }
    ExpectSearchMatches(id, spec, 1, oracle, 32);
    EXPECT_TRUE(store_->VerifyAgainstStorage().ok());
    Open();  // close and reopen on the same directory
    EXPECT_TRUE(store_->VerifyAgainstStorage().ok());
    auto state = store_->GetStream(id);
    ASSERT_TRUE(state.ok()) << state.status();
    EXPECT_EQ(state->layers[1].first_position, next - 500);
    EXPECT_EQ(state->layers[1].next_position, next);
    ExpectSearchMatches(id, spec, 1, oracle, 32);
    // It keeps going where it was.
    ASSERT_TRUE(AppendRandom(id, spec, 1, next, 3, &oracle).ok());
    ExpectSearchMatches(id, spec, 1, oracle, 32);
  }
}

TEST_F(MemoryStoreTest, RestartLoadsEachStreamOnItsFirstUse) {
  const StreamSpec spec = Spec(300);
  OracleMemory oracle{2, 16, {}};
  Create("lazy", spec);
  Create("empty", spec);
  ASSERT_TRUE(AppendRandom("lazy", spec, 0, 0, 450, &oracle).ok());
  Open();
  EXPECT_EQ(store_->resident_bytes(), 0u);
  auto cold = store_->GetStream("lazy");
  ASSERT_TRUE(cold.ok());
  EXPECT_FALSE(cold->resident);
  EXPECT_EQ(cold->bytes_in_ram, 0u);
  EXPECT_EQ(cold->bytes_on_disk, 300u * (spec.RowBytes() + 21));  // + keys
  // Positions come from storage without loading the entries.
  EXPECT_EQ(cold->layers[0].first_position, 150);
  EXPECT_EQ(cold->layers[0].next_position, 450);
  EXPECT_EQ(cold->layers[1].next_position, 0);
  EXPECT_EQ(store_->residency().loads, 0u);
  ExpectSearchMatches("lazy", spec, 0, oracle, 16);  // loads it
  auto warm = store_->GetStream("lazy");
  ASSERT_TRUE(warm.ok());
  EXPECT_TRUE(warm->resident);
  EXPECT_GE(warm->bytes_in_ram, 300u * spec.RowBytes());
  EXPECT_EQ(store_->resident_bytes(), warm->bytes_in_ram);
  EXPECT_EQ(store_->residency().loads, 1u);
  EXPECT_EQ(load_seconds_.size(), 1u);
  auto empty = store_->GetStream("empty");
  ASSERT_TRUE(empty.ok());
  EXPECT_EQ(empty->layers[0].next_position, 0);
  EXPECT_TRUE(store_->VerifyAgainstStorage().ok());
}

TEST_F(MemoryStoreTest, OverBudgetTheLeastRecentlyUsedStreamsUnloadAndReload) {
  const StreamSpec spec = Spec(1000);
  // 192 rows of one layer (three 64-row blocks): 192 x 2 heads x (16 + 4)
  // x 4 bytes in RAM; the budget holds three such streams, not four.
  const uint64_t stream_bytes = 192 * spec.RowBytes();
  Open(3 * stream_bytes + stream_bytes / 2);
  std::vector<OracleMemory> oracles(6, OracleMemory{2, 16, {}});
  for (int i = 0; i < 6; ++i) {
    const std::string id = "s" + std::to_string(i);
    Create(id, spec);
    clock_.AdvanceSeconds(1);  // s0 is the least recently used
    ASSERT_TRUE(AppendRandom(id, spec, 0, 0, 192, &oracles[i]).ok());
    EXPECT_LE(store_->resident_bytes(), 3 * stream_bytes + stream_bytes / 2);
  }
  for (int i = 0; i < 6; ++i) {
    auto state = store_->GetStream("s" + std::to_string(i));
    ASSERT_TRUE(state.ok());
    EXPECT_EQ(state->resident, i >= 3) << i;
    EXPECT_EQ(state->layers[0].next_position, 192) << i;  // kept on disk
  }
  EXPECT_EQ(store_->residency().unloads, 3u);
  // The oldest comes back on its next use, exactly, and pushes out the
  // next least recently used one (s3).
  clock_.AdvanceSeconds(1);
  ExpectSearchMatches("s0", spec, 0, oracles[0], 20);
  EXPECT_TRUE(store_->GetStream("s0")->resident);
  EXPECT_FALSE(store_->GetStream("s3")->resident);
  EXPECT_EQ(store_->residency().loads, 1u);
  // Appends continue where they were, after a reload.
  clock_.AdvanceSeconds(1);
  ASSERT_TRUE(AppendRandom("s3", spec, 0, 192, 10, &oracles[3]).ok());
  ExpectSearchMatches("s3", spec, 0, oracles[3], 20);
  EXPECT_LE(store_->resident_bytes(), 3 * stream_bytes + stream_bytes / 2);
  EXPECT_TRUE(store_->VerifyAgainstStorage().ok());
  for (int i = 0; i < 6; ++i) {
    ExpectSearchMatches("s" + std::to_string(i), spec, 0, oracles[i], 20);
  }
}

TEST_F(MemoryStoreTest,
       TheServersReserveAndEveryStreamsBookkeepingShareTheBudget) {
  const StreamSpec spec = Spec(1000);
  const uint64_t stream_bytes = 192 * spec.RowBytes();  // 30,720
  const uint64_t budget = 4 * stream_bytes;
  Open(budget);
  store_->ReserveForServer(budget);  // over a quarter: a toy budget, ignored
  store_->ReserveForServer(stream_bytes / 2);
  for (int i = 0; i < 16; ++i) Create("empty" + std::to_string(i), spec);
  // Left for blocks: 3.5 streams' bytes, less 19 x 1,536 bookkeeping: two
  // streams fit, not three.
  const uint64_t blocks =
      budget - stream_bytes / 2 - 19 * MemoryStore::kBytesPerStream;
  ASSERT_LT(blocks, 3 * stream_bytes);
  ASSERT_GE(blocks, 2 * stream_bytes);
  std::vector<OracleMemory> oracles(3, OracleMemory{2, 16, {}});
  for (int i = 0; i < 3; ++i) {
    const std::string id = "s" + std::to_string(i);
    Create(id, spec);
    clock_.AdvanceSeconds(1);
    ASSERT_TRUE(AppendRandom(id, spec, 0, 0, 192, &oracles[i]).ok());
    EXPECT_LE(store_->resident_bytes(), blocks);
  }
  EXPECT_FALSE(store_->GetStream("s0")->resident);
  EXPECT_TRUE(store_->GetStream("s1")->resident);
  EXPECT_TRUE(store_->GetStream("s2")->resident);
  // Deleting streams gives their bookkeeping back: then all three fit.
  for (int i = 0; i < 16; ++i) {
    ASSERT_TRUE(store_->DeleteStream("empty" + std::to_string(i)).ok());
  }
  for (int i = 0; i < 3; ++i) {
    ExpectSearchMatches("s" + std::to_string(i), spec, 0, oracles[i], 20);
  }
  for (int i = 0; i < 3; ++i) {
    EXPECT_TRUE(store_->GetStream("s" + std::to_string(i))->resident) << i;
  }
}

TEST_F(MemoryStoreTest, AnAppendTheBudgetCannotHoldIsRefusedAndLosesNothing) {
  const StreamSpec spec = Spec(1000);
  Open(100 * spec.RowBytes());
  Create("s", spec);
  OracleMemory oracle{2, 16, {}};
  ASSERT_TRUE(AppendRandom("s", spec, 0, 0, 60, &oracle).ok());
  auto big = AppendRandom("s", spec, 0, 60, 200);
  ASSERT_EQ(big.status().code(), absl::StatusCode::kResourceExhausted);
  EXPECT_NE(big.status().message().find("--memory-budget"), std::string::npos)
      << big.status();
  EXPECT_EQ(store_->residency().refused_appends, 1u);
  EXPECT_EQ(store_->GetStream("s")->layers[0].next_position, 60);
  ExpectSearchMatches("s", spec, 0, oracle, 10);
  ASSERT_TRUE(AppendRandom("s", spec, 0, 60, 20, &oracle).ok());
  ExpectSearchMatches("s", spec, 0, oracle, 10);
  EXPECT_TRUE(store_->VerifyAgainstStorage().ok());
}

StreamSpec ApproximateSpec(uint64_t capacity, uint32_t nprobe,
                           DType dtype = DType::kFloat32) {
  StreamSpec s = Spec(capacity, dtype);
  s.index = IndexKind::kApproximate;
  s.nlist = 16;  // the first 1,024 keys train it (64 per list)
  s.nprobe = nprobe;
  s.exact_tail = 1000;
  return s;
}

// nprobe = nlist: the tier scans every list, so the tiered search (the tier
// below the exact tail, the exact scan above) must equal brute force.
class MemoryStoreTierTest : public MemoryStoreTest {
 protected:
  // The tier's lists take `list_bytes` per indexed entry and head.
  void ExpectTierEqualsBruteForce(size_t list_bytes) {
    for (DType dtype : {DType::kFloat32, DType::kFloat16}) {
      const StreamSpec spec = ApproximateSpec(100000, 16, dtype);
      const std::string id = std::string("ivf-") + DTypeName(dtype);
      Create(id, spec);
      OracleMemory oracle{2, 16, {}};
      int64_t next = 0;
      for (int i = 0; i < 6; ++i) {
        auto r = AppendRandom(id, spec, 0, next, 5000, &oracle);
        ASSERT_TRUE(r.ok()) << r.status();
        next = r->next_position;
      }
      store_->WaitForIndexing();
      auto state = store_->GetStream(id);
      ASSERT_TRUE(state.ok());
      // Indexed to the chunk grid below the exact tail (30,000 - 1,000).
      const uint64_t indexed = 29000 / kIndexChunk * kIndexChunk;
      EXPECT_EQ(state->layers[0].indexed_entries, indexed);
      EXPECT_EQ(state->layers[1].indexed_entries, 0u);  // no entries
      ExpectSearchMatches(id, spec, 0, oracle, 32);
      // The tier holds no key copy: an EXACT stream of as many rows has the
      // same blocks, and the tier adds list_bytes per indexed entry and head.
      StreamSpec flat_spec = spec;
      flat_spec.index = IndexKind::kExact;
      const std::string flat = std::string("flat-") + DTypeName(dtype);
      Create(flat, flat_spec);
      OracleMemory unused{2, 16, {}};
      for (int64_t first = 0; first < next; first += 5000) {
        ASSERT_TRUE(
            AppendRandom(flat, flat_spec, 0, first, 5000, &unused).ok());
      }
      EXPECT_EQ(
          store_->GetStream(id)->bytes_in_ram,
          store_->GetStream(flat)->bytes_in_ram + indexed * 2 * list_bytes);
    }
    // Every stream's bytes, the tier's lists included, count for the budget.
    uint64_t in_ram = 0;
    for (const char* id :
         {"ivf-float32", "ivf-float16", "flat-float32", "flat-float16"}) {
      in_ram += store_->GetStream(id)->bytes_in_ram;
    }
    EXPECT_EQ(store_->resident_bytes(), in_ram);
  }
};

TEST_F(MemoryStoreTierTest, ProbingEveryListEqualsBruteForce) {
  ExpectTierEqualsBruteForce(8);  // a position
}

TEST_F(MemoryStoreTierTest, WithInt8CodesProbingEveryListEqualsBruteForce) {
  TierOptions tier;
  tier.int8_codes = true;
  Open(0, tier);
  ExpectTierEqualsBruteForce(8 + 16 + 4);  // position, codes, scale
}

TEST_F(MemoryStoreTest, ApproximateTierKeepsFifoEvictionExact) {
  const StreamSpec spec = ApproximateSpec(20000, 16);
  Create("fifo", spec);
  OracleMemory oracle{2, 16, {}};
  int64_t next = 0;
  for (int i = 0; i < 10; ++i) {  // 40,000 rows: the oldest 20,000 evicted
    auto r = AppendRandom("fifo", spec, 1, next, 4000, &oracle);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position;
    store_->WaitForIndexing();  // indexed while eviction goes on
  }
  auto state = store_->GetStream("fifo");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->layers[1].first_position, 20000);
  EXPECT_GT(state->layers[1].indexed_entries, 8192u);
  ExpectSearchMatches("fifo", spec, 1, oracle,
                      40);  // nothing evicted comes back
}

TEST_F(MemoryStoreTest,
       ApproximateTierRecallOnClusteredKeysAndTheSameAfterRestart) {
  // Keys near 64 centres, as attention keys cluster; queries near centres
  // too. 4 of 16 lists probed.
  const StreamSpec spec = ApproximateSpec(100000, 4);
  Create("clustered", spec);
  std::normal_distribution<float> normal;
  std::vector<std::vector<float>> centres(64, std::vector<float>(32));
  for (auto& c : centres) {
    for (float& x : c) x = 3 * normal(rng_);
  }
  OracleMemory oracle{2, 16, {}};
  std::uniform_int_distribution<int> pick(0, 63);
  for (int64_t first = 0; first < 20000; first += 2000) {
    std::vector<float> keys(2000 * 32), values(2000 * 2 * 4);
    for (int r = 0; r < 2000; ++r) {
      const auto& c = centres[pick(rng_)];
      for (int j = 0; j < 32; ++j) keys[r * 32 + j] = c[j] + normal(rng_);
      oracle.keys[first + r].assign(keys.begin() + r * 32,
                                    keys.begin() + (r + 1) * 32);
    }
    for (float& x : values) x = normal(rng_);
    const std::string kb = PackFloats(keys, DType::kFloat32),
                      vb = PackFloats(values, DType::kFloat32);
    AppendCommand cmd{"clustered",     spec, 0,  first, 2000,
                      DType::kFloat32, kb,   vb, false};
    ASSERT_TRUE(store_->Append(cmd).ok());
  }
  store_->WaitForIndexing();
  SearchCommand cmd{"clustered", spec, 0, std::vector<float>(50 * 32), {}};
  for (int q = 0; q < 50; ++q) {
    const auto& c = centres[pick(rng_)];
    for (int j = 0; j < 32; ++j) cmd.queries[q * 32 + j] = c[j] + normal(rng_);
  }
  cmd.options.k = 10;
  auto before = store_->Search(cmd);
  ASSERT_TRUE(before.ok()) << before.status();
  // Recall@10 against brute force, over every (query, head).
  size_t found = 0, total = 0;
  for (int q = 0; q < 50; ++q) {
    for (int h = 0; h < 2; ++h) {
      std::vector<std::pair<float, int64_t>> all;
      for (const auto& [p, key] : oracle.keys) {
        float dot = 0;
        for (int j = 0; j < 16; ++j) {
          dot += cmd.queries[q * 32 + h * 16 + j] * key[h * 16 + j];
        }
        all.push_back({dot, p});
      }
      std::partial_sort(
          all.begin(), all.begin() + 10, all.end(),
          [](const auto& a, const auto& b) { return a.first > b.first; });
      for (int j = 0; j < 10; ++j) {
        const int64_t* got = before->positions.data() + (q * 2 + h) * 10;
        found += std::count(got, got + 10, all[j].second);
      }
      total += 10;
    }
  }
  EXPECT_GE(static_cast<double>(found) / total, 0.9);
  // A restart loads the stream and rebuilds the tier from the same keys:
  // the same answers, bit for bit.
  Open();
  ASSERT_TRUE(store_->Search(cmd).ok());  // loads it, queues the indexing
  store_->WaitForIndexing();
  auto after = store_->Search(cmd);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(before->positions, after->positions);
  EXPECT_EQ(before->scores, after->scores);
}

TEST_F(MemoryStoreTest, ApproximateTierAnswersTheSameAfterARestartThatEvicted) {
  // The keys the centroids were trained on (the first 1,024) are evicted
  // long before the restart: the reload must use the kept centroids, not
  // train again on what is left.
  const StreamSpec spec = ApproximateSpec(6000, 4);
  Create("evicted", spec);
  int64_t next = 0;
  for (int i = 0; i < 10; ++i) {
    auto r = AppendRandom("evicted", spec, 0, next, 2000);
    ASSERT_TRUE(r.ok()) << r.status();
    next = r->next_position;
    store_->WaitForIndexing();
  }
  std::normal_distribution<float> normal;
  SearchCommand cmd{"evicted", spec, 0, std::vector<float>(30 * 32), {}};
  for (float& x : cmd.queries) x = normal(rng_);
  cmd.options.k = 16;
  auto before = store_->Search(cmd);
  ASSERT_TRUE(before.ok()) << before.status();
  ASSERT_GT(store_->GetStream("evicted")->layers[0].indexed_entries, 0u);
  Open();
  ASSERT_TRUE(store_->Search(cmd).ok());  // loads it, queues the indexing
  store_->WaitForIndexing();
  auto state = store_->GetStream("evicted");
  ASSERT_TRUE(state.ok());
  EXPECT_EQ(state->layers[0].first_position, 14000);
  auto after = store_->Search(cmd);
  ASSERT_TRUE(after.ok());
  EXPECT_EQ(before->positions, after->positions);
  ASSERT_EQ(before->scores.size(), after->scores.size());
  for (size_t i = 0; i < before->scores.size(); ++i) {
    EXPECT_NEAR(before->scores[i], after->scores[i],
                1e-5f * (1 + std::abs(before->scores[i])));
  }
  // A reset drops the centroids with the data: the stream trains afresh.
  ASSERT_TRUE(store_->ResetStream("evicted").ok());
  EXPECT_EQ(store_->GetStream("evicted")->layers[0].indexed_entries, 0u);
}

TEST_F(MemoryStoreTest, WireDtypeIsConvertedToStorageDtype) {
  const StreamSpec spec = Spec(100, DType::kFloat16);
  Create("h", spec);
  OracleMemory oracle{2, 16, {}};
  ASSERT_TRUE(
      AppendRandom("h", spec, 0, 0, 30, &oracle, DType::kBFloat16).ok());
  ExpectSearchMatches("h", spec, 0, oracle, 8);
}

TEST_F(MemoryStoreTest, ResetClearsDataKeepsSpecAndSurvivesRestart) {
  const StreamSpec spec = Spec(100);
  Create("r", spec);
  ASSERT_TRUE(AppendRandom("r", spec, 0, 0, 50).ok());
  ASSERT_TRUE(store_->ResetStream("r").ok());
  OracleMemory oracle{2, 16, {}};
  ExpectSearchMatches("r", spec, 0, oracle, 4);  // all empty
  ASSERT_TRUE(AppendRandom("r", spec, 0, 0, 20, &oracle).ok());
  Open();
  ExpectSearchMatches("r", spec, 0, oracle, 4);
  EXPECT_EQ(store_->GetStream("r")->layers[0].next_position, 20);
}

TEST_F(MemoryStoreTest, DeletedStreamIsGoneNowAndAfterRestart) {
  const StreamSpec spec = Spec(100);
  Create("d", spec);
  ASSERT_TRUE(AppendRandom("d", spec, 0, 0, 50).ok());
  ASSERT_TRUE(store_->DeleteStream("d").ok());
  EXPECT_EQ(store_->GetStream("d").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_EQ(AppendRandom("d", spec, 0, 50, 1).status().code(),
            absl::StatusCode::kNotFound);
  store_->WaitForBackgroundCompactions();
  Open();
  EXPECT_EQ(store_->GetStream("d").status().code(),
            absl::StatusCode::kNotFound);
  // A new stream of the same id starts empty.
  Create("d", spec);
  EXPECT_EQ(store_->GetStream("d")->layers[0].next_position, 0);
}

TEST_F(MemoryStoreTest,
       IdleStreamsAreDeletedAfterTheirTtlAndUseKeepsThemAlive) {
  StreamSpec short_lived = Spec(10);
  short_lived.ttl_seconds = 10;
  const StreamSpec defaulted = Spec(10);  // ttl 0: the store's default, 100 s
  Create("short", short_lived);
  Create("default", defaulted);
  clock_.AdvanceSeconds(9);
  EXPECT_EQ(store_->DeleteIdleStreams(), 0u);
  ASSERT_TRUE(AppendRandom("short", short_lived, 0, 0, 1).ok());  // a use
  clock_.AdvanceSeconds(9);
  EXPECT_EQ(store_->DeleteIdleStreams(), 0u);
  clock_.AdvanceSeconds(2);  // 11 s after its last use
  EXPECT_EQ(store_->DeleteIdleStreams(), 1u);
  EXPECT_EQ(store_->GetStream("short").status().code(),
            absl::StatusCode::kNotFound);
  EXPECT_TRUE(store_->GetStream("default").ok());
  // A search is a use too.
  SearchCommand cmd{
      "default", defaulted, 0, std::vector<float>(2 * 16, 1.0f), {}};
  cmd.options.k = 1;
  ASSERT_TRUE(store_->Search(cmd).ok());
  clock_.AdvanceSeconds(99);
  EXPECT_EQ(store_->DeleteIdleStreams(), 0u);
  clock_.AdvanceSeconds(2);
  EXPECT_EQ(store_->DeleteIdleStreams(), 1u);
  // Gone from storage too.
  Open();
  EXPECT_EQ(store_->stream_count(), 0u);
}

TEST_F(MemoryStoreTest,
       RamEqualsStorageAfterAppendsEvictionsReplaysResetsAndDeletes) {
  const StreamSpec a = Spec(97, DType::kBFloat16), b = Spec(1000);
  Create("a", a);
  Create("b", b);
  int64_t nb = 0;
  for (int i = 0; i < 30; ++i) {
    auto ra = AppendRandom("a", a, 0,
                           store_->GetStream("a")->layers[0].next_position, 13);
    ASSERT_TRUE(ra.ok());
    auto rb = AppendRandom("b", b, 1, nb, 41);
    ASSERT_TRUE(rb.ok());
    nb = rb->next_position;
    if (i == 10) {
      ASSERT_TRUE(AppendRandom("b", b, 1, nb - 41, 41).ok());  // a replay
    }
    if (i == 20) {
      ASSERT_TRUE(store_->ResetStream("a").ok());
    }
    ASSERT_TRUE(store_->VerifyAgainstStorage().ok())
        << store_->VerifyAgainstStorage();
  }
  Create("c", b);
  ASSERT_TRUE(store_->DeleteStream("c").ok());
  EXPECT_TRUE(store_->VerifyAgainstStorage().ok())
      << store_->VerifyAgainstStorage();
}

TEST_F(MemoryStoreTest, ListStreamsPagesInIdOrder) {
  std::vector<std::string> created;
  for (int i = 0; i < 25; ++i) {
    created.push_back("p" + std::to_string(124 - i));  // created out of order
    Create(created.back(), Spec(4));
  }
  std::sort(created.begin(), created.end());
  std::vector<std::string> seen;
  std::vector<size_t> page_sizes;
  std::string after;
  bool more = true;
  for (int pages = 0; more && pages < 10; ++pages) {
    auto page = store_->ListStreams(after, 10, &more);
    page_sizes.push_back(page.size());
    for (const auto& s : page) seen.push_back(s.stream_id);
    if (!page.empty()) after = page.back().stream_id;
  }
  EXPECT_FALSE(more);
  // Pages of exactly the size asked for, then the rest; every stream once,
  // in id order (strictly increasing: no duplicates across pages).
  EXPECT_EQ(page_sizes, (std::vector<size_t>{10, 10, 5}));
  EXPECT_EQ(seen, created);
  EXPECT_EQ(std::adjacent_find(seen.begin(), seen.end(),
                               std::greater_equal<std::string>()),
            seen.end());
}

TEST_F(MemoryStoreTest, SearchesDuringAppendsSeeOnlyRetainedPositions) {
  // Two appenders each fill their own stream past capacity while two
  // searchers query the same streams; every answer must be full (k entries)
  // and hold only positions retained at some moment during the search.
  const StreamSpec spec = Spec(300);
  Create("c0", spec);
  Create("c1", spec);
  std::atomic<int64_t> next[2] = {0, 0};
  std::atomic<bool> done{false};
  std::atomic<int> failures{0};
  std::vector<std::thread> threads;
  for (int t = 0; t < 2; ++t) {
    threads.emplace_back([&, t] {
      std::mt19937 rng(t);
      std::normal_distribution<float> normal;
      const std::string id = "c" + std::to_string(t);
      for (int i = 0; i < 60; ++i) {
        std::vector<float> k(13 * 2 * 16), v(13 * 2 * 4);
        for (float& x : k) x = normal(rng);
        for (float& x : v) x = normal(rng);
        const std::string kb = PackFloats(k, DType::kFloat32);
        const std::string vb = PackFloats(v, DType::kFloat32);
        auto r = store_->Append(
            {id, spec, 0, next[t], 13, DType::kFloat32, kb, vb, false});
        if (!r.ok() || r->stored != 13) failures++;
        next[t] += 13;
      }
    });
    threads.emplace_back([&, t] {
      const std::string id = "c" + std::to_string(t);
      while (!done) {
        const int64_t before = next[t];
        SearchCommand cmd{
            id, spec, 0, std::vector<float>(2 * 2 * 16, 0.5f), {}};
        cmd.options.k = 5;
        auto sr = store_->Search(cmd);
        const int64_t after = next[t];
        if (!sr.ok()) {
          failures++;
          continue;
        }
        for (int64_t p : sr->positions) {
          if (before >= 5 && p < 0) failures++;
          // One batch may be published before its appender bumps next[t].
          if (p >= 0 && (p < before - 300 || p >= after + 13)) failures++;
        }
      }
    });
  }
  threads[0].join();
  threads[2].join();
  done = true;
  threads[1].join();
  threads[3].join();
  EXPECT_EQ(failures.load(), 0);
  EXPECT_EQ(next[0].load(), 780);
}

}  // namespace
}  // namespace knnmem
