#include "server/spec/stream_spec.h"

#include <cstring>

#include "absl/strings/str_cat.h"

namespace knnmem {
namespace {

// Version 1 had no approximate-index fields; version 2 appends them.
constexpr uint8_t kSpecVersion = 2;

absl::Status CheckRange(absl::string_view field, uint64_t value, uint64_t lo,
                        uint64_t hi) {
  if (value < lo || value > hi) {
    return absl::InvalidArgumentError(absl::StrCat(
        "spec.", field, " = ", value, " must be in [", lo, ", ", hi, "]"));
  }
  return absl::OkStatus();
}

template <typename T>
void Put(std::string& out, T v) {
  char buf[sizeof(T)];
  std::memcpy(buf, &v, sizeof(T));
  out.append(buf, sizeof(T));
}

template <typename T>
bool Get(absl::string_view& in, T& v) {
  if (in.size() < sizeof(T)) return false;
  std::memcpy(&v, in.data(), sizeof(T));
  in.remove_prefix(sizeof(T));
  return true;
}

}  // namespace

absl::Status ValidateSpec(const StreamSpec& spec) {
  absl::Status s = CheckRange("layers", spec.layers, 1, kMaxLayers);
  if (s.ok()) s = CheckRange("heads", spec.heads, 1, kMaxHeads);
  if (s.ok()) s = CheckRange("key_dim", spec.key_dim, 1, kMaxDim);
  if (s.ok()) s = CheckRange("value_dim", spec.value_dim, 1, kMaxDim);
  if (s.ok()) s = CheckRange("capacity", spec.capacity, 1, kMaxCapacity);
  if (!s.ok()) return s;
  if (spec.index != IndexKind::kApproximate) {
    if (spec.nlist != 0 || spec.nprobe != 0 || spec.exact_tail != 0) {
      return absl::InvalidArgumentError(
          "spec.nlist, spec.nprobe, spec.exact_tail: only for index "
          "APPROXIMATE");
    }
    return s;
  }
  if (spec.nlist != 0)
    s = CheckRange("nlist", spec.nlist, kMinNlist, kMaxNlist);
  if (s.ok() && spec.nprobe != 0) {
    s = CheckRange("nprobe", spec.nprobe, 1, spec.effective_nlist());
  }
  if (s.ok() && spec.exact_tail != 0) {
    s = CheckRange("exact_tail", spec.exact_tail, 1, spec.capacity);
  }
  return s;
}

absl::Status ValidateStreamId(absl::string_view stream_id) {
  if (stream_id.empty()) {
    return absl::InvalidArgumentError("stream_id: must not be empty");
  }
  if (stream_id.size() > kMaxStreamIdLength) {
    return absl::InvalidArgumentError(
        absl::StrCat("stream_id: ", stream_id.size(), " characters, at most ",
                     kMaxStreamIdLength));
  }
  for (size_t i = 0; i < stream_id.size(); ++i) {
    const unsigned char c = static_cast<unsigned char>(stream_id[i]);
    const bool ok = (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') ||
                    (c >= '0' && c <= '9') || c == '.' || c == '_' ||
                    c == ':' || c == '/' || c == '-';
    if (!ok) {
      return absl::InvalidArgumentError(
          absl::StrCat("stream_id: character ", i,
                       " is not one of [A-Za-z0-9._:/-] (byte 0x",
                       absl::Hex(c, absl::kZeroPad2), ")"));
    }
  }
  return absl::OkStatus();
}

std::string EncodeSpec(const StreamSpec& spec) {
  std::string out;
  Put<uint8_t>(out, kSpecVersion);
  Put<uint32_t>(out, spec.layers);
  Put<uint32_t>(out, spec.heads);
  Put<uint32_t>(out, spec.key_dim);
  Put<uint32_t>(out, spec.value_dim);
  Put<uint64_t>(out, spec.capacity);
  Put<int32_t>(out, static_cast<int32_t>(spec.index));
  Put<int32_t>(out, static_cast<int32_t>(spec.storage_dtype));
  Put<uint32_t>(out, spec.ttl_seconds);
  Put<uint32_t>(out, spec.nlist);
  Put<uint32_t>(out, spec.nprobe);
  Put<uint64_t>(out, spec.exact_tail);
  return out;
}

absl::StatusOr<StreamSpec> DecodeSpec(absl::string_view in) {
  StreamSpec spec;
  uint8_t version = 0;
  int32_t index = 0, dtype = 0;
  bool ok = Get(in, version) && (version == 1 || version == 2) &&
            Get(in, spec.layers) && Get(in, spec.heads) &&
            Get(in, spec.key_dim) && Get(in, spec.value_dim) &&
            Get(in, spec.capacity) && Get(in, index) && Get(in, dtype) &&
            Get(in, spec.ttl_seconds);
  if (ok && version == 2) {
    ok =
        Get(in, spec.nlist) && Get(in, spec.nprobe) && Get(in, spec.exact_tail);
  }
  if (!ok || !in.empty() || index < 1 || index > 2 || dtype < 1 || dtype > 3) {
    return absl::DataLossError("stored stream spec is corrupt");
  }
  spec.index = static_cast<IndexKind>(index);
  spec.storage_dtype = static_cast<DType>(dtype);
  if (!ValidateSpec(spec).ok()) {
    return absl::DataLossError("stored stream spec is out of range");
  }
  return spec;
}

}  // namespace knnmem
