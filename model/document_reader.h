// DocumentReader: runs the Transformer over a batch of lanes, each reading
// its documents segment by segment, and keeps what carries between
// segments: the XL caches and, through a MemoryLink, each document's
// memory. The kNN layer's keys and values go to memory when they leave the
// XL cache, so during segment t the memory holds segments 0 .. t-2 and the
// cache segment t-1.
#ifndef KNNMEM_MODEL_DOCUMENT_READER_H_
#define KNNMEM_MODEL_DOCUMENT_READER_H_

#include <optional>
#include <string>
#include <vector>

#include "model/corpus.h"
#include "model/memory_link.h"
#include "model/transformer.h"

namespace knnmem::model {

struct StepResult {
  torch::Tensor logits;    // [lanes, T, 256]
  torch::Tensor loss;      // mean cross-entropy (nats) over the lanes' bytes
  torch::Tensor per_byte;  // [lanes, T] each target's cross-entropy (nats)
  int64_t bytes = 0;       // how many targets the loss covers
};

// Runs `model` on `tokens` [lanes, T] from `state`, then pushes into `link`
// the kNN layer's keys and values that the new segment pushed out of the XL
// cache (for lanes whose cache was of the same document). `link` null: no
// memory. Returns the logits.
torch::Tensor ForwardAndEvict(Transformer& model, const torch::Tensor& tokens,
                              XlState& state, MemoryLink* link);

class DocumentReader {
 public:
  // `memory` may be null (XL cache only). Stream ids are
  // "<stream_prefix>-<lane>-<count>".
  DocumentReader(Transformer model, Memory* memory, int lanes,
                 int64_t memory_capacity, bool use_attend,
                 std::string stream_prefix);

  // One segment per lane (nullopt: the lane idles). Segments whose `first`
  // is set start a new document; `last` ends it after this step.
  StepResult Step(const std::vector<std::optional<Segment>>& batch);

  const MemoryLink& link() const { return link_; }

 private:
  Transformer model_;
  const int lanes_;
  const bool has_memory_;
  const std::string stream_prefix_;
  MemoryLink link_;
  XlState state_;
  int64_t documents_ = 0;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_DOCUMENT_READER_H_
