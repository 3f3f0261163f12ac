#include "model/corpus.h"

#include <glob.h>
#include <sys/stat.h>

#include <algorithm>
#include <cstdio>
#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <limits>
#include <map>
#include <set>
#include <system_error>
#include <utility>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"

namespace knnmem::model {
namespace {

namespace fs = std::filesystem;

constexpr size_t kBinaryProbeBytes = 8192;
// Starts each file's header line in a directory document.
constexpr absl::string_view kFileHeaderMark = "\x1c";

absl::Status SourceError(const std::string& source, absl::string_view what) {
  return absl::InvalidArgumentError(
      absl::StrCat("corpus source ", source, ": ", what));
}

bool HasGlobMagic(absl::string_view text) {
  return text.find_first_of("*?[\\") != absl::string_view::npos;
}

// Whether the canonical `path` lies inside the canonical directory `root`.
bool Within(const fs::path& path, const fs::path& root) {
  return std::mismatch(root.begin(), root.end(), path.begin(), path.end())
             .first == root.end();
}

// The directory that names a source's files: the directory itself, or a
// glob's leading components without magic (the last one excluded).
fs::path SourceRoot(const std::string& source, bool directory) {
  fs::path root;
  if (directory) {
    root = fs::path(source).lexically_normal();
    return root.has_filename() ? root : root.parent_path();  // "d/" is "d"
  }
  const fs::path pattern(source);
  const std::vector<fs::path> parts(pattern.begin(), pattern.end());
  for (size_t i = 0; i + 1 < parts.size(); ++i) {
    if (HasGlobMagic(parts[i].string())) break;
    root /= parts[i];
  }
  return root.empty() ? fs::path(".") : root;
}

// The candidate files of one source: regular files, and symlinks that resolve
// to regular files inside the source's tree or nowhere (to be counted as
// unreadable). Sorted with links last, so a file is named by its own path.
struct Listing {
  absl::Status SetRoot(const std::string& source, bool directory);
  void AddFile(const fs::path& path);
  absl::Status AddTree(const fs::path& dir);
  absl::Status AddMatch(const fs::path& path);

  fs::path root;            // names are relative to this
  fs::path canonical_root;  // files must resolve inside this
  std::string prefix;       // the root's basename
  std::vector<std::pair<bool, fs::path>> files;  // (is a link, path)
};

void Listing::AddFile(const fs::path& path) {
  std::error_code ec;
  const bool link = fs::is_symlink(fs::symlink_status(path, ec));
  const fs::path canonical = fs::canonical(path, ec);
  if (ec || (Within(canonical, canonical_root) &&
             fs::is_regular_file(canonical, ec))) {
    files.emplace_back(link, path);
  }
}

absl::Status Listing::AddTree(const fs::path& dir) {
  std::error_code ec;
  fs::recursive_directory_iterator it(
      dir, fs::directory_options::skip_permission_denied, ec);
  for (; !ec && it != fs::recursive_directory_iterator(); it.increment(ec)) {
    std::error_code entry_ec;
    if (!fs::is_directory(it->symlink_status(entry_ec))) AddFile(it->path());
  }
  if (!ec) return absl::OkStatus();
  return absl::InternalError(
      absl::StrCat("walking ", dir.string(), ": ", ec.message()));
}

absl::Status Listing::SetRoot(const std::string& source, bool directory) {
  root = SourceRoot(source, directory);
  std::error_code ec;
  canonical_root = fs::canonical(root, ec);
  if (ec) return SourceError(source, ec.message());
  const fs::path absolute = fs::absolute(root, ec).lexically_normal();
  prefix = (absolute.has_filename() ? absolute : absolute.parent_path())
               .filename()
               .string();
  return absl::OkStatus();
}

absl::Status Listing::AddMatch(const fs::path& path) {
  std::error_code ec;
  const fs::path canonical = fs::canonical(path, ec);
  if (!ec && !Within(canonical, canonical_root)) return absl::OkStatus();
  if (fs::is_directory(fs::symlink_status(path, ec))) return AddTree(path);
  AddFile(path);
  return absl::OkStatus();
}

absl::StatusOr<Listing> ListSource(const std::string& source) {
  std::error_code ec;
  const bool directory = !HasGlobMagic(source) && fs::is_directory(source, ec);
  glob_t matches{};  // stays empty for a directory
  const int rc = directory ? 0 : glob(source.c_str(), 0, nullptr, &matches);
  std::vector<std::string> paths(matches.gl_pathv,
                                 matches.gl_pathv + matches.gl_pathc);
  globfree(&matches);
  if (rc != 0) {
    return SourceError(source,
                       rc == GLOB_NOMATCH ? "matches no files" : "glob failed");
  }
  Listing listing;
  if (absl::Status status = listing.SetRoot(source, directory); !status.ok()) {
    return status;
  }
  absl::Status status =
      directory ? listing.AddTree(listing.root) : absl::OkStatus();
  for (size_t i = 0; status.ok() && i < paths.size(); ++i) {
    status = listing.AddMatch(paths[i]);
  }
  if (!status.ok()) return status;
  if (listing.files.empty()) return SourceError(source, "matches no files");
  std::sort(listing.files.begin(), listing.files.end());
  return listing;
}

// "<basename of the root>/<path relative to the root>".
std::string NameOf(const Listing& listing, const fs::path& path) {
  const std::string relative =
      path.lexically_normal().lexically_relative(listing.root).generic_string();
  return listing.prefix.empty() ? relative
                                : absl::StrCat(listing.prefix, "/", relative);
}

enum class Outcome { kKept, kDuplicate, kFiltered, kUnreadable };

// Reads the file at `path` into `bytes` unless it was `seen` already, is
// binary or its size is outside [min_bytes, max_bytes].
Outcome ReadFile(const fs::path& path, size_t min_bytes, size_t max_bytes,
                 std::set<std::pair<dev_t, ino_t>>& seen, std::string& bytes) {
  struct stat info;
  if (stat(path.c_str(), &info) != 0) return Outcome::kUnreadable;
  if (!S_ISREG(info.st_mode) ||
      !seen.emplace(info.st_dev, info.st_ino).second) {
    return Outcome::kDuplicate;
  }
  const size_t size = static_cast<size_t>(info.st_size);
  if (size < min_bytes || size > max_bytes) return Outcome::kFiltered;
  std::ifstream in(path, std::ios::binary);
  bytes.assign(size, '\0');
  if (!in.read(bytes.data(), static_cast<std::streamsize>(bytes.size()))) {
    return Outcome::kUnreadable;  // unreadable, or shrunk since stat
  }
  const size_t probe = std::min(bytes.size(), kBinaryProbeBytes);
  return bytes.find('\0') < probe ? Outcome::kFiltered : Outcome::kKept;
}

// The files of directory documents, by document: (source, name) -> (path
// relative to the directory, bytes).
using Directories = std::map<std::pair<size_t, std::string>,
                             std::vector<std::pair<std::string, std::string>>>;

// Files `path` of `listing` (the source numbered `source`) into the document
// of its directory.
void AddToDirectory(const Listing& listing, size_t source, const fs::path& path,
                    std::string bytes, Directories& directories) {
  const fs::path relative =
      path.lexically_normal().lexically_relative(listing.root);
  std::vector<fs::path> parts(relative.begin(), relative.end());
  std::string directory = listing.prefix.empty() ? "." : listing.prefix;
  std::string inside = relative.generic_string();
  if (parts.size() > 1) {
    directory = listing.prefix.empty()
                    ? parts[0].string()
                    : absl::StrCat(listing.prefix, "/", parts[0].string());
    inside = relative.lexically_relative(parts[0]).generic_string();
  }
  directories[{source, directory}].emplace_back(std::move(inside),
                                                std::move(bytes));
}

// Joins each directory's files (sorted by path) into a document, keeping
// those of [min_bytes, max_bytes].
void JoinDirectories(Directories directories, const CorpusOptions& options,
                     Corpus& corpus, std::vector<Document>& documents) {
  for (auto& [key, files] : directories) {
    std::sort(files.begin(), files.end());
    Document document{key.second, "", files.size()};
    for (const auto& [path, bytes] : files) {
      absl::StrAppend(&document.bytes, kFileHeaderMark, path, "\n", bytes);
    }
    const size_t size = document.bytes.size();
    if (size < options.min_bytes || size > options.max_bytes) {
      ++corpus.filtered;
    } else {
      documents.push_back(std::move(document));
    }
  }
}

absl::Status ValidateOptions(const CorpusOptions& options) {
  if (options.sources.empty() || options.min_bytes > options.max_bytes ||
      options.validation_per_mille > 1000) {
    return absl::InvalidArgumentError(absl::StrCat(
        "bad corpus options: ", options.sources.size(), " sources, bytes [",
        options.min_bytes, ", ", options.max_bytes, "], validation_per_mille ",
        options.validation_per_mille));
  }
  return absl::OkStatus();
}

// Sorts `documents` by name into the two sides of `corpus`.
void Split(std::vector<Document> documents, uint32_t per_mille,
           Corpus& corpus) {
  std::stable_sort(
      documents.begin(), documents.end(),
      [](const Document& a, const Document& b) { return a.name < b.name; });
  for (Document& document : documents) {
    (IsValidation(document.name, per_mille) ? corpus.validation : corpus.train)
        .push_back(std::move(document));
  }
}

size_t TotalBytes(const std::vector<Document>& documents) {
  size_t total = 0;
  for (const Document& document : documents) total += document.bytes.size();
  return total;
}

// Uniform in [0, bound) from the raw engine output, unlike
// std::uniform_int_distribution the same on every standard library.
uint64_t UniformBelow(std::mt19937_64& rng, uint64_t bound) {
  constexpr uint64_t kMax = std::numeric_limits<uint64_t>::max();
  const uint64_t limit = kMax - (kMax % bound + 1) % bound;
  uint64_t draw = rng();
  while (draw > limit) draw = rng();
  return draw % bound;
}

}  // namespace

std::vector<std::string> DefaultSources() {
  std::vector<std::string> sources;
  for (const char* dir : {"/usr/include/c++/12", "/usr/lib/python3.11"}) {
    std::error_code ec;
    if (fs::is_directory(dir, ec)) sources.push_back(dir);
  }
  return sources;
}

size_t Corpus::train_bytes() const { return TotalBytes(train); }
size_t Corpus::validation_bytes() const { return TotalBytes(validation); }

bool IsValidation(absl::string_view name, uint32_t validation_per_mille) {
  return Fnv1a64(name) % 1000 < validation_per_mille;
}

absl::StatusOr<Corpus> LoadCorpus(const CorpusOptions& options) {
  if (absl::Status status = ValidateOptions(options); !status.ok()) {
    return status;
  }
  const bool by_directory = options.unit == DocumentUnit::kDirectory;
  Corpus corpus;
  std::vector<Document> documents;
  Directories directories;
  std::set<std::pair<dev_t, ino_t>> seen;
  for (size_t source = 0; source < options.sources.size(); ++source) {
    absl::StatusOr<Listing> listing = ListSource(options.sources[source]);
    if (!listing.ok()) return listing.status();
    for (const auto& [link, path] : listing->files) {
      std::string bytes;
      const Outcome outcome =
          by_directory ? ReadFile(path, 0, std::numeric_limits<size_t>::max(),
                                  seen, bytes)
                       : ReadFile(path, options.min_bytes, options.max_bytes,
                                  seen, bytes);
      corpus.filtered += outcome == Outcome::kFiltered;
      corpus.skipped += outcome == Outcome::kUnreadable;
      if (outcome != Outcome::kKept) continue;
      if (by_directory) {
        AddToDirectory(*listing, source, path, std::move(bytes), directories);
      } else {
        documents.push_back({NameOf(*listing, path), std::move(bytes)});
      }
    }
  }
  JoinDirectories(std::move(directories), options, corpus, documents);
  if (documents.empty()) {
    return absl::NotFoundError(absl::StrCat(
        "no corpus document left after filtering (", corpus.filtered,
        " filtered, ", corpus.skipped, " unreadable)"));
  }
  Split(std::move(documents), options.validation_per_mille, corpus);
  return corpus;
}

SegmentBatcher::SegmentBatcher(const std::vector<Document>* documents,
                               int lanes, int segment, uint64_t seed,
                               bool shuffle, bool repeat)
    : documents_(documents),
      segment_(segment),
      shuffle_(shuffle),
      repeat_(repeat),
      rng_(seed) {
  if (documents == nullptr || lanes < 1 || segment < 1) {
    std::fprintf(stderr,
                 "SegmentBatcher: bad arguments (lanes %d, segment %d)\n",
                 lanes, segment);
    std::abort();
  }
  lanes_.resize(static_cast<size_t>(lanes));
  for (size_t i = 0; i < documents->size(); ++i) {
    if (FullSegments((*documents)[i].bytes.size(), segment) > 0) {
      usable_.push_back(static_cast<int64_t>(i));
    }
  }
  StartPass();
}

int64_t SegmentBatcher::FullSegments(size_t size, int segment) {
  const size_t length = static_cast<size_t>(segment);
  return size < length + 1 ? 0 : static_cast<int64_t>((size - 1) / length);
}

void SegmentBatcher::StartPass() {
  order_ = usable_;
  cursor_ = 0;
  if (!shuffle_) return;
  for (size_t i = order_.size(); i > 1; --i) {  // Fisher-Yates
    std::swap(order_[i - 1], order_[UniformBelow(rng_, i)]);
  }
}

bool SegmentBatcher::DocumentsLeft() const {
  return cursor_ < order_.size() || (repeat_ && !usable_.empty());
}

bool SegmentBatcher::Deal(Lane& lane) {
  if (!DocumentsLeft()) return false;
  if (cursor_ == order_.size()) StartPass();
  lane.document = order_[cursor_++];
  lane.next = 0;
  lane.count = FullSegments(Bytes(lane.document).size(), segment_);
  if (max_segments_ > 0) lane.count = std::min(lane.count, max_segments_);
  return true;
}

std::optional<Segment> SegmentBatcher::Step(Lane& lane, bool fill) {
  if (lane.document < 0 && !Deal(lane)) return std::nullopt;
  Segment segment;
  segment.document = lane.document;
  segment.offset = lane.next * segment_;
  segment.first = lane.next == 0;
  segment.last = lane.next + 1 == lane.count;
  if (fill) {
    segment.bytes = Bytes(lane.document)
                        .substr(static_cast<size_t>(segment.offset),
                                static_cast<size_t>(segment_) + 1);
  }
  ++lane.next;
  if (segment.last) lane.document = -1;
  return segment;
}

std::vector<std::optional<Segment>> SegmentBatcher::Next() {
  ++calls_;
  std::vector<std::optional<Segment>> batch;
  batch.reserve(lanes_.size());
  for (Lane& lane : lanes_) batch.push_back(Step(lane, /*fill=*/true));
  return batch;
}

void SegmentBatcher::Skip(int64_t n) {
  for (int64_t call = 0; call < n; ++call) {
    ++calls_;
    for (Lane& lane : lanes_) Step(lane, /*fill=*/false);
  }
}

bool SegmentBatcher::Done() const {
  for (const Lane& lane : lanes_) {
    if (lane.document >= 0) return false;
  }
  return !DocumentsLeft();
}

}  // namespace knnmem::model
