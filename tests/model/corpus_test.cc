#include "model/corpus.h"

#include <sys/stat.h>
#include <unistd.h>

#include <cstdlib>
#include <filesystem>
#include <fstream>
#include <map>
#include <optional>
#include <random>
#include <set>
#include <string>
#include <tuple>
#include <utility>
#include <vector>

#include "absl/status/status.h"
#include "absl/strings/match.h"
#include "absl/strings/str_cat.h"
#include "base/temp_dir.h"
#include "gtest/gtest.h"

namespace knnmem::model {
namespace {

namespace fs = std::filesystem;

// Printable text of `size` bytes, different for each `seed`.
std::string Text(size_t size, uint32_t seed) {
  std::mt19937 rng(seed);
  std::string text(size, ' ');
  for (char& c : text) c = static_cast<char>('a' + rng() % 26);
  return text;
}

// FNV-1a 64, written out here to check the library's split independently.
uint64_t ReferenceFnv(const std::string& text) {
  uint64_t hash = 14695981039346656037ULL;
  for (char c : text) {
    hash = (hash ^ static_cast<uint8_t>(c)) * 1099511628211ULL;
  }
  return hash;
}

std::vector<std::string> Names(const std::vector<Document>& documents) {
  std::vector<std::string> names;
  for (const Document& document : documents) names.push_back(document.name);
  return names;
}

class CorpusTest : public ::testing::Test {
 protected:
  void SetUp() override { root_ = dir_.path(); }

  // Writes `bytes` at `relative` under the temp dir; returns the full path.
  std::string Write(const std::string& relative, const std::string& bytes) {
    const fs::path path = fs::path(root_) / relative;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    EXPECT_TRUE(out.good()) << path;
    return path.string();
  }
  std::string Path(const std::string& relative) const {
    return (fs::path(root_) / relative).string();
  }
  CorpusOptions Options(std::vector<std::string> sources) const {
    CorpusOptions options;
    options.sources = std::move(sources);
    options.min_bytes = 100;
    options.max_bytes = 10000;
    options.validation_per_mille = 0;
    return options;
  }

  TempDir dir_{"corpus_test."};
  std::string root_;
};

TEST_F(CorpusTest, FiltersBySizeAndBinaryAndNamesBySource) {
  std::map<std::string, std::string> kept = {
      {"src/min.txt", Text(100, 1)},
      {"src/max.txt", Text(10000, 2)},
      {"src/sub/deep/nested.txt", Text(500, 3)},
  };
  std::string late_nul = Text(9000, 4);
  late_nul[8192] = '\0';  // past the 8 KiB probe: still text
  kept["src/late_nul.txt"] = late_nul;
  for (const auto& [name, bytes] : kept) Write(name, bytes);
  std::string early_nul = Text(9000, 5);
  early_nul[8191] = '\0';
  Write("src/early_nul.txt", early_nul);
  Write("src/short.txt", Text(99, 6));
  Write("src/long.txt", Text(10001, 7));

  absl::StatusOr<Corpus> corpus = LoadCorpus(Options({Path("src")}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  std::map<std::string, std::string> loaded;
  for (const Document& document : corpus->train) {
    loaded[document.name] = document.bytes;
  }
  EXPECT_EQ(loaded, kept);
  EXPECT_TRUE(corpus->validation.empty());
  EXPECT_EQ(corpus->filtered, 3u);
  EXPECT_EQ(corpus->skipped, 0u);
  EXPECT_EQ(corpus->train_bytes(), 100u + 10000u + 500u + 9000u);
  EXPECT_EQ(corpus->validation_bytes(), 0u);
}

TEST_F(CorpusTest, DanglingLinkCountsAsSkipped) {
  Write("src/a.txt", Text(200, 1));
  ASSERT_EQ(symlink(Path("src/missing.txt").c_str(), Path("src/b.txt").c_str()),
            0);
  absl::StatusOr<Corpus> corpus = LoadCorpus(Options({Path("src")}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train), std::vector<std::string>{"src/a.txt"});
  EXPECT_EQ(corpus->skipped, 1u);
}

// (An unreadable file also counts as skipped; tests run as root here, who
// reads files of any mode, so the dangling link above stands for it.)

TEST_F(CorpusTest, FollowsNoLinksOutOfTheTree) {
  Write("outside/file.txt", Text(300, 1));
  Write("outside/dir/inner.txt", Text(300, 2));
  Write("src/real.txt", Text(300, 3));
  ASSERT_EQ(symlink(Path("outside/file.txt").c_str(),
                    Path("src/file_link.txt").c_str()),
            0);
  ASSERT_EQ(symlink(Path("outside/dir").c_str(), Path("src/dir_link").c_str()),
            0);
  ASSERT_EQ(symlink("real.txt", Path("src/a_link.txt").c_str()), 0);
  for (const std::string& source : {Path("src"), Path("src/*")}) {
    absl::StatusOr<Corpus> corpus = LoadCorpus(Options({source}));
    ASSERT_TRUE(corpus.ok()) << corpus.status();
    // The in-tree link names the same file as real.txt, which names it.
    EXPECT_EQ(Names(corpus->train), std::vector<std::string>{"src/real.txt"})
        << source;
  }
}

TEST_F(CorpusTest, GlobAndDirectoryNamingAFileYieldItOnce) {
  Write("src/a.txt", Text(200, 1));
  Write("src/b.txt", Text(200, 2));
  Write("src/sub/c.py", Text(200, 3));
  const std::vector<std::string> all = {"src/a.txt", "src/b.txt",
                                        "src/sub/c.py"};
  absl::StatusOr<Corpus> corpus = LoadCorpus(Options(
      {Path("src/*.txt"), Path("src"), Path("src/a.txt"), Path("src/")}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train), all);

  corpus = LoadCorpus(Options({Path("src/*.txt")}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train),
            (std::vector<std::string>{"src/a.txt", "src/b.txt"}));

  corpus = LoadCorpus(Options({Path("src/sub/c.py")}));  // a literal file
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train), std::vector<std::string>{"sub/c.py"});

  corpus = LoadCorpus(Options({Path("src/*")}));  // walks the matched dir
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train), all);
}

TEST_F(CorpusTest, Fnv1a64MatchesKnownValues) {
  EXPECT_EQ(Fnv1a64(""), 0xcbf29ce484222325ULL);
  EXPECT_EQ(Fnv1a64("a"), 0xaf63dc4c8601ec8cULL);
  EXPECT_EQ(Fnv1a64("foobar"), 0x85944171f73967e8ULL);
}

TEST_F(CorpusTest, SplitIsByNameHashAndIndependentOfOtherFiles) {
  for (int i = 0; i < 40; ++i) {
    Write(absl::StrCat("src/f", i, ".txt"),
          Text(200, static_cast<uint32_t>(i)));
  }
  CorpusOptions options = Options({Path("src")});
  options.validation_per_mille = 500;
  absl::StatusOr<Corpus> corpus = LoadCorpus(options);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_FALSE(corpus->train.empty());
  ASSERT_FALSE(corpus->validation.empty());
  EXPECT_EQ(corpus->train.size() + corpus->validation.size(), 40u);
  std::map<std::string, bool> held_out;
  for (const auto* side : {&corpus->train, &corpus->validation}) {
    const std::vector<std::string> names = Names(*side);
    EXPECT_TRUE(std::is_sorted(names.begin(), names.end()));
    for (const std::string& name : names) {
      held_out[name] = side == &corpus->validation;
      EXPECT_EQ(held_out[name], ReferenceFnv(name) % 1000 < 500) << name;
    }
  }
  for (int i = 0; i < 40; i += 2)
    fs::remove(Path(absl::StrCat("src/f", i, ".txt")));
  absl::StatusOr<Corpus> half = LoadCorpus(options);
  ASSERT_TRUE(half.ok()) << half.status();
  EXPECT_EQ(half->train.size() + half->validation.size(), 20u);
  for (const Document& document : half->train) {
    EXPECT_FALSE(held_out.at(document.name)) << document.name;
  }
  for (const Document& document : half->validation) {
    EXPECT_TRUE(held_out.at(document.name)) << document.name;
  }
}

TEST_F(CorpusTest, SplitThresholdIsExclusive) {
  Write("src/only.txt", Text(200, 1));
  const uint64_t bucket = ReferenceFnv("src/only.txt") % 1000;
  CorpusOptions options = Options({Path("src")});
  options.validation_per_mille = static_cast<uint32_t>(bucket);
  absl::StatusOr<Corpus> corpus = LoadCorpus(options);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->train), std::vector<std::string>{"src/only.txt"});
  options.validation_per_mille = static_cast<uint32_t>(bucket + 1);
  corpus = LoadCorpus(options);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(Names(corpus->validation),
            std::vector<std::string>{"src/only.txt"});
}

TEST_F(CorpusTest, SplitExtremesAndRepeatability) {
  for (int i = 0; i < 10; ++i) {
    Write(absl::StrCat("src/f", i, ".txt"),
          Text(200, static_cast<uint32_t>(i)));
  }
  CorpusOptions options = Options({Path("src")});
  options.validation_per_mille = 1000;
  absl::StatusOr<Corpus> all_held_out = LoadCorpus(options);
  ASSERT_TRUE(all_held_out.ok()) << all_held_out.status();
  EXPECT_TRUE(all_held_out->train.empty());
  EXPECT_EQ(all_held_out->validation.size(), 10u);
  EXPECT_EQ(all_held_out->validation_bytes(), 2000u);

  options.validation_per_mille = 300;
  absl::StatusOr<Corpus> first = LoadCorpus(options);
  absl::StatusOr<Corpus> second = LoadCorpus(options);
  ASSERT_TRUE(first.ok() && second.ok());
  EXPECT_EQ(Names(first->train), Names(second->train));
  EXPECT_EQ(Names(first->validation), Names(second->validation));
}

TEST_F(CorpusTest, SourceMatchingNothingIsInvalidArgumentNamingIt) {
  Write("src/a.txt", Text(200, 1));
  fs::create_directories(Path("empty"));
  for (const std::string& bad :
       {Path("missing"), Path("src/*.nothing"), Path("empty")}) {
    absl::StatusOr<Corpus> corpus = LoadCorpus(Options({Path("src"), bad}));
    EXPECT_EQ(corpus.status().code(), absl::StatusCode::kInvalidArgument)
        << bad;
    EXPECT_TRUE(absl::StrContains(corpus.status().message(), bad))
        << corpus.status();
  }
}

TEST_F(CorpusTest, BadOptionsAreInvalidArgument) {
  Write("src/a.txt", Text(200, 1));
  CorpusOptions options = Options({});
  EXPECT_EQ(LoadCorpus(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options({Path("src")});
  options.min_bytes = options.max_bytes + 1;
  EXPECT_EQ(LoadCorpus(options).status().code(),
            absl::StatusCode::kInvalidArgument);
  options = Options({Path("src")});
  options.validation_per_mille = 1001;
  EXPECT_EQ(LoadCorpus(options).status().code(),
            absl::StatusCode::kInvalidArgument);
}

TEST_F(CorpusTest, NothingLeftAfterFilteringIsNotFound) {
  Write("src/short.txt", Text(50, 1));
  std::string binary = Text(500, 2);
  binary[0] = '\0';
  Write("src/binary.bin", binary);
  EXPECT_EQ(LoadCorpus(Options({Path("src")})).status().code(),
            absl::StatusCode::kNotFound);
}

TEST_F(CorpusTest, DefaultSourcesAreTheExistingStandardLibraries) {
  std::vector<std::string> expected;
  for (const char* dir : {"/usr/include/c++/12", "/usr/lib/python3.11"}) {
    struct stat info;
    if (stat(dir, &info) == 0 && S_ISDIR(info.st_mode)) expected.push_back(dir);
  }
  EXPECT_EQ(DefaultSources(), expected);
}

// --- SegmentBatcher ---

constexpr int kSegment = 16;

std::vector<Document> Documents(const std::vector<size_t>& sizes) {
  std::vector<Document> documents;
  for (size_t i = 0; i < sizes.size(); ++i) {
    documents.push_back(
        {absl::StrCat("d", i), Text(sizes[i], static_cast<uint32_t>(100 + i))});
  }
  return documents;
}

struct Served {
  int lane;
  int64_t document;
  int64_t offset;
  bool first;
  bool last;
  bool operator<(const Served& o) const {
    return std::tie(lane, document, offset, first, last) <
           std::tie(o.lane, o.document, o.offset, o.first, o.last);
  }
  bool operator==(const Served& o) const {
    return !(*this < o) && !(o < *this);
  }
  bool operator!=(const Served& o) const { return !(*this == o); }
};

void PrintTo(const Served& s, std::ostream* os) {
  *os << "lane " << s.lane << " doc " << s.document << "@" << s.offset
      << (s.first ? " first" : "") << (s.last ? " last" : "");
}

// Checks `segment` against the document's bytes at its offset.
void ExpectBytesMatch(const std::vector<Document>& documents,
                      const Segment& segment, int length) {
  ASSERT_GE(segment.document, 0);
  ASSERT_LT(segment.document, static_cast<int64_t>(documents.size()));
  const std::string& whole = documents[segment.document].bytes;
  ASSERT_LE(segment.offset + length + 1, static_cast<int64_t>(whole.size()));
  ASSERT_EQ(segment.bytes.size(), static_cast<size_t>(length) + 1);
  for (int i = 0; i <= length; ++i) {
    ASSERT_EQ(segment.bytes[i], whole[segment.offset + i])
        << "document " << segment.document << " offset " << segment.offset;
  }
}

// Everything `batcher` serves until Done(), in order, bytes checked.
std::vector<Served> Drain(SegmentBatcher& batcher,
                          const std::vector<Document>& documents, int length) {
  std::vector<Served> served;
  for (int call = 0; !batcher.Done(); ++call) {
    if (call > 100000) {
      ADD_FAILURE() << "batcher never done";
      break;
    }
    const std::vector<std::optional<Segment>> batch = batcher.Next();
    for (size_t lane = 0; lane < batch.size(); ++lane) {
      if (!batch[lane].has_value()) continue;
      ExpectBytesMatch(documents, *batch[lane], length);
      served.push_back({static_cast<int>(lane), batch[lane]->document,
                        batch[lane]->offset, batch[lane]->first,
                        batch[lane]->last});
    }
  }
  return served;
}

// (document, offset) of every full segment, at most `max` per document.
std::multiset<std::pair<int64_t, int64_t>> AllSegments(
    const std::vector<Document>& documents, int length, int64_t max = 0) {
  std::multiset<std::pair<int64_t, int64_t>> all;
  for (size_t d = 0; d < documents.size(); ++d) {
    int64_t count = 0;
    for (size_t offset = 0; offset + length + 1 <= documents[d].bytes.size() &&
                            (max == 0 || count < max);
         offset += length, ++count) {
      all.emplace(d, offset);
    }
  }
  return all;
}

std::multiset<std::pair<int64_t, int64_t>> Positions(
    const std::vector<Served>& served) {
  std::multiset<std::pair<int64_t, int64_t>> positions;
  for (const Served& s : served) positions.emplace(s.document, s.offset);
  return positions;
}

// On each lane, each document's segments run consecutively from offset 0,
// flagged first at the start and last at the end.
void ExpectLaneRuns(const std::vector<Served>& served, int length) {
  std::map<int, std::vector<Served>> lanes;
  for (const Served& s : served) lanes[s.lane].push_back(s);
  for (const auto& [lane, run] : lanes) {
    for (size_t i = 0; i < run.size(); ++i) {
      const bool starts = i == 0 || run[i - 1].last;
      EXPECT_EQ(run[i].first, starts) << "lane " << lane << " item " << i;
      EXPECT_EQ(run[i].first, run[i].offset == 0);
      if (!starts) {
        EXPECT_EQ(run[i].document, run[i - 1].document);
        EXPECT_EQ(run[i].offset, run[i - 1].offset + length);
      }
    }
    EXPECT_TRUE(run.back().last) << "lane " << lane;
  }
}

TEST(SegmentBatcherTest, FullSegmentsDropsTheTail) {
  EXPECT_EQ(SegmentBatcher::FullSegments(0, 16), 0);
  EXPECT_EQ(SegmentBatcher::FullSegments(16, 16), 0);
  EXPECT_EQ(SegmentBatcher::FullSegments(17, 16), 1);
  EXPECT_EQ(SegmentBatcher::FullSegments(32, 16), 1);
  EXPECT_EQ(SegmentBatcher::FullSegments(33, 16), 2);
}

TEST(SegmentBatcherTest, LanesCoverEveryFullSegmentOnceWithoutRepeat) {
  const std::vector<Document> documents =
      Documents({0, 5, 16, 17, 32, 33, 100, 161, 400, 1000, 49});
  const auto expected = AllSegments(documents, kSegment);
  EXPECT_EQ(expected.count({3, 0}), 1u);   // 17 bytes: one segment
  EXPECT_EQ(expected.count({4, 16}), 0u);  // 32 bytes: tail dropped
  for (bool shuffle : {false, true}) {
    for (int lanes : {1, 2, 3, 7, 20}) {
      SegmentBatcher batcher(&documents, lanes, kSegment, 1, shuffle, false);
      const std::vector<Served> served = Drain(batcher, documents, kSegment);
      EXPECT_EQ(Positions(served), expected) << lanes << " " << shuffle;
      ExpectLaneRuns(served, kSegment);
      const auto after = batcher.Next();
      EXPECT_EQ(after.size(), static_cast<size_t>(lanes));
      for (const auto& segment : after) EXPECT_FALSE(segment.has_value());
      EXPECT_TRUE(batcher.Done());
    }
  }
}

TEST(SegmentBatcherTest, DealsDocumentsInOrderAsLanesBecomeFree) {
  // 3, 1, 1 and 2 segments of 4 bytes (+1).
  const std::vector<Document> documents = Documents({13, 5, 5, 9});
  SegmentBatcher batcher(&documents, 2, 4, 1, false, false);
  const std::vector<std::vector<std::optional<Served>>> expected = {
      {Served{0, 0, 0, true, false}, Served{1, 1, 0, true, true}},
      {Served{0, 0, 4, false, false}, Served{1, 2, 0, true, true}},
      {Served{0, 0, 8, false, true}, Served{1, 3, 0, true, false}},
      {std::nullopt, Served{1, 3, 4, false, true}},
  };
  for (size_t call = 0; call < expected.size(); ++call) {
    EXPECT_FALSE(batcher.Done()) << call;
    const auto batch = batcher.Next();
    ASSERT_EQ(batch.size(), 2u);
    for (int lane = 0; lane < 2; ++lane) {
      ASSERT_EQ(batch[lane].has_value(), expected[call][lane].has_value())
          << "call " << call << " lane " << lane;
      if (!batch[lane].has_value()) continue;
      const Segment& s = *batch[lane];
      EXPECT_EQ((Served{lane, s.document, s.offset, s.first, s.last}),
                *expected[call][lane])
          << "call " << call << " lane " << lane;
    }
  }
  EXPECT_TRUE(batcher.Done());
  EXPECT_EQ(batcher.calls(), 4);
}

TEST(SegmentBatcherTest, ShuffleIsDeterministicPerSeed) {
  std::vector<size_t> sizes;
  for (size_t i = 0; i < 30; ++i) sizes.push_back(17 + 16 * (i % 4));
  const std::vector<Document> documents = Documents(sizes);
  auto run = [&](uint64_t seed, bool shuffle) {
    SegmentBatcher batcher(&documents, 3, kSegment, seed, shuffle, false);
    return Drain(batcher, documents, kSegment);
  };
  const std::vector<Served> seven = run(7, true);
  EXPECT_EQ(seven, run(7, true));
  EXPECT_NE(seven, run(8, true));
  EXPECT_NE(seven, run(7, false));
  EXPECT_EQ(Positions(seven), AllSegments(documents, kSegment));
}

TEST(SegmentBatcherTest, RepeatStartsANewPassWithANewPermutation) {
  const std::vector<Document> documents =
      Documents(std::vector<size_t>(12, kSegment + 1));
  for (bool shuffle : {false, true}) {
    SegmentBatcher batcher(&documents, 1, kSegment, 3, shuffle, true);
    std::vector<std::vector<int64_t>> passes(3);
    for (auto& pass : passes) {
      for (int i = 0; i < 12; ++i) {
        const auto batch = batcher.Next();
        ASSERT_TRUE(batch[0].has_value());
        ExpectBytesMatch(documents, *batch[0], kSegment);
        pass.push_back(batch[0]->document);
      }
      EXPECT_FALSE(batcher.Done());
      std::vector<int64_t> sorted = pass;
      std::sort(sorted.begin(), sorted.end());
      EXPECT_EQ(sorted,
                (std::vector<int64_t>{0, 1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11}));
    }
    if (shuffle) {
      EXPECT_NE(passes[0], passes[1]);
      EXPECT_NE(passes[1], passes[2]);
    } else {
      EXPECT_TRUE(std::is_sorted(passes[0].begin(), passes[0].end()));
      EXPECT_EQ(passes[0], passes[1]);
    }
  }
}

TEST(SegmentBatcherTest, RepeatWithNoUsableDocumentIsDone) {
  const std::vector<Document> documents = Documents({3, kSegment});
  SegmentBatcher batcher(&documents, 2, kSegment, 1, true, true);
  EXPECT_TRUE(batcher.Done());
  const auto batch = batcher.Next();
  EXPECT_FALSE(batch[0].has_value());
  EXPECT_FALSE(batch[1].has_value());
}

TEST(SegmentBatcherTest, MaxSegmentsPerDocumentReadsTheFirstOnes) {
  const std::vector<Document> documents = Documents({17, 33, 100, 400});
  SegmentBatcher batcher(&documents, 2, kSegment, 1, false, false);
  batcher.set_max_segments_per_document(2);
  const std::vector<Served> served = Drain(batcher, documents, kSegment);
  EXPECT_EQ(Positions(served), AllSegments(documents, kSegment, 2));
  EXPECT_EQ(served.size(), 7u);
  ExpectLaneRuns(served, kSegment);
}

std::string Describe(const std::optional<Segment>& segment) {
  if (!segment.has_value()) return "none";
  return absl::StrCat(segment->document, "@", segment->offset,
                      segment->first ? " first" : "",
                      segment->last ? " last" : "", " ", segment->bytes);
}

TEST(SegmentBatcherTest, SkipMatchesTheSameNumberOfNextCalls) {
  const std::vector<Document> documents =
      Documents({17, 50, 100, 161, 30, 400, 5, 90, 260});
  for (bool repeat : {true, false}) {
    for (int64_t n : {0, 1, 5, 17, 40, 200}) {
      SegmentBatcher original(&documents, 3, kSegment, 11, true, repeat);
      SegmentBatcher resumed(&documents, 3, kSegment, 11, true, repeat);
      original.set_max_segments_per_document(repeat ? 0 : 4);
      resumed.set_max_segments_per_document(repeat ? 0 : 4);
      for (int64_t i = 0; i < n; ++i) original.Next();
      resumed.Skip(n);
      EXPECT_EQ(original.calls(), n);
      EXPECT_EQ(resumed.calls(), n);
      for (int i = 0; i < 30; ++i) {
        EXPECT_EQ(original.Done(), resumed.Done());
        const auto a = original.Next();
        const auto b = resumed.Next();
        ASSERT_EQ(a.size(), b.size());
        for (size_t lane = 0; lane < a.size(); ++lane) {
          EXPECT_EQ(Describe(a[lane]), Describe(b[lane]))
              << "repeat " << repeat << " n " << n << " call " << i;
        }
      }
    }
  }
}

}  // namespace
}  // namespace knnmem::model
