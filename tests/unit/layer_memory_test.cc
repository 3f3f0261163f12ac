#include "server/memory/layer_memory.h"

#include <gtest/gtest.h>

#include <cstring>
#include <utility>
#include <vector>

namespace knnmem {
namespace {

StreamSpec Spec(uint64_t capacity) {
  StreamSpec s;
  s.layers = 1;
  s.heads = 3;
  s.key_dim = 4;
  s.value_dim = 2;
  s.capacity = capacity;
  return s;
}

// Key element (position, head, d) and value element, as the test writes them.
float KeyOf(int64_t p, int h, int d) { return p * 100.0f + h * 10 + d; }
float ValueOf(int64_t p, int h, int d) { return -(p * 100.0f + h * 10 + d); }

void AppendPositions(LayerMemory& m, const StreamSpec& s, int64_t from,
                     int64_t to) {
  std::vector<float> k, v;
  for (int64_t p = from; p < to; ++p) {
    for (uint32_t h = 0; h < s.heads; ++h) {
      for (uint32_t d = 0; d < s.key_dim; ++d) k.push_back(KeyOf(p, h, d));
      for (uint32_t d = 0; d < s.value_dim; ++d) v.push_back(ValueOf(p, h, d));
    }
  }
  knnmem::MutexLock lock(&m.append_mutex());
  m.AppendRows(reinterpret_cast<const char*>(k.data()), s.heads * s.key_dim * 4,
               reinterpret_cast<const char*>(v.data()),
               s.heads * s.value_dim * 4, static_cast<size_t>(to - from));
}

// Reads every retained entry back through the snapshot and checks it.
void ExpectHolds(const LayerSnapshot& snap, const StreamSpec& s, int64_t first,
                 int64_t next) {
  ASSERT_EQ(snap.first_position, first);
  ASSERT_EQ(snap.next_position, next);
  for (int64_t p = first; p < next; ++p) {
    const Block& b = snap.BlockOf(p);
    const size_t row = static_cast<size_t>(p - b.first_position());
    for (uint32_t h = 0; h < s.heads; ++h) {
      const float* k =
          reinterpret_cast<const float*>(b.keys(h)) + row * s.key_dim;
      const float* v =
          reinterpret_cast<const float*>(b.values(h)) + row * s.value_dim;
      for (uint32_t d = 0; d < s.key_dim; ++d) ASSERT_EQ(k[d], KeyOf(p, h, d));
      for (uint32_t d = 0; d < s.value_dim; ++d)
        ASSERT_EQ(v[d], ValueOf(p, h, d));
    }
  }
}

TEST(LayerMemoryTest, AppendsAcrossBlockBoundariesAreReadBackHeadMajor) {
  const StreamSpec s = Spec(100000);
  LayerMemory m(s);
  AppendPositions(m, s, 0, 1);
  AppendPositions(m, s, 1, 700);     // crosses 64, 192, 448 boundaries
  AppendPositions(m, s, 700, 3000);  // into kMaxBlockRows blocks
  ExpectHolds(m.Snapshot(), s, 0, 3000);
}

TEST(LayerMemoryTest, BlockSizesFollowPositionAndCapacity) {
  EXPECT_EQ(BlockRowsAt(0, 100000), 64u);
  EXPECT_EQ(BlockRowsAt(2047, 100000), 64u);
  EXPECT_EQ(BlockRowsAt(4096, 100000), 256u);  // 4096 / 16
  EXPECT_EQ(BlockRowsAt(1 << 20, 100000), 1024u);
  EXPECT_EQ(BlockRowsAt(1 << 20, 8192), 512u);  // capacity / 16
  // Small rings: an eighth of the capacity, 8 to 64 rows.
  EXPECT_EQ(BlockRowsAt(0, 512), 64u);
  EXPECT_EQ(BlockRowsAt(0, 100), 16u);
  EXPECT_EQ(BlockRowsAt(0, 64), 8u);
  EXPECT_EQ(BlockRowsAt(0, 1), 8u);
}

TEST(LayerMemoryTest, ASmallRingHoldingFewRowsTakesFewRowsOfRam) {
  const StreamSpec s = Spec(64);
  LayerMemory m(s);
  AppendPositions(m, s, 0, 8);
  EXPECT_EQ(m.BlockBytes(), 8 * s.RowBytes());  // was 64 rows' worth
  AppendPositions(m, s, 8, 200);                // wraps the ring three times
  ExpectHolds(m.Snapshot(), s, 200 - 64, 200);
  EXPECT_LE(m.BlockBytes(), (64 + 8) * s.RowBytes());
}

TEST(LayerMemoryTest, FifoKeepsExactlyTheNewestCapacityPositions) {
  const StreamSpec s = Spec(300);
  LayerMemory m(s);
  for (int64_t p = 0; p < 5000; p += 37) AppendPositions(m, s, p, p + 37);
  const int64_t next = 5032;  // 136 batches of 37
  ExpectHolds(m.Snapshot(), s, next - 300, next);
  // Blocks older than the window are freed: at most capacity + one block.
  EXPECT_LE(m.BytesInRam(),
            (300 + 300) * s.heads * (s.key_dim + s.value_dim) * 4);
}

TEST(LayerMemoryTest, SnapshotIsUnchangedByLaterAppendsAndEvictions) {
  const StreamSpec s = Spec(128);
  LayerMemory m(s);
  AppendPositions(m, s, 0, 128);
  const LayerSnapshot before = m.Snapshot();
  AppendPositions(m, s, 128, 1000);  // evicts everything `before` saw
  ExpectHolds(before, s, 0, 128);
  ExpectHolds(m.Snapshot(), s, 1000 - 128, 1000);
}

TEST(LayerMemoryTest, StartAtRecoversALayerWhoseOldestPositionsWereEvicted) {
  const StreamSpec s = Spec(50);
  LayerMemory m(s);
  {
    knnmem::MutexLock lock(&m.append_mutex());
    m.StartAt(1234);
  }
  AppendPositions(m, s, 1234, 1284);
  ExpectHolds(m.Snapshot(), s, 1234, 1284);
}

// Rows of [from, to) as StageRows takes them.
struct Rows {
  std::vector<float> keys, values;
};
Rows RowsOf(const StreamSpec& s, int64_t from, int64_t to) {
  Rows r;
  for (int64_t p = from; p < to; ++p) {
    for (uint32_t h = 0; h < s.heads; ++h) {
      for (uint32_t d = 0; d < s.key_dim; ++d) r.keys.push_back(KeyOf(p, h, d));
      for (uint32_t d = 0; d < s.value_dim; ++d) {
        r.values.push_back(ValueOf(p, h, d));
      }
    }
  }
  return r;
}

// Staged rows are invisible to readers, also a snapshot taken while they
// are staged, until Publish; dropping the Staged discards them.
TEST(LayerMemoryTest, StagedRowsStayInvisibleUntilPublished) {
  const StreamSpec s = Spec(1000);
  LayerMemory m(s);
  AppendPositions(m, s, 0, 60);  // part of the first block
  knnmem::MutexLock lock(&m.append_mutex());
  {
    const Rows r = RowsOf(s, 60, 200);  // fills the block and starts more
    LayerMemory::Staged discarded = m.StageRows(
        reinterpret_cast<const char*>(r.keys.data()), s.heads * s.key_dim * 4,
        reinterpret_cast<const char*>(r.values.data()),
        s.heads * s.value_dim * 4, 140);
    EXPECT_EQ(discarded.next_position, 200);
    EXPECT_EQ(m.next_position(), 60);
    ExpectHolds(m.Snapshot(), s, 0, 60);
  }  // dropped: never published
  EXPECT_EQ(m.next_position(), 60);
  const Rows r = RowsOf(s, 60, 200);
  LayerMemory::Staged staged = m.StageRows(
      reinterpret_cast<const char*>(r.keys.data()), s.heads * s.key_dim * 4,
      reinterpret_cast<const char*>(r.values.data()), s.heads * s.value_dim * 4,
      140);
  const LayerSnapshot before = m.Snapshot();
  ExpectHolds(before, s, 0, 60);
  m.Publish(std::move(staged));
  ExpectHolds(m.Snapshot(), s, 0, 200);
  // The snapshot taken while staged still shows what it showed.
  ExpectHolds(before, s, 0, 60);
}

}  // namespace
}  // namespace knnmem
