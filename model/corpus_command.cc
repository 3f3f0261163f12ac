// knnmem-model corpus: the documents that --data and --documents make, one
// line each (split, files, bytes, name), and their length distribution per
// split; DescribeDocuments, the distribution line train and eval print.
#include <algorithm>
#include <cstdio>
#include <memory>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "model/commands.h"

namespace knnmem::model {
namespace {

std::string Size(size_t bytes) {
  return bytes < (size_t{1} << 20)
             ? absl::StrFormat("%.0f KiB", bytes / 1024.0)
             : absl::StrFormat("%.2f MiB", bytes / 1048576.0);
}

void List(const char* split, const std::vector<Document>& documents) {
  for (const Document& d : documents) {
    std::printf("%-10s %6zu files %11zu bytes  %s\n", split, d.files,
                d.bytes.size(), d.name.c_str());
  }
}

}  // namespace

std::string DescribeDocuments(const std::vector<Document>& documents) {
  if (documents.empty()) return "0 documents";
  std::vector<size_t> sizes;
  size_t total = 0;
  for (const Document& d : documents) {
    sizes.push_back(d.bytes.size());
    total += d.bytes.size();
  }
  std::sort(sizes.begin(), sizes.end());
  // The element at fraction q of the sorted sizes (nearest rank).
  auto at = [&sizes](double q) {
    return sizes[static_cast<size_t>(q * static_cast<double>(sizes.size() - 1) +
                                     0.5)];
  };
  return absl::StrCat(documents.size(), " documents, ", Size(total),
                      "; lengths min ", Size(sizes.front()), ", quartiles ",
                      Size(at(0.25)), " / ", Size(at(0.5)), " / ",
                      Size(at(0.75)), ", max ", Size(sizes.back()));
}

namespace {

class CorpusCommand final : public Command {
 public:
  void AddFlags(FlagSet& f) override { AddCorpusFlags(f, &corpus_flags_); }
  absl::Status Run(const FlagSet& flags) override;

 private:
  CorpusFlags corpus_flags_;
};

absl::Status CorpusCommand::Run(const FlagSet& flags) {
  ASSIGN_OR_RETURN(Corpus corpus, CorpusFromFlags(corpus_flags_));
  List("train", corpus.train);
  List("validation", corpus.validation);
  std::printf("train: %s\nvalidation: %s\n",
              DescribeDocuments(corpus.train).c_str(),
              DescribeDocuments(corpus.validation).c_str());
  std::printf(
      "dropped: %zu (binary files, documents out of size range), %zu "
      "unreadable files\n",
      corpus.filtered, corpus.skipped);
  return absl::OkStatus();
}

}  // namespace

std::unique_ptr<Command> NewCorpusCommand() {
  return std::make_unique<CorpusCommand>();
}

}  // namespace knnmem::model
