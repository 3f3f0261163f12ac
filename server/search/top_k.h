// TopK: the k best (score, position) pairs seen so far, with a threshold that
// lets a scan reject most candidates with one comparison.
//
// Order: higher score first; among equal scores, the newer (higher)
// position first. Fewer than k candidates leave the tail empty
// (score -inf, position -1).
#ifndef KNNMEM_SERVER_SEARCH_TOP_K_H_
#define KNNMEM_SERVER_SEARCH_TOP_K_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace knnmem {

struct ScoredPosition {
  float score;
  int64_t position;
};

// True when a ranks before b. A function object, so that sorts inline it.
struct RanksBeforeFn {
  bool operator()(const ScoredPosition& a, const ScoredPosition& b) const {
    return a.score > b.score || (a.score == b.score && a.position > b.position);
  }
};
inline constexpr RanksBeforeFn RanksBefore{};

// Candidates go into a buffer of 2k; when it fills, a selection keeps the k
// best and raises the threshold to the k-th score. That costs O(1) per
// candidate amortised, against O(log k) with mispredicted branches for a
// heap, and candidates are rare once the threshold is up.
class TopK {
 public:
  explicit TopK(uint32_t k) : k_(k), capacity_(2 * size_t{k}) {
    buffer_.reserve(capacity_);
  }

  // Scores below threshold() can never enter; equal ones may (ties).
  float threshold() const { return threshold_; }
  uint32_t k() const { return k_; }

  void Push(float score, int64_t position) {
    buffer_.push_back({score, position});
    if (buffer_.size() == capacity_) Compact();
  }

  // Writes k entries best first, padding with (-inf, -1).
  void Finish(float* scores, int64_t* positions) {
    if (buffer_.size() > k_) Compact();
    std::sort(buffer_.begin(), buffer_.end(), RanksBefore);
    for (uint32_t i = 0; i < k_; ++i) {
      if (i < buffer_.size()) {
        scores[i] = buffer_[i].score;
        positions[i] = buffer_[i].position;
      } else {
        scores[i] = -std::numeric_limits<float>::infinity();
        positions[i] = -1;
      }
    }
  }

 private:
  // Keeps the k best candidates; the k-th score becomes the threshold.
  void Compact() {
    std::nth_element(buffer_.begin(), buffer_.begin() + (k_ - 1), buffer_.end(),
                     RanksBefore);
    threshold_ = buffer_[k_ - 1].score;
    buffer_.resize(k_);
  }

  uint32_t k_;
  size_t capacity_;                     // 2k
  std::vector<ScoredPosition> buffer_;  // at most capacity_ candidates
  float threshold_ = -std::numeric_limits<float>::infinity();
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SEARCH_TOP_K_H_
