#include "model/recall_task.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace knnmem::model {
namespace {

// Two distinct even offsets in [from, to - 1): room for a question and
// its answer, or a fact, at each.
std::pair<int64_t, int64_t> TwoPlaces(std::mt19937_64& rng, int64_t from,
                                      int64_t to) {
  std::uniform_int_distribution<int64_t> at(from / 2, (to - 2) / 2);
  int64_t a = at(rng), b = at(rng);
  while (b == a) b = at(rng);
  return {2 * a, 2 * b};
}

}  // namespace

RecallDocument MakeRecallDocument(std::mt19937_64& rng) {
  constexpr int64_t s = kRecallSegment;
  RecallDocument doc;
  doc.bytes.resize(4 * s + 1);
  int letter = std::uniform_int_distribution<int>(0, 25)(rng);
  for (char& c : doc.bytes) c = static_cast<char>('a' + letter++ % 26);
  const char digit =
      static_cast<char>(std::uniform_int_distribution<int>('0', '9')(rng));
  const char capital =
      static_cast<char>(std::uniform_int_distribution<int>('A', 'Z')(rng));
  // Facts in the first half of segment 0, near questions in its second.
  auto [d, c] = TwoPlaces(rng, 0, s / 2);
  doc.bytes[d] = digit;
  doc.bytes[c] = capital;
  auto ask = [&](int64_t at, char question, char answer,
                 std::vector<int64_t>& answers) {
    doc.bytes[at] = question;
    doc.bytes[at + 1] = answer;
    answers.push_back(at + 1);
  };
  auto [q1, q2] = TwoPlaces(rng, s / 2, s);
  ask(q1, '?', digit, doc.near_answers);
  ask(q2, '=', capital, doc.near_answers);
  auto [f1, f2] = TwoPlaces(rng, 3 * s, 4 * s);
  ask(f1, '?', digit, doc.far_answers);
  ask(f2, '=', capital, doc.far_answers);
  return doc;
}

std::vector<Document> MakeRecallCorpus(int count, uint64_t seed,
                                       std::vector<RecallDocument>* answers) {
  std::mt19937_64 rng(seed);
  std::vector<Document> docs;
  for (int i = 0; i < count; ++i) {
    RecallDocument doc = MakeRecallDocument(rng);
    docs.push_back({absl::StrCat("recall-", i), doc.bytes});
    if (answers != nullptr) answers->push_back(std::move(doc));
  }
  return docs;
}

}  // namespace knnmem::model
