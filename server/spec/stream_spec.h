// StreamSpec: the shape of one stream's memory, fixed when it is created.
#ifndef KNNMEM_SERVER_SPEC_STREAM_SPEC_H_
#define KNNMEM_SERVER_SPEC_STREAM_SPEC_H_

#include <algorithm>
#include <cstdint>
#include <string>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/strings/string_view.h"
#include "base/dtype.h"

namespace knnmem {

// Limits that keep one request or one stream from being absurd. Requests that
// pass them get INVALID_ARGUMENT naming the field.
inline constexpr uint32_t kMaxLayers = 256;
inline constexpr uint32_t kMaxHeads = 256;
inline constexpr uint32_t kMaxDim = 4096;
inline constexpr uint64_t kMaxCapacity = uint64_t{1} << 32;
inline constexpr uint32_t kMaxK = 2048;
// Steps (streams) in one DecodeStep call.
inline constexpr int kMaxSteps = 4096;
inline constexpr size_t kMaxStreamIdLength = 128;
// Largest magnitude of a key, value or query element: with it, no inner
// product of up to kMaxDim elements overflows float32.
inline constexpr float kMaxAbsValue = 1e15f;
// Attend parameters: scale in (0, kMaxScale], |age_alpha| <= kMaxAgeAlpha,
// age_tau in [kMinAgeTau, kMaxAgeTau], so that no logit overflows.
inline constexpr float kMaxScale = 1e4f;
inline constexpr float kMaxAgeAlpha = 1e6f;
inline constexpr float kMinAgeTau = 1e-3f;
inline constexpr float kMaxAgeTau = 1e12f;
// Positions are int64 and must leave room for first_position + tokens.
inline constexpr int64_t kMaxPosition = int64_t{1} << 62;

enum class IndexKind : int { kExact = 1, kApproximate = 2 };

// APPROXIMATE defaults and limits.
inline constexpr uint32_t kDefaultNlist = 1024;
inline constexpr uint32_t kDefaultNprobe = 32;
inline constexpr uint64_t kDefaultExactTail = 4096;
inline constexpr uint32_t kMinNlist = 16;
inline constexpr uint32_t kMaxNlist = 65536;
// The grid the tier's indexing extends on: a layer's newest exact_tail
// entries and up to kIndexChunk - 1 more are scanned exactly. Small, since
// a decode step reads all of those keys and only nprobe/nlist of the
// indexed ones.
inline constexpr int64_t kIndexChunk = 2048;

struct StreamSpec {
  uint32_t layers = 0;
  uint32_t heads = 0;
  uint32_t key_dim = 0;
  uint32_t value_dim = 0;
  uint64_t capacity = 0;  // entries kept per (layer, head)
  IndexKind index = IndexKind::kExact;
  DType storage_dtype = DType::kFloat32;
  uint32_t ttl_seconds = 0;  // 0: the server's default
  // kApproximate only; 0 means the default (see the effective_ accessors).
  uint32_t nlist = 0;
  uint32_t nprobe = 0;
  uint64_t exact_tail = 0;

  uint32_t effective_nlist() const { return nlist ? nlist : kDefaultNlist; }
  uint32_t effective_nprobe() const {
    return nprobe ? nprobe : std::min(kDefaultNprobe, effective_nlist());
  }
  uint64_t effective_exact_tail() const {
    return exact_tail ? exact_tail : kDefaultExactTail;
  }

  // Bytes of one stored token of one layer: every head's key and value.
  size_t RowBytes() const {
    return static_cast<size_t>(heads) * (key_dim + value_dim) *
           ElementSize(storage_dtype);
  }
  bool operator==(const StreamSpec& o) const {
    return layers == o.layers && heads == o.heads && key_dim == o.key_dim &&
           value_dim == o.value_dim && capacity == o.capacity &&
           index == o.index && storage_dtype == o.storage_dtype &&
           ttl_seconds == o.ttl_seconds && nlist == o.nlist &&
           nprobe == o.nprobe && exact_tail == o.exact_tail;
  }
  bool operator!=(const StreamSpec& o) const { return !(*this == o); }
};

// OK when every field is within the limits above; otherwise INVALID_ARGUMENT
// whose message names the field as "spec.<field>".
absl::Status ValidateSpec(const StreamSpec& spec);

// OK for 1-128 characters of [A-Za-z0-9._:/-]; otherwise INVALID_ARGUMENT
// naming "stream_id".
absl::Status ValidateStreamId(absl::string_view stream_id);

// A stable binary encoding for storage; DecodeSpec rejects corrupt input
// with DATA_LOSS.
std::string EncodeSpec(const StreamSpec& spec);
absl::StatusOr<StreamSpec> DecodeSpec(absl::string_view bytes);

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SPEC_STREAM_SPEC_H_
