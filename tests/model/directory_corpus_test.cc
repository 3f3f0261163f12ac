// LoadCorpus with DocumentUnit::kDirectory, against documents this test
// joins itself from a temporary tree: which files make a document, in which
// order and with which headers, the size bounds, the split by directory
// name, and the names of a glob's directories.
#include <filesystem>
#include <fstream>
#include <map>
#include <string>
#include <utility>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/stable_hash.h"
#include "base/temp_dir.h"
#include "gtest/gtest.h"
#include "model/corpus.h"

namespace knnmem::model {
namespace {

namespace fs = std::filesystem;

class DirectoryCorpusTest : public ::testing::Test {
 protected:
  // Writes `bytes` at `relative` under the temp dir and returns the bytes.
  std::string Write(const std::string& relative, const std::string& bytes) {
    const fs::path path = fs::path(dir_.path()) / relative;
    fs::create_directories(path.parent_path());
    std::ofstream out(path, std::ios::binary);
    out << bytes;
    EXPECT_TRUE(out.good()) << path;
    return bytes;
  }
  CorpusOptions Options(std::vector<std::string> sources) const {
    CorpusOptions options;
    options.sources = std::move(sources);
    options.unit = DocumentUnit::kDirectory;
    options.min_bytes = 0;
    options.max_bytes = 1 << 20;
    options.validation_per_mille = 0;
    return options;
  }

  TempDir dir_;
};

// name -> (bytes, files) of every document of `documents`.
std::map<std::string, std::pair<std::string, size_t>> Contents(
    const std::vector<Document>& documents) {
  std::map<std::string, std::pair<std::string, size_t>> out;
  for (const Document& d : documents) out[d.name] = {d.bytes, d.files};
  return out;
}

TEST_F(DirectoryCorpusTest, JoinsEachDirectorysSubtreeInPathOrder) {
  const std::string x = Write("src/pkg/x.py", "print('x')\n");
  const std::string deep = Write("src/pkg/sub/deep.py", "deep = 1\n");
  const std::string a = Write("src/pkg/a-b.py", "no newline at the end");
  const std::string top = Write("src/top.h", "#pragma once\n");
  const std::string other = Write("src/other/o.txt", "other\n");
  Write("src/pkg/blob.bin", std::string("\0binary", 7));  // dropped
  Write("src/empty/.keep", "");  // an empty file still joins

  absl::StatusOr<Corpus> corpus =
      LoadCorpus(Options({(fs::path(dir_.path()) / "src").string()}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  // Byte order of the paths inside each directory: "a-b.py" < "sub/..." <
  // "x.py"; the root's own files are the document "src".
  const std::map<std::string, std::pair<std::string, size_t>> expected = {
      {"src", {"\x1ctop.h\n" + top, 1}},
      {"src/empty", {"\x1c.keep\n", 1}},
      {"src/other", {"\x1co.txt\n" + other, 1}},
      {"src/pkg",
       {"\x1c"
        "a-b.py\n" +
            a + "\x1csub/deep.py\n" + deep + "\x1cx.py\n" + x,
        3}},
  };
  EXPECT_EQ(Contents(corpus->train), expected);
  EXPECT_TRUE(corpus->validation.empty());
  EXPECT_EQ(corpus->filtered, 1u);  // the binary file
}

TEST_F(DirectoryCorpusTest, SizeBoundsApplyToTheJoinedDocument) {
  // Each file alone is below the bound; joined with headers they reach it.
  Write("src/big/one.txt", std::string(60, 'a'));
  Write("src/big/two.txt", std::string(60, 'b'));
  Write("src/small/one.txt", std::string(60, 'c'));
  Write("src/huge/one.txt", std::string(300, 'd'));
  CorpusOptions options = Options({(fs::path(dir_.path()) / "src").string()});
  const size_t big = 2 * (1 + 8 + 60);  // two headers "\x1cone.txt\n"
  options.min_bytes = big;
  options.max_bytes = 200;
  absl::StatusOr<Corpus> corpus = LoadCorpus(options);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  ASSERT_EQ(corpus->train.size(), 1u);
  EXPECT_EQ(corpus->train[0].name, "src/big");
  EXPECT_EQ(corpus->train[0].bytes.size(), big);
  EXPECT_EQ(corpus->filtered, 2u);  // src/small and src/huge

  options.min_bytes = big + 1;
  EXPECT_EQ(LoadCorpus(options).status().code(), absl::StatusCode::kNotFound);
}

TEST_F(DirectoryCorpusTest, SplitsByDirectoryName) {
  std::map<std::string, size_t> files;  // directory -> files written
  for (int d = 0; d < 30; ++d) {
    const std::string name = absl::StrCat("lib/d", d);
    for (int f = 0; f <= d % 3; ++f) {
      Write(absl::StrCat(name, "/f", f, ".txt"), absl::StrCat("file ", f));
    }
    files[name] = static_cast<size_t>(d % 3 + 1);
  }
  CorpusOptions options = Options({(fs::path(dir_.path()) / "lib").string()});
  options.validation_per_mille = 500;
  absl::StatusOr<Corpus> corpus = LoadCorpus(options);
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  EXPECT_EQ(corpus->train.size() + corpus->validation.size(), 30u);
  EXPECT_FALSE(corpus->train.empty());
  EXPECT_FALSE(corpus->validation.empty());
  for (const auto* side : {&corpus->train, &corpus->validation}) {
    for (const Document& d : *side) {
      EXPECT_EQ(side == &corpus->validation, Fnv1a64(d.name) % 1000 < 500)
          << d.name;
      EXPECT_EQ(d.files, files.at(d.name)) << d.name;
    }
  }
}

TEST_F(DirectoryCorpusTest, AGlobsDirectoriesAreNamedFromItsLiteralRoot) {
  const std::string one = Write("src/a/one.txt", "1");
  const std::string two = Write("src/b/two.txt", "2");
  Write("src/c/three.txt", "3");
  absl::StatusOr<Corpus> corpus =
      LoadCorpus(Options({(fs::path(dir_.path()) / "src/[ab]").string()}));
  ASSERT_TRUE(corpus.ok()) << corpus.status();
  const std::map<std::string, std::pair<std::string, size_t>> expected = {
      {"src/a", {"\x1cone.txt\n" + one, 1}},
      {"src/b", {"\x1ctwo.txt\n" + two, 1}},
  };
  EXPECT_EQ(Contents(corpus->train), expected);
}

}  // namespace
}  // namespace knnmem::model
