// Corpus: the training text of the byte-level language model. Owns finding
// and reading long documents on disk (LoadCorpus): each a file, or each a
// directory's files joined; the deterministic train/validation split by
// document name, and serving documents as fixed-size overlapping segments to
// parallel batch lanes (SegmentBatcher).
#ifndef KNNMEM_MODEL_CORPUS_H_
#define KNNMEM_MODEL_CORPUS_H_

#include <cstddef>
#include <cstdint>
#include <optional>
#include <random>
#include <string>
#include <vector>

#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/stable_hash.h"  // Fnv1a64, which splits the corpus

namespace knnmem::model {

struct Document {
  // Path relative to the source it came from, prefixed by that source's
  // basename: source "/usr/lib/python3.11" gives "python3.11/json/decoder.py"
  // and "/usr/include/c++/12" gives "12/bits/stl_vector.h" (a directory
  // document: "python3.11/json", "12/bits").
  std::string name;
  std::string bytes;  // the whole file, or the directory's files joined
  size_t files = 1;   // how many files it joins
};

// What one document is.
enum class DocumentUnit {
  kFile,  // a file
  // A directory: each directory right below a source's root is one
  // document of every file in its subtree, and the root's own files are one
  // more, named by the root ("python3.11/email"; "python3.11"). A glob's
  // root is its leading literal directory. Its text files in the byte order
  // of their paths relative to the directory, each preceded by one header
  // line: the byte 0x1C (ASCII's file separator), that path, "\n". Files are
  // read whatever their size; min_bytes and max_bytes bound the joined
  // document, headers included.
  kDirectory,
};

struct CorpusOptions {
  // Directories (walked recursively; symlinked directories are not followed
  // and symlinked files only when they resolve inside the tree) or glob(3)
  // patterns. A glob's names are relative to its leading literal directory:
  // "/d/*.h" names the file /d/x.h "d/x.h", as the source "/d" does. Each file
  // (device and inode) is read once even if several sources list it; the
  // first source to list it names it, by its own path rather than a link's.
  // Sources sharing a basename can yield two documents of the same name.
  std::vector<std::string> sources;
  DocumentUnit unit = DocumentUnit::kFile;
  size_t min_bytes = 20000;    // shorter documents are skipped
  size_t max_bytes = 4 << 20;  // longer documents are skipped
  // Share of documents held out: Fnv1a64(name) % 1000 <
  // validation_per_mille.
  uint32_t validation_per_mille = 50;
};

// The C++ standard library headers and the Python standard library of this
// machine: those of "/usr/include/c++/12" and "/usr/lib/python3.11" that
// exist.
std::vector<std::string> DefaultSources();

struct Corpus {
  std::vector<Document> train;       // sorted by name
  std::vector<Document> validation;  // sorted by name
  size_t skipped = 0;   // files that could not be read (or dangling links)
  size_t filtered = 0;  // files dropped for being binary, documents for size

  size_t train_bytes() const;
  size_t validation_bytes() const;
};

// Whether the document called `name` is held out for validation.
bool IsValidation(absl::string_view name, uint32_t validation_per_mille);

// Reads the files of `options.sources`, dropping binary files (a NUL byte in
// the first 8 KiB), into documents, dropping documents outside [min_bytes,
// max_bytes]. Errors:
// INVALID_ARGUMENT for bad options or naming a source that matches no file;
// NOT_FOUND when no document is left after filtering.
absl::StatusOr<Corpus> LoadCorpus(const CorpusOptions& options);

// One segment of one document for one batch lane.
struct Segment {
  int64_t document = -1;  // index into the document vector
  int64_t offset = 0;     // byte offset of bytes[0] in the document
  bool first = false;     // the document's first segment: reset cache/memory
  bool last = false;      // no further segment of this document on this lane
  // segment + 1 bytes: inputs bytes[0, segment), targets bytes[1, segment].
  std::string bytes;
};

// Serves `lanes` documents side by side, each lane reading its document
// segment after segment: segment i covers [i*S, i*S+S+1), so consecutive
// segments overlap by one byte, a tail shorter than S+1 bytes is dropped and
// documents shorter than S+1 bytes are skipped. Documents are dealt to free
// lanes in lane order, from the documents in order or, with `shuffle`, from a
// permutation drawn from std::mt19937_64(seed) (Fisher-Yates with unbiased
// draws on the raw engine output, so the same on every standard library).
// With `repeat` a new pass (and permutation) starts whenever one runs out and
// the batcher never ends (unless no document has a full segment); without,
// lanes run dry (std::nullopt) and Done() is true once every lane is dry,
// i.e. when Next() would return only std::nullopt. `documents` must outlive the
// batcher and not change. Requires lanes >= 1 and segment >= 1.
class SegmentBatcher {
 public:
  SegmentBatcher(const std::vector<Document>* documents, int lanes, int segment,
                 uint64_t seed, bool shuffle, bool repeat);

  // One segment (or std::nullopt for a dry lane) per lane.
  std::vector<std::optional<Segment>> Next();
  bool Done() const;

  // At most `n` segments (the first ones) of each document; 0 = all.
  // Applies to documents dealt after the call: call it before Next().
  void set_max_segments_per_document(int64_t n) { max_segments_ = n; }

  // Next() calls made so far, Skip()ped ones included. A batcher built with
  // the same arguments that then Skip(n)s returns the same batches as this
  // one after n calls.
  int64_t calls() const { return calls_; }
  void Skip(int64_t n);

  // Full segments in a document of `size` bytes.
  static int64_t FullSegments(size_t size, int segment);

 private:
  struct Lane {
    int64_t document = -1;  // -1: free
    int64_t next = 0;       // next segment index
    int64_t count = 0;      // segments to serve from `document`
  };

  const std::string& Bytes(int64_t document) const {
    return (*documents_)[static_cast<size_t>(document)].bytes;
  }
  std::optional<Segment> Step(Lane& lane, bool fill);
  bool Deal(Lane& lane);
  bool DocumentsLeft() const;
  void StartPass();

  const std::vector<Document>* documents_;
  int segment_;
  bool shuffle_;
  bool repeat_;
  std::mt19937_64 rng_;
  std::vector<int64_t> usable_;  // documents with at least one full segment
  std::vector<int64_t> order_;   // the current pass
  size_t cursor_ = 0;            // next document of order_ to deal
  std::vector<Lane> lanes_;
  int64_t max_segments_ = 0;
  int64_t calls_ = 0;
};

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_CORPUS_H_
