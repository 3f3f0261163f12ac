// Generator: incremental decoding of several documents (lanes) at once.
//
// Per layer it keeps the XL cache (the previous full segment) and the
// current segment's keys and values so far (SegmentCache); each Step runs
// one new position per lane through the model, so the kNN layer asks
// memory one query per head per lane, all lanes in one call
// (Memory::AttendMany: one DecodeStep when the memory is remote). When the
// segment fills, it becomes the XL cache and the previous cache's kNN keys
// and values go to memory, as ForwardAndEvict does for a whole segment.
// The logits equal those of re-running the partial segment (tested).
// Lanes advance together: every Step feeds one byte to each.
#ifndef KNNMEM_MODEL_GENERATOR_H_
#define KNNMEM_MODEL_GENERATOR_H_

#include <torch/torch.h>

#include <cstdint>
#include <string>
#include <vector>

#include "model/memory_link.h"
#include "model/transformer.h"

namespace knnmem::model {

class Generator {
 public:
  // `link` (not owned) may be null: local attention only. Its lanes must
  // have their documents started.
  Generator(Transformer model, MemoryLink* link, int lanes);

  // Feeds bytes int64 [lanes] at the next position of every lane; returns
  // the logits [lanes, 256] of the byte after them.
  torch::Tensor Step(const torch::Tensor& bytes);

  // Positions fed so far per lane.
  int64_t positions() const { return positions_; }

 private:
  Transformer model_;
  MemoryLink* const link_;
  const int lanes_;
  XlState state_;
  SegmentCache partial_;
  int64_t positions_ = 0;
};

// What GenerateBytes produced, and how long it took.
struct Generated {
  std::vector<std::string> texts;  // per lane: the prompt and what followed
  double seconds = 0;              // the whole generation, prompt included
  double memory_seconds = 0;       // of which waiting on memory's Attend
  int64_t bytes = 0;               // bytes fed through the model, all lanes
};

// Feeds prompts[i] to lane i (the prompts of one length), then samples
// `bytes` more per lane (temperature <= 0: argmax), lanes in lockstep.
// Incremental (Generator), or with `rerun` the way generation worked before it:
// the partial segment re-run for every byte (the baseline the benchmark
// compares with). `link` may be null (local attention only); its lanes'
// documents must be started.
Generated GenerateBytes(Transformer model, MemoryLink* link,
                        const std::vector<std::string>& prompts, int64_t bytes,
                        double temperature, bool rerun);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_GENERATOR_H_
