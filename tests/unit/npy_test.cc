// .npy files against numpy itself (Debian's /usr/bin/python3 with
// python3-numpy): what NpyWriter writes numpy.load reads back exactly, and
// what numpy.save writes ReadNpy reads exactly.
#include "base/npy.h"

#include <gtest/gtest.h>

#include <filesystem>
#include <fstream>
#include <sstream>

#include "absl/strings/str_cat.h"
#include "base/subprocess.h"
#include "base/temp_dir.h"

namespace knnmem {
namespace {

// Runs a Python snippet; its stdout.
std::string Python(const std::string& code) {
  absl::StatusOr<CommandResult> r =
      RunCommand({"/usr/bin/python3", "-c", code}, /*merge_stderr=*/true);
  EXPECT_TRUE(r.ok()) << r.status();
  if (!r.ok()) return "";
  EXPECT_EQ(r->exit_code, 0) << r->output;
  return r->output;
}

TEST(NpyTest, NumpyReadsWhatTheWriterWrites) {
  TempDir dir;
  const std::string path = dir.Sub("a.npy");
  auto writer = NpyWriter::Create(path, {3, 2});
  ASSERT_TRUE(writer.ok()) << writer.status();
  std::vector<float> rows;
  for (int i = 0; i < 7 * 6; ++i) rows.push_back(0.5f * i - 3.25f);
  ASSERT_TRUE((*writer)->Append(rows.data(), 4).ok());
  ASSERT_TRUE((*writer)->Append(rows.data() + 4 * 6, 3).ok());
  EXPECT_EQ((*writer)->rows(), 7);
  ASSERT_TRUE((*writer)->Close().ok());
  // numpy prints the shape, the dtype and every element as the exact
  // decimal of its float32 (repr of a Python float of the same value).
  const std::string out = Python(
      absl::StrCat("import numpy as np; a = np.load('", path,
                   "'); print(a.shape, a.dtype, a.flags['C_CONTIGUOUS']); "
                   "print(' '.join(repr(float(x)) for x in a.ravel()))"));
  // Compare numbers, not text: each printed decimal parses back to the
  // float32 written.
  std::istringstream got(out.substr(out.find('\n') + 1));
  EXPECT_EQ(out.substr(0, out.find('\n') + 1), "(7, 3, 2) float32 True\n");
  for (float v : rows) {
    double x = 0;
    ASSERT_TRUE(got >> x);
    EXPECT_EQ(static_cast<float>(x), v);
  }
}

TEST(NpyTest, ReadsWhatNumpySavesAndRefusesOtherDtypes) {
  TempDir dir;
  Python(absl::StrCat(
      "import numpy as np; np.save('", dir.Sub("f.npy"),
      "', (np.arange(24, dtype=np.float32).reshape(2, 3, 4) / 8 - 1)); "
      "np.save('",
      dir.Sub("d.npy"), "', np.zeros(3)); np.save('", dir.Sub("v.npy"),
      "', np.arange(5, dtype=np.float32))"));
  absl::StatusOr<NpyArray> f = ReadNpy(dir.Sub("f.npy"));
  ASSERT_TRUE(f.ok()) << f.status();
  EXPECT_EQ(f->shape, (std::vector<int64_t>{2, 3, 4}));
  ASSERT_EQ(f->data.size(), 24u);
  for (int i = 0; i < 24; ++i) EXPECT_EQ(f->data[i], i / 8.0f - 1) << i;
  absl::StatusOr<NpyArray> v = ReadNpy(dir.Sub("v.npy"));
  ASSERT_TRUE(v.ok()) << v.status();
  EXPECT_EQ(v->shape, (std::vector<int64_t>{5}));
  const absl::Status d = ReadNpy(dir.Sub("d.npy")).status();
  EXPECT_EQ(d.code(), absl::StatusCode::kInvalidArgument);
  EXPECT_NE(d.message().find("descr is not '<f4'"), std::string::npos) << d;
  EXPECT_EQ(ReadNpy(dir.Sub("none.npy")).status().code(),
            absl::StatusCode::kNotFound);
  // Cut short: the header promises more than the file holds.
  std::ofstream(dir.Sub("cut.npy"), std::ios::binary)
      << std::ifstream(dir.Sub("f.npy"), std::ios::binary).rdbuf();
  std::filesystem::resize_file(dir.Sub("cut.npy"), 128 + 10);
  EXPECT_EQ(ReadNpy(dir.Sub("cut.npy")).status().code(),
            absl::StatusCode::kDataLoss);
}

}  // namespace
}  // namespace knnmem
