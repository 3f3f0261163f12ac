// LayerMemory: the in-RAM search copy of one (stream, layer), all heads.
//
// Entries are addressed by token position. Retained positions are always the
// contiguous range [first_position, next_position), at most `capacity` long:
// appending past capacity evicts the oldest positions (FIFO, as the paper).
//
// Storage is a ring of fixed-size blocks. Each block holds consecutive
// positions for every head, head-major ([head][row][dim]) in the stream's
// storage dtype, so that one head of one block is a dense row-major matrix
// that a GEMM can score. Block sizes grow geometrically up to kMaxBlockRows so
// that a short stream costs little RAM. Eviction drops whole blocks once all
// of their positions are older than first_position; until then readers skip
// the evicted rows.
//
// Concurrency: one appender at a time (the caller holds append_mutex() from
// StageRows through Publish, across its storage write), any number of
// readers. StageRows copies rows beyond the published next_position, into
// the last block's free rows and into new blocks that no reader can see;
// Publish makes them visible under a brief lock once the storage write
// succeeded (dropping the Staged instead discards them). Blocks are never
// reallocated, so a Snapshot stays valid and immutable for as long as it is
// held, with no lock held while searching it.
#ifndef KNNMEM_SERVER_MEMORY_LAYER_MEMORY_H_
#define KNNMEM_SERVER_MEMORY_LAYER_MEMORY_H_

#include <cstddef>
#include <cstdint>
#include <deque>
#include <memory>
#include <utility>
#include <vector>

#include "absl/base/thread_annotations.h"
#include "base/sync.h"
#include "server/memory/sealed_tier.h"
#include "server/spec/stream_spec.h"

namespace knnmem {

inline constexpr uint32_t kMinBlockRows = 64;
inline constexpr uint32_t kMaxBlockRows = 1024;

// Rows of the block that holds `position`; the block starts at the multiple
// of that size at or below it. A function of the position (and capacity)
// alone, so a layer rebuilt from storage has the same blocks, and answers
// bit for bit the same: 64 rows up to position 2,048, then doubling at
// 16 x each power of two up to 1,024 rows, never more than capacity / 16
// (but at least 64); a capacity under 512 has blocks of an eighth of it
// (8 to 64 rows, a power of two), so a ring of 64 holding 8 rows takes 8
// rows of RAM, not 64. The unfilled ends of the first and last block are
// at most ~1/8 of a layer's RAM and nothing for a short one that fills its
// blocks.
uint32_t BlockRowsAt(int64_t position, uint64_t capacity);

// How a layer holds its keys besides the keys themselves.
struct LayerOptions {
  // Every block also holds each key as int8 codes with a scale (int8_codes.h;
  // key_dim + 4 bytes per key and head, +26% of float32 keys of 128): a
  // decode step's few queries read the codes and score again, in float32,
  // only the rows that may enter the top k, with the same answers.
  bool int8_codes = false;
};

// Positions [first_position, first_position + capacity_rows) of every head.
class Block {
 public:
  Block(const StreamSpec& spec, int64_t first_position, uint32_t capacity_rows,
        bool int8_codes = false);

  int64_t first_position() const { return first_position_; }
  uint32_t capacity_rows() const { return capacity_rows_; }
  // Row-major [capacity_rows, key_dim] keys of `head`, in storage dtype.
  const char* keys(uint32_t head) const {
    return keys_.get() + head * key_head_bytes_;
  }
  char* mutable_keys(uint32_t head) {
    return keys_.get() + head * key_head_bytes_;
  }
  // Row-major [capacity_rows, value_dim] values of `head`, in storage dtype.
  const char* values(uint32_t head) const {
    return values_.get() + head * value_head_bytes_;
  }
  char* mutable_values(uint32_t head) {
    return values_.get() + head * value_head_bytes_;
  }
  // With LayerOptions::int8_codes: row-major [capacity_rows, key_dim] codes
  // and [capacity_rows] scales of `head`'s keys; else nullptr.
  const int8_t* codes(uint32_t head) const {
    return codes_ == nullptr ? nullptr
                             : reinterpret_cast<const int8_t*>(codes_.get()) +
                                   head * code_head_bytes_;
  }
  int8_t* mutable_codes(uint32_t head) {
    return reinterpret_cast<int8_t*>(codes_.get()) + head * code_head_bytes_;
  }
  const float* scales(uint32_t head) const {
    return scales_ == nullptr ? nullptr
                              : reinterpret_cast<const float*>(scales_.get()) +
                                    size_t{head} * capacity_rows_;
  }
  float* mutable_scales(uint32_t head) {
    return reinterpret_cast<float*>(scales_.get()) +
           size_t{head} * capacity_rows_;
  }
  size_t bytes() const {
    return (key_head_bytes_ + value_head_bytes_ + code_head_bytes_ +
            (codes_ == nullptr ? 0 : sizeof(float) * capacity_rows_)) *
           heads_;
  }

 private:
  const int64_t first_position_;
  const uint32_t capacity_rows_;
  const uint32_t heads_;
  const size_t key_head_bytes_;
  const size_t value_head_bytes_;
  const size_t code_head_bytes_;  // 0 without codes
  struct Free {
    void operator()(char* p) const;
  };
  // Large arrays are 2 MiB aligned and use transparent huge pages: fewer
  // page faults on append and fewer TLB misses in search.
  static char* Allocate(size_t bytes);
  std::unique_ptr<char[], Free> keys_;
  std::unique_ptr<char[], Free> values_;
  std::unique_ptr<char[], Free> codes_;   // with int8 codes
  std::unique_ptr<char[], Free> scales_;  // with int8 codes
};

// An immutable view of the retained entries at one moment.
struct LayerSnapshot {
  std::vector<std::shared_ptr<const Block>> blocks;  // oldest first
  int64_t first_position = 0;
  int64_t next_position = 0;
  // APPROXIMATE layers: the approximate tier, and where its indexed positions
  // ended when the snapshot was taken (later additions are not used).
  std::shared_ptr<const SealedTier> index;
  int64_t indexed_end = -1;

  int64_t entries() const { return next_position - first_position; }
  // The block holding `position`, which must be retained.
  const Block& BlockOf(int64_t position) const;
};

class LayerMemory {
 public:
  explicit LayerMemory(const StreamSpec& spec, LayerOptions options = {});

  LayerMemory(const LayerMemory&) = delete;
  LayerMemory& operator=(const LayerMemory&) = delete;

  // Held by the single appender from StageRows through Publish (across
  // its storage write), or across AppendRows.
  Mutex& append_mutex() { return append_mu_; }

  int64_t first_position() const;
  int64_t next_position() const;

  // Before any row is appended, makes `position` the next position (used
  // when recovering a layer whose oldest positions were evicted).
  void StartAt(int64_t position);

  // Rows copied in but not yet visible: see StageRows.
  struct Staged {
    int64_t next_position = 0;
    std::vector<std::shared_ptr<Block>> new_blocks;
  };

  // Copies `rows` tokens in at next_position without making them visible.
  // `keys` is token-major [rows, heads, key_dim] and `values`
  // [rows, heads, value_dim], both in the storage dtype with rows
  // `key_stride` / `value_stride` bytes apart. Readers never see staged
  // rows; dropping the Staged discards them. Requires append_mutex().
  Staged StageRows(const char* keys, size_t key_stride, const char* values,
                   size_t value_stride, size_t rows);
  // Makes staged rows visible and evicts positions older than
  // next_position - capacity. Requires append_mutex(), held since StageRows.
  void Publish(Staged staged);

  // StageRows then Publish.
  void AppendRows(const char* keys, size_t key_stride, const char* values,
                  size_t value_stride, size_t rows) {
    Publish(StageRows(keys, key_stride, values, value_stride, rows));
  }

  LayerSnapshot Snapshot() const;
  // The approximate tier (APPROXIMATE specs), else nullptr. Attached by the
  // owner right after construction, before any other use.
  const std::shared_ptr<SealedTier>& index() const { return index_; }
  void AttachIndex(std::shared_ptr<SealedTier> index) {
    index_ = std::move(index);
  }
  // Bytes of the blocks held.
  size_t BlockBytes() const;
  // Bytes of all blocks held, and of the approximate tier's lists.
  size_t BytesInRam() const;

 private:
  const StreamSpec spec_;
  const LayerOptions options_;
  std::shared_ptr<SealedTier> index_;
  Mutex append_mu_;
  mutable Mutex mu_;
  std::deque<std::shared_ptr<Block>> blocks_ ABSL_GUARDED_BY(mu_);
  int64_t first_position_ ABSL_GUARDED_BY(mu_) = 0;
  int64_t next_position_ ABSL_GUARDED_BY(mu_) = 0;
  size_t bytes_ ABSL_GUARDED_BY(mu_) = 0;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_MEMORY_LAYER_MEMORY_H_
