// Eval's rows through their JSON file (eval --json, then eval --rows):
// checkpoint paths and labels with quotes, backslashes, newlines, tabs,
// control characters and non-ASCII text, NaN members, six significant
// digits, files from before the newer members, and files that hold no rows;
// and the plot of rows whose names would be commands to gnuplot.
#include "model/eval_rows.h"

#include <gtest/gtest.h>

#include <cmath>
#include <fstream>
#include <sstream>
#include <string>
#include <vector>

#include "absl/strings/str_cat.h"
#include "base/temp_dir.h"

namespace knnmem::model {
namespace {

std::string Read(const std::string& path) {
  std::ifstream in(path, std::ios::binary);
  std::stringstream s;
  s << in.rdbuf();
  return s.str();
}

void Write(const std::string& path, const std::string& text) {
  std::ofstream(path, std::ios::binary) << text;
}

// The old writer put these strings in quotes as they were, and its reader
// cut a string at its first quote.
TEST(EvalRowsTest, AwkwardCheckpointsAndNaNsReadBackAsWritten) {
  EvalRow a;
  a.checkpoint = "runs/\"quoted\" back\\slash new\nline\ttab \x01 caf\xC3\xA9";
  a.label = "memory 256 \"approximate\"";
  a.memory = 256;
  a.bits_per_byte = 1.234567891;  // written with 6 significant digits
  a.bytes = 523776;
  a.age_penalty_off = true;
  a.approximate = true;
  a.far_bits_per_byte = 0.5;
  a.far_bytes = 1000;
  EvalRow b;
  b.checkpoint = "plain";
  b.label = "memory 0";
  b.bits_per_byte = std::nan("");
  b.memory_share = 0.125;
  b.rest_bits_per_byte = 2.5;
  TempDir dir;
  const std::string path = dir.Sub("rows.json");
  ASSERT_TRUE(WriteJson(path, {a, b}).ok());
  absl::StatusOr<std::vector<EvalRow>> rows = ReadJson(path);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  const EvalRow& ra = (*rows)[0];
  EXPECT_EQ(ra.checkpoint, a.checkpoint);
  EXPECT_EQ(ra.label, a.label);
  EXPECT_EQ(ra.memory, 256);
  EXPECT_EQ(ra.bits_per_byte, 1.23457);
  EXPECT_EQ(ra.bytes, 523776);
  EXPECT_TRUE(std::isnan(ra.memory_share));
  EXPECT_TRUE(ra.age_penalty_off);
  EXPECT_TRUE(ra.approximate);
  EXPECT_EQ(ra.far_bits_per_byte, 0.5);
  EXPECT_EQ(ra.far_bytes, 1000);
  EXPECT_TRUE(std::isnan(ra.rest_bits_per_byte));
  const EvalRow& rb = (*rows)[1];
  EXPECT_EQ(rb.checkpoint, "plain");
  EXPECT_TRUE(std::isnan(rb.bits_per_byte));
  EXPECT_EQ(rb.memory_share, 0.125);
  EXPECT_FALSE(rb.age_penalty_off);
  EXPECT_EQ(rb.rest_bits_per_byte, 2.5);
  // One row per line; written again from what was read, the same file.
  const std::string text = Read(path);
  EXPECT_EQ(text.rfind("{\"rows\":[\n  {\"checkpoint\":", 0), 0u) << text;
  EXPECT_EQ(text.substr(text.size() - 5), "}\n]}\n") << text;
  const std::string again = dir.Sub("again.json");
  ASSERT_TRUE(WriteJson(again, *rows).ok());
  EXPECT_EQ(Read(again), text);
}

// The layout of the files in docs/does-memory-help, some from before
// memory_share, age_penalty_off, approximate and the far repeats.
TEST(EvalRowsTest, ReadsOlderFilesWithTheirMissingMembersAsDefaults) {
  TempDir dir;
  const std::string path = dir.Sub("old.json");
  Write(path,
        "{\"rows\": [\n"
        "  {\"checkpoint\": \"mem-bh0\", \"label\": \"memory 0\", \"memory\": "
        "0, \"bits_per_byte\": 1.47279, \"bytes\": 523776},\n"
        "  {\"checkpoint\": \"mem\", \"label\": \"memory 2048\", \"memory\": "
        "2048, \"bits_per_byte\": 1.21534, \"bytes\": 523776, "
        "\"memory_share\": null, \"age_penalty_off\": true}\n"
        "]}\n");
  absl::StatusOr<std::vector<EvalRow>> rows = ReadJson(path);
  ASSERT_TRUE(rows.ok()) << rows.status();
  ASSERT_EQ(rows->size(), 2u);
  const EvalRow& old = (*rows)[0];
  EXPECT_EQ(old.checkpoint, "mem-bh0");
  EXPECT_EQ(old.bits_per_byte, 1.47279);
  EXPECT_EQ(old.bytes, 523776);
  EXPECT_TRUE(std::isnan(old.memory_share));
  EXPECT_FALSE(old.age_penalty_off);
  EXPECT_FALSE(old.approximate);
  EXPECT_TRUE(std::isnan(old.far_bits_per_byte));
  EXPECT_EQ(old.far_bytes, 0);
  EXPECT_EQ((*rows)[1].memory, 2048);
  EXPECT_TRUE((*rows)[1].age_penalty_off);
}

TEST(EvalRowsTest, RefusesFilesWithoutRowsAndNamesTheBadRow) {
  TempDir dir;
  EXPECT_EQ(ReadJson(dir.Sub("absent.json")).status().code(),
            absl::StatusCode::kNotFound);
  for (const char* text : {"\x89PNG\r\n", "{\"rows\": []}", "[1, 2]"}) {
    Write(dir.Sub("none.json"), text);
    absl::StatusOr<std::vector<EvalRow>> rows = ReadJson(dir.Sub("none.json"));
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << text;
    EXPECT_NE(rows.status().message().find("holds no rows of eval --json"),
              std::string::npos)
        << rows.status();
  }
  const std::string good =
      "{\"checkpoint\": \"a\", \"label\": \"l\", \"memory\": 0, "
      "\"bits_per_byte\": 1.5, \"bytes\": 10}";
  const std::pair<std::string, std::string> bad[] = {
      {"{\"checkpoint\": \"a\"}", "row 2: JSON member \"label\" is missing"},
      {"{\"checkpoint\": \"a\", \"label\": \"l\", \"memory\": \"many\", "
       "\"bits_per_byte\": 1.5, \"bytes\": 10}",
       "row 2: JSON member \"memory\" is not"},
      {"{\"checkpoint\": \"a\", \"label\": \"l\", \"memory\": 0, "
       "\"bits_per_byte\": 1.5, \"bytes\": 10, \"approximate\": \"yes\"}",
       "row 2: JSON member \"approximate\" is not"}};
  for (const auto& [row, want] : bad) {
    Write(dir.Sub("bad.json"),
          "{\"rows\": [\n  " + good + ",\n  " + row + "\n]}\n");
    absl::StatusOr<std::vector<EvalRow>> rows = ReadJson(dir.Sub("bad.json"));
    EXPECT_EQ(rows.status().code(), absl::StatusCode::kInvalidArgument) << row;
    EXPECT_NE(rows.status().message().find(want), std::string::npos)
        << rows.status() << "\nwant: " << want;
  }
}

// gnuplot runs shell commands from backquotes and system() in its program;
// a checkpoint's name (from --checkpoint or a rows file) must stay a title.
TEST(EvalRowsTest, PlotTitlesAndPathsStayDataInGnuplotsProgram) {
  TempDir dir;
  const std::string marker = dir.Sub("ran");
  const std::string name = absl::StrCat("x'; system('touch ", marker,
                                        "'); print '`touch ", marker, "`");
  EvalRow row;
  row.checkpoint = name;
  row.label = "memory 256";
  row.memory = 256;
  row.bits_per_byte = 1.5;
  EvalRow bigger = row;
  bigger.memory = 1024;
  bigger.bits_per_byte = 1.25;
  const std::string png = dir.Sub("it's a plot.png");
  ASSERT_TRUE(WritePlot(png, {name}, {row, bigger}).ok());
  EXPECT_EQ(Read(png).substr(1, 3), "PNG");
  EXPECT_FALSE(std::ifstream(marker).good()) << "gnuplot ran a command";
}

}  // namespace
}  // namespace knnmem::model
