#include "server/search/coded_block_scan.h"

#include <algorithm>

namespace knnmem {
namespace {

// The retained rows of a block in a snapshot: [lo, hi), empty if hi <= lo.
struct Retained {
  int64_t lo, hi;
};
Retained RetainedOf(const LayerSnapshot& snapshot, const Block& block) {
  return {std::max(snapshot.first_position, block.first_position()),
          std::min<int64_t>(snapshot.next_position,
                            block.first_position() + block.capacity_rows())};
}

}  // namespace

CodedBlockScan::CodedBlockScan(FewQueryIsa isa, const StreamSpec& spec,
                               uint32_t head, const float* queries,
                               size_t stride, uint32_t m, uint32_t k, TopK* top)
    : isa_(isa),
      head_(head),
      dim_(spec.key_dim),
      m_(m),
      row_bytes_(size_t{spec.key_dim} * ElementSize(spec.storage_dtype)),
      packed_(size_t{m} * spec.key_dim),
      // The scan keeps the packed queries' norms: packed_ (declared
      // before scan_) is filled first.
      scan_(
          isa,
          [&] {
            for (uint32_t j = 0; j < m; ++j) {
              std::copy_n(queries + j * stride, dim_,
                          packed_.data() + size_t{j} * dim_);
            }
            return packed_.data();
          }(),
          m, spec.key_dim, k, spec.storage_dtype) {
  for (uint32_t j = 0; j < m; ++j) {
    who_.push_back(j);
    tops_.push_back(top + j);
  }
}

bool CodedBlockScan::Applies(const LayerSnapshot& snapshot, uint32_t head) {
  return !snapshot.blocks.empty() &&
         snapshot.blocks.front()->codes(head) != nullptr;
}

void CodedBlockScan::ScanBlock(const Block& block, int64_t lo, int64_t hi) {
  const size_t row0 = static_cast<size_t>(lo - block.first_position());
  const char* keys = block.keys(head_) + row0 * row_bytes_;
  scan_.Scan(
      packed_.data(), who_.data(), m_, block.codes(head_) + row0 * dim_,
      block.scales(head_) + row0, static_cast<uint32_t>(hi - lo),
      [&](const uint32_t* rows, uint32_t count, const char** out) {
        for (uint32_t i = 0; i < count; ++i)
          out[i] = keys + rows[i] * row_bytes_;
      },
      lo, tops_.data());
}

void CodedBlockScan::ScanSmallLayer(const LayerSnapshot& snapshot) {
  // The retained rows are the positions [first_position, next_position),
  // block after block: their approximate scores, scales and key addresses
  // side by side, so that the rows to score again, few per block, are
  // rescored in one run (their rows asked for ahead of the kernel).
  const size_t n = static_cast<size_t>(snapshot.entries());
  thread_local std::vector<float> approx, scales;
  thread_local std::vector<const char*> keys;
  approx.resize(m_ * n);
  scales.resize(n);
  keys.resize(n);
  size_t at = 0;
  for (const auto& block : snapshot.blocks) {
    const Retained r = RetainedOf(snapshot, *block);
    if (r.hi <= r.lo) continue;
    const size_t row0 = static_cast<size_t>(r.lo - block->first_position());
    const uint32_t rows = static_cast<uint32_t>(r.hi - r.lo);
    const float* block_scales = block->scales(head_) + row0;
    ScoreInt8Rows(isa_, packed_.data(), dim_, m_, dim_,
                  block->codes(head_) + row0 * dim_, block_scales, rows,
                  approx.data() + at, n);
    std::copy_n(block_scales, rows, scales.data() + at);
    const char* row = block->keys(head_) + row0 * row_bytes_;
    for (uint32_t i = 0; i < rows; ++i, row += row_bytes_) keys[at + i] = row;
    at += rows;
  }
  scan_.Observe(who_.data(), m_, approx.data(), n, scales.data(),
                static_cast<uint32_t>(n));
  scan_.Settle(who_.data(), m_);
  scan_.Rescore(
      packed_.data(), who_.data(), m_, approx.data(), n, scales.data(),
      static_cast<uint32_t>(n),
      [&](const uint32_t* rows, uint32_t count, const char** out) {
        for (uint32_t i = 0; i < count; ++i) out[i] = keys[rows[i]];
      },
      snapshot.first_position, tops_.data());
}

}  // namespace knnmem
