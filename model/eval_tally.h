// EvalTally: eval's sums of cross-entropy over the bytes it read: all of
// them, apart on the far repeats (far_repeats.h) and the rest, and per
// document.
#ifndef KNNMEM_MODEL_EVAL_TALLY_H_
#define KNNMEM_MODEL_EVAL_TALLY_H_

#include <torch/torch.h>

#include <cstdint>
#include <map>
#include <optional>
#include <vector>

#include "model/corpus.h"

namespace knnmem::model {

class EvalTally {
 public:
  struct Sum {
    double nats = 0;
    int64_t bytes = 0;
    double bits_per_byte() const;  // NaN without bytes
  };

  // Documents read in segments of `segment` bytes; `documents` must outlive
  // the tally.
  EvalTally(const std::vector<Document>* documents, int segment);

  // One step: the batch's segments and their per-byte losses [lanes, T].
  void Add(const std::vector<std::optional<Segment>>& batch,
           const torch::Tensor& per_byte);

  const Sum& all() const { return all_; }
  const Sum& far() const { return far_; }
  const Sum& rest() const { return rest_; }
  // Document index -> its sum, for the documents read.
  const std::map<int64_t, Sum>& documents() const { return by_document_; }

 private:
  const std::vector<bool>& FarOf(int64_t document);

  const std::vector<Document>* documents_;
  const int segment_;
  std::map<int64_t, std::vector<bool>> far_of_;  // computed on first use
  Sum all_, far_, rest_;
  std::map<int64_t, Sum> by_document_;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_EVAL_TALLY_H_
