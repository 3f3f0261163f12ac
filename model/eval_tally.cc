#include "model/eval_tally.h"

#include <cmath>

#include "model/far_repeats.h"

namespace knnmem::model {

double EvalTally::Sum::bits_per_byte() const {
  return bytes == 0 ? std::nan("") : nats / bytes / std::log(2.0);
}

EvalTally::EvalTally(const std::vector<Document>* documents, int segment)
    : documents_(documents), segment_(segment) {}

const std::vector<bool>& EvalTally::FarOf(int64_t document) {
  auto it = far_of_.find(document);
  if (it == far_of_.end()) {
    const std::string& bytes =
        (*documents_)[static_cast<size_t>(document)].bytes;
    it = far_of_.emplace(document, FarRepeats(bytes, segment_)).first;
  }
  return it->second;
}

void EvalTally::Add(const std::vector<std::optional<Segment>>& batch,
                    const torch::Tensor& per_byte) {
  const torch::Tensor losses =
      per_byte.detach().to(torch::kFloat64).contiguous();
  const int64_t t = losses.size(1);
  for (size_t lane = 0; lane < batch.size(); ++lane) {
    const std::optional<Segment>& s = batch[lane];
    if (!s) continue;
    const std::vector<bool>& far = FarOf(s->document);
    const double* row =
        losses.data_ptr<double>() + static_cast<int64_t>(lane) * t;
    Sum& document = by_document_[s->document];
    for (int64_t j = 0; j < t; ++j) {
      // Input s->offset + j predicts the byte after it.
      const bool is_far = far[static_cast<size_t>(s->offset + j + 1)];
      for (Sum* sum : {&all_, &document, is_far ? &far_ : &rest_}) {
        sum->nats += row[j];
        ++sum->bytes;
      }
    }
  }
}

}  // namespace knnmem::model
