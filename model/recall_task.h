// The recall task: documents whose answers lie beyond the local window and
// the XL cache, so that only memory can give them. A document is 4
// segments of 32 bytes (and one byte more, for the last target), filler
// being the lower-case alphabet, cyclically, from a random letter:
//
//   segment 0     two facts at random places: a digit and an upper-case
//                 letter; then questions "?" (the digit) and "=" (the
//                 letter), each followed by its answer (near answers:
//                 inside the local window, they teach recall)
//   segments 1-2  filler
//   segment 3     the two questions again, at random places, each followed
//                 by its answer: far answers, 64+ bytes after the facts,
//                 past segment 2's XL cache, so in memory only
//
// The question names what to recall by kind (the key), the fact's own
// byte is the value. Chance on a far answer is 1 in 10 (digit) and 1 in 26
// (letter). (Recall of arbitrary "key value" pairs needs an induction
// circuit across two layers, which the tiny model trained in the test's
// budget does not learn.)
#ifndef KNNMEM_MODEL_RECALL_TASK_H_
#define KNNMEM_MODEL_RECALL_TASK_H_

#include <cstdint>
#include <random>
#include <string>
#include <vector>

#include "model/corpus.h"

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
