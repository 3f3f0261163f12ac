// FarRepeats against a brute-force oracle written here: for each byte, scan
// every earlier position for its 16-byte context and judge the latest
// match's distance against the segment's window.
#include "model/far_repeats.h"

#include <random>
#include <string>
#include <tuple>
#include <vector>

#include "gtest/gtest.h"

namespace knnmem::model {
namespace {

std::vector<bool> Oracle(const std::string& text, int segment, int context) {
  const int n = static_cast<int>(text.size());
  std::vector<bool> far(text.size(), false);
  for (int p = context; p < n; ++p) {
    int latest = -1;  // end of the latest earlier occurrence
    for (int j = context; j < p; ++j) {
      if (text.compare(j - context, context, text, p - context, context) == 0) {
        latest = j;
      }
    }
    // Byte p is read at input p - 1; the window starts a segment before
    // that input's segment.
    const int window_start = ((p - 1) / segment - 1) * segment;
    far[p] = latest >= 0 && latest <= window_start;
  }
  return far;
}

// Text of words from a small vocabulary: contexts repeat at every distance.
std::string Words(size_t size, uint32_t seed, int vocabulary) {
  std::mt19937 rng(seed);
  std::string text;
  while (text.size() < size) {
    text +=
        "name_" + std::to_string(rng() % vocabulary) + (rng() % 5 ? " " : "\n");
  }
  text.resize(size);
  return text;
}

TEST(FarRepeatsTest, MatchesBruteForce) {
  for (const auto& [segment, context, vocabulary] :
       std::vector<std::tuple<int, int, int>>{
           {16, 16, 40}, {32, 16, 400}, {8, 4, 30}, {1, 3, 5}}) {
    const std::string text =
        Words(3000, static_cast<uint32_t>(segment), vocabulary);
    const std::vector<bool> got = FarRepeats(text, segment, context);
    const std::vector<bool> want = Oracle(text, segment, context);
    ASSERT_EQ(got.size(), want.size());
    int far = 0;
    for (size_t p = 0; p < want.size(); ++p) {
      EXPECT_EQ(got[p], want[p]) << "segment " << segment << " byte " << p;
      far += want[p];
    }
    EXPECT_GT(far, 0) << segment;  // the case is not vacuous
    EXPECT_LT(far, static_cast<int>(want.size()) - context) << segment;
  }
}

TEST(FarRepeatsTest, OnlyTheLatestOccurrenceCounts) {
  // "abcd" three times, 4-byte segments, context 4: bytes 0-3 have no
  // context; the repeat at 8 (ending at 12) was last seen ending at 4.
  const std::string text = "abcdXXXXabcdYYYYYYYYYYYYabcdZ";
  const std::vector<bool> far = FarRepeats(text, 4, 4);
  // Byte 12 ('Y'): read at input 11 (segment 2, window from 4); "abcd"
  // last ended at 4 <= 4: beyond the window.
  EXPECT_TRUE(far[12]);
  // Byte 28 ('Z'): read at input 27 (segment 6, window from 20); "abcd"
  // last ended at 12 (not at 4): still beyond.
  EXPECT_TRUE(far[28]);
  // With 8-byte segments, byte 12 is read in segment 1, window from 0:
  // "abcd" ending at 4 is inside.
  EXPECT_FALSE(FarRepeats(text, 8, 4)[12]);
  for (size_t p = 0; p < 4; ++p) EXPECT_FALSE(far[p]);
}

}  // namespace
}  // namespace knnmem::model
