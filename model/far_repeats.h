// FarRepeats: the bytes of a document that, of all its attention, only
// memory could copy: those whose preceding bytes (the context) occurred
// earlier in the document, last beyond the local window and the XL cache.
// The paper's observation is that memory helps most on such bytes (rare
// names defined far back); eval reports bits per byte on them apart.
#ifndef KNNMEM_MODEL_FAR_REPEATS_H_
#define KNNMEM_MODEL_FAR_REPEATS_H_

#include <vector>

#include "absl/strings/string_view.h"

namespace knnmem::model {

// Bytes of context that must match.
inline constexpr int kFarRepeatContext = 16;

// For each byte p of `text` read in segments of `segment` bytes from its
// start (byte p is predicted at input p - 1, in segment s = (p - 1) /
// segment, whose local window and XL cache start at w = (s - 1) * segment):
// true when p >= context and text[p - context, p) occurred before, and the
// latest earlier occurrence text[j - context, j) (j < p) has j <= w, i.e.
// its last byte j - 1 lies before the window. Requires segment >= 1 and
// context >= 1.
std::vector<bool> FarRepeats(absl::string_view text, int segment,
                             int context = kFarRepeatContext);

}  // namespace knnmem::model

#endif  // KNNMEM_MODEL_FAR_REPEATS_H_
