#include "recall_task.h"

#include <algorithm>

#include "absl/strings/str_cat.h"

namespace knnmem::model {

RecallDocument MakeRecallDocument(std::mt19937_64& rng) {
  constexpr int kPairs = 16, s = kRecallSegment;
  std::string letters = "abcdefghijklmnopqrstuvwxyz";
  std::shuffle(letters.begin(), letters.end(), rng);
  std::uniform_int_distribution<int> digit('0', '9'), pick(0, kPairs - 1);
  std::string values;
  for (int i = 0; i < kPairs; ++i) values += static_cast<char>(digit(rng));
  RecallDocument doc;
  std::vector<int64_t> last_seen(kPairs);  // segment of each key's last use
  for (int i = 0; i < kPairs; ++i) {
    doc.bytes += letters[i];
    doc.bytes += values[i];
    last_seen[i] = 0;
  }
  while (doc.bytes.size() < 5 * s + 1) {
    const int i = pick(rng);
    const int64_t at = static_cast<int64_t>(doc.bytes.size()) + 1;
    const int64_t segment = at / s;
    doc.bytes += letters[i];
    doc.bytes += values[i];
    (segment - last_seen[i] >= 2 ? doc.far_answers : doc.near_answers)
        .push_back(at);
    last_seen[i] = segment;
  }
  doc.bytes.resize(5 * s + 1);
  while (!doc.far_answers.empty() && doc.far_answers.back() >= 5 * s + 1) {
    doc.far_answers.pop_back();
  }
  while (!doc.near_answers.empty() && doc.near_answers.back() >= 5 * s + 1) {
    doc.near_answers.pop_back();
  }
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
