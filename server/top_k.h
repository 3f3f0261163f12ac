// TopK: the k best (score, position) pairs seen so far, with a threshold that
// lets a scan reject most candidates with one comparison.
//
// Order: higher score first; among equal scores, the newer (higher)
// position first. Fewer than k candidates leave the tail empty
// (score -inf, position -1).
#ifndef KNNMEM_SERVER_TOP_K_H_
#define KNNMEM_SERVER_TOP_K_H_

#include <algorithm>
#include <cstdint>
#include <limits>
#include <vector>

namespace knnmem {

struct ScoredPosition {
  float score;
  int64_t position;
};

// True when a ranks before b.
inline bool RanksBefore(const ScoredPosition& a, const ScoredPosition& b) {
  return a.score > b.score || (a.score == b.score && a.position > b.position);
}

class TopK {
 public:
  explicit TopK(uint32_t k) : k_(k) { heap_.reserve(k); }

  void Reset() {
    heap_.clear();
    threshold_ = -std::numeric_limits<float>::infinity();
  }

  // Scores below threshold() can never enter; equal ones may (ties).
  float threshold() const { return threshold_; }

  void Push(float score, int64_t position) {
    const ScoredPosition c{score, position};
    if (heap_.size() < k_) {
      heap_.push_back(c);
      std::push_heap(heap_.begin(), heap_.end(), RanksBefore);
      if (heap_.size() == k_) threshold_ = heap_.front().score;
      return;
    }
    // heap_.front() is the worst kept entry.
    if (!RanksBefore(c, heap_.front())) return;
    std::pop_heap(heap_.begin(), heap_.end(), RanksBefore);
    heap_.back() = c;
    std::push_heap(heap_.begin(), heap_.end(), RanksBefore);
    threshold_ = heap_.front().score;
  }

  // Writes k entries best first, padding with (-inf, -1).
  void Finish(float* scores, int64_t* positions) {
    std::sort_heap(heap_.begin(), heap_.end(), RanksBefore);
    for (uint32_t i = 0; i < k_; ++i) {
      if (i < heap_.size()) {
        scores[i] = heap_[i].score;
        positions[i] = heap_[i].position;
      } else {
        scores[i] = -std::numeric_limits<float>::infinity();
        positions[i] = -1;
      }
    }
  }

 private:
  const uint32_t k_;
  std::vector<ScoredPosition> heap_;  // a heap whose front is the worst
  float threshold_ = -std::numeric_limits<float>::infinity();
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_TOP_K_H_
