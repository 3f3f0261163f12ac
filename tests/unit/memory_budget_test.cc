// MemoryBudget on its own, with streams of the test's making: its decisions
// (which streams to unload, when to give memory back, when to refuse)
// against a brute-force oracle.
#include "server/store/memory_budget.h"

#include <gtest/gtest.h>

#include <algorithm>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

constexpr int64_t kPerStream = MemoryBudget::kBytesPerStream;

struct FakeStream {
  int64_t last_used = 0;
  uint64_t bytes = 0;  // its blocks, while resident
  bool busy = false;   // a call holds it
  bool resident = true;
};

// The streams a MakeRoom may unload, recording what the budget asks of them.
class FakeStreams final : public MemoryBudget::Unloadable {
 public:
  explicit FakeStreams(std::vector<FakeStream>* streams) : streams_(streams) {}

  std::vector<int64_t> LastUsed() override {
    ++last_used_calls;
    std::vector<int64_t> last_used;
    for (const FakeStream& s : *streams_) last_used.push_back(s.last_used);
    return last_used;
  }
  std::optional<uint64_t> TryUnload(size_t i) override {
    tried.push_back(i);
    FakeStream& s = (*streams_)[i];
    if (s.busy || !s.resident) return std::nullopt;
    s.resident = false;
    unloaded.push_back(i);
    return s.bytes;
  }
  void ReleaseFreedMemory() override { ++releases; }

  int last_used_calls = 0;
  int releases = 0;
  std::vector<size_t> tried, unloaded;

 private:
  std::vector<FakeStream>* streams_;
};

// What one MakeRoom must do, found by trying every set of streams.
struct Expected {
  bool looked = false;          // walked the streams
  std::vector<size_t> unloads;  // sorted
  bool ok = true;
  int64_t resident_after = 0;
};

Expected Oracle(const std::vector<FakeStream>& streams, int64_t resident,
                uint64_t share, int64_t held, uint64_t bytes) {
  Expected e;
  e.resident_after = resident;
  if (share == 0) return e;
  const int64_t limit =
      std::max<int64_t>(0, static_cast<int64_t>(share) - held * kPerStream);
  const int64_t need = static_cast<int64_t>(bytes);
  if (resident + need <= limit) return e;
  e.looked = true;
  const int64_t target = limit - limit / 32;
  // The streams it can unload: idle and resident.
  std::vector<size_t> idle;
  for (size_t i = 0; i < streams.size(); ++i) {
    if (!streams[i].busy && streams[i].resident) idle.push_back(i);
  }
  auto older = [&](size_t a, size_t b) {  // a is less recently used than b
    return streams[a].last_used < streams[b].last_used ||
           (streams[a].last_used == streams[b].last_used && a < b);
  };
  // Every set that takes the least recently used first: no idle stream
  // left in RAM is older than one unloaded.
  std::vector<std::vector<size_t>> lru_first_sets;
  for (uint32_t mask = 0; mask < (1u << idle.size()); ++mask) {
    std::vector<size_t> set, kept;
    for (size_t j = 0; j < idle.size(); ++j) {
      ((mask & (1u << j)) ? set : kept).push_back(idle[j]);
    }
    bool lru_first = true;
    for (size_t k : kept) {
      for (size_t u : set) lru_first = lru_first && !older(k, u);
    }
    if (lru_first) lru_first_sets.push_back(set);
  }
  auto freed = [&](const std::vector<size_t>& set) {
    int64_t f = 0;
    for (size_t u : set) f += static_cast<int64_t>(streams[u].bytes);
    return f;
  };
  // The smallest of them that makes room down to the target; every idle
  // stream when none does.
  std::vector<size_t> best = idle;
  bool made_room = false;
  for (const std::vector<size_t>& set : lru_first_sets) {
    if (resident - freed(set) + need > target) continue;
    if (!made_room || set.size() < best.size()) best = set;
    made_room = true;
  }
  std::sort(best.begin(), best.end());
  e.unloads = best;
  for (size_t u : best) e.resident_after -= streams[u].bytes;
  e.ok = e.resident_after + need <= limit;
  return e;
}

int64_t Sum(const std::vector<FakeStream>& streams) {
  int64_t sum = 0;
  for (const FakeStream& s : streams) {
    if (s.resident) sum += static_cast<int64_t>(s.bytes);
  }
  return sum;
}

TEST(MemoryBudgetDecisionTest, UnloadsWhatTheBruteForceOracleUnloads) {
  std::mt19937 rng(11);
  auto uniform = [&](int64_t lo, int64_t hi) {
    return std::uniform_int_distribution<int64_t>(lo, hi)(rng);
  };
  int slow_paths = 0, refusals = 0, releases = 0;
  for (int round = 0; round < 3000; ++round) {
    std::vector<FakeStream> streams(static_cast<size_t>(uniform(0, 9)));
    for (FakeStream& s : streams) {
      // Few distinct times, so that ties are common.
      s.last_used = uniform(0, round % 2 == 0 ? 3 : 1000);
      s.bytes = static_cast<uint64_t>(uniform(0, 4) == 0 ? 0 : uniform(1, 900));
      s.busy = uniform(0, 3) == 0;
      s.resident = uniform(0, 4) != 0;
    }
    const int64_t keep = uniform(0, 1500);  // the stream the call is for
    const int64_t held = static_cast<int64_t>(streams.size()) + uniform(1, 3);
    const uint64_t share =
        uniform(0, 20) == 0 ? 0
                            : static_cast<uint64_t>(std::max<int64_t>(
                                  1, held * kPerStream + uniform(-500, 6000)));
    const uint64_t bytes = static_cast<uint64_t>(uniform(0, 3000));
    const int64_t resident = keep + Sum(streams);
    const Expected expected = Oracle(streams, resident, share, held, bytes);

    MemoryBudget budget(share + 12345, share);
    budget.Loaded(static_cast<uint64_t>(resident));
    FakeStreams fake(&streams);
    const absl::Status status = budget.MakeRoom(bytes, held, "keys", fake);

    SCOPED_TRACE(absl::StrCat("round ", round, ": share ", share, ", held ",
                              held, ", resident ", resident, ", bytes ",
                              bytes));
    EXPECT_EQ(fake.last_used_calls, expected.looked ? 1 : 0);
    std::vector<size_t> unloaded = fake.unloaded;
    std::sort(unloaded.begin(), unloaded.end());
    EXPECT_EQ(unloaded, expected.unloads);
    EXPECT_EQ(status.ok(), expected.ok) << status;
    EXPECT_EQ(budget.resident_bytes(),
              static_cast<uint64_t>(expected.resident_after));
    EXPECT_EQ(budget.counters().unloads, expected.unloads.size());
    EXPECT_EQ(budget.counters().refused_appends, expected.ok ? 0u : 1u);
    // Tried least recently used first, never a stream twice.
    for (size_t j = 1; j < fake.tried.size(); ++j) {
      const FakeStream& a = streams[fake.tried[j - 1]];
      const FakeStream& b = streams[fake.tried[j]];
      EXPECT_TRUE(
          a.last_used < b.last_used ||
          (a.last_used == b.last_used && fake.tried[j - 1] < fake.tried[j]));
    }
    // A fresh budget gives memory back once the unloads freed a sixteenth
    // of the limit.
    int64_t freed = 0;
    for (size_t u : expected.unloads) freed += streams[u].bytes;
    const int64_t limit =
        std::max<int64_t>(0, static_cast<int64_t>(share) - held * kPerStream);
    EXPECT_EQ(fake.releases, expected.looked && freed >= limit / 16 ? 1 : 0);
    if (!status.ok()) {
      EXPECT_TRUE(absl::StartsWith(status.message(), "keys: "));
      EXPECT_NE(status.message().find("--memory-budget"), std::string::npos);
    }
    slow_paths += expected.looked;
    refusals += !expected.ok;
    releases += fake.releases;
  }
  // The rounds reached every outcome.
  EXPECT_GT(slow_paths, 500);
  EXPECT_GT(refusals, 100);
  EXPECT_GT(slow_paths - refusals, 100);
  EXPECT_GT(releases, 100);
}

TEST(MemoryBudgetDecisionTest, FreedMemoryGoesBackOnceASixteenthWasFreed) {
  // A limit of 16,000 bytes: memory goes back each time 1,000 were freed.
  // RAM starts at the target (500 under the limit); each round the stream
  // in use grows by 600 bytes and one 600-byte idle stream makes room.
  std::vector<FakeStream> streams(20);
  for (size_t i = 0; i < streams.size(); ++i) {
    streams[i].last_used = static_cast<int64_t>(i);
    streams[i].bytes = 600;
  }
  MemoryBudget budget(16000, 16000);
  budget.Loaded(16000 - 500);
  int64_t untrimmed = 0;  // the oracle's count
  for (int round = 0; round < 12; ++round) {
    FakeStreams fake(&streams);
    budget.Resized(600);
    ASSERT_TRUE(budget.MakeRoom(0, 0, "keys", fake).ok());
    ASSERT_EQ(fake.unloaded.size(), 1u) << round;
    EXPECT_EQ(fake.unloaded[0], static_cast<size_t>(round));  // the oldest
    EXPECT_EQ(budget.resident_bytes(), 16000u - 500u);
    untrimmed += 600;
    const int expected = untrimmed >= 1000 ? 1 : 0;
    if (expected) untrimmed = 0;
    EXPECT_EQ(fake.releases, expected) << round;
  }
}

TEST(MemoryBudgetDecisionTest, WithoutALimitNothingIsEverUnloaded) {
  std::vector<FakeStream> streams(3, FakeStream{0, 1000, false, true});
  MemoryBudget budget(0, 0);
  budget.Loaded(3000);
  FakeStreams fake(&streams);
  EXPECT_TRUE(budget.MakeRoom(uint64_t{1} << 40, 1000, "keys", fake).ok());
  EXPECT_EQ(fake.last_used_calls, 0);
  EXPECT_TRUE(fake.tried.empty());
}

TEST(MemoryBudgetDecisionTest, EveryStreamHeldTakesItsBookkeepingFromTheLimit) {
  std::vector<FakeStream> none;
  FakeStreams fake(&none);
  MemoryBudget budget(50000, 10 * kPerStream + 100);
  EXPECT_TRUE(budget.MakeRoom(100, 10, "keys", fake).ok());
  EXPECT_FALSE(budget.MakeRoom(101, 10, "keys", fake).ok());
  // Past the share, the limit is 0: only nothing fits.
  EXPECT_TRUE(budget.MakeRoom(0, 11, "keys", fake).ok());
  const absl::Status refused = budget.MakeRoom(1, 11, "stream_id", fake);
  EXPECT_EQ(refused.code(), absl::StatusCode::kResourceExhausted);
  EXPECT_TRUE(absl::StartsWith(
      refused.message(),
      "stream_id: the memory budget (--memory-budget 50000 bytes, 0 of them "
      "for the blocks of 11 streams) is full"))
      << refused;
  EXPECT_EQ(budget.counters().refused_appends, 2u);
}

TEST(MemoryBudgetDecisionTest, TheServersReserveIsTakenOnlyUpToAQuarter) {
  std::vector<FakeStream> none;
  FakeStreams fake(&none);
  MemoryBudget budget(8000, 4000);
  budget.ReserveForServer(1001);  // over a quarter: a toy budget, ignored
  EXPECT_TRUE(budget.MakeRoom(4000, 0, "keys", fake).ok());
  budget.ReserveForServer(1000);
  EXPECT_TRUE(budget.MakeRoom(3000, 0, "keys", fake).ok());
  EXPECT_FALSE(budget.MakeRoom(3001, 0, "keys", fake).ok());
}

TEST(MemoryBudgetDecisionTest, CountsLoadsAndResidentBytes) {
  MemoryBudget budget(0, 0);
  budget.Loaded(700);
  budget.Loaded(300);
  budget.Resized(-250);
  EXPECT_EQ(budget.resident_bytes(), 750u);
  EXPECT_EQ(budget.counters().loads, 2u);
  budget.Resized(-1000);  // never reported below 0
  EXPECT_EQ(budget.resident_bytes(), 0u);
}

}  // namespace
}  // namespace knnmem
