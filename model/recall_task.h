// The associative-recall task: documents whose answers often lie beyond
// the local window and the XL cache, so that only memory can give them. A
// document is 5 segments of 32 bytes (and one byte more, for the last
// target):
//
//   segment 0     16 definitions "kv": a letter key (16 of a-z), a digit
//   segments 1-4  64 questions "kv", keys drawn at random from the 16: the
//                 value must be recalled
//
// An answer is "far" when its key was last seen (defined or asked) two or
// more segments before its own: out of the local segment and the XL cache
// of the previous one, so in memory only. Chance on an answer is 1 in 10.
#ifndef KNNMEM_MODEL_RECALL_TASK_H_
#define KNNMEM_MODEL_RECALL_TASK_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "corpus.h"

namespace knnmem::model {

inline constexpr int kRecallSegment = 32;

struct RecallDocument {
  std::string bytes;
  // Offsets of the answer bytes (predicted from the byte before).
  std::vector<int64_t> near_answers, far_answers;
};

RecallDocument MakeRecallDocument(std::mt19937_64& rng);

// `count` documents drawn from `seed`, as a corpus for SegmentBatcher.
std::vector<Document> MakeRecallCorpus(int count, uint64_t seed,
                                       std::vector<RecallDocument>* answers);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_RECALL_TASK_H_
