#include "server/service/request_validation.h"

#include <algorithm>
#include <cmath>
#include <string>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"

namespace knnmem {
namespace {

absl::Status CheckLayer(uint32_t layer, const StreamSpec& spec) {
  if (layer >= spec.layers) {
    return absl::InvalidArgumentError(
        absl::StrCat("layer: ", layer, " is out of range; the stream has ",
                     spec.layers, " layer(s)"));
  }
  return absl::OkStatus();
}

// Every element finite and at most `bound` in magnitude; `why` says where
// a smaller bound than kMaxAbsValue comes from.
absl::Status CheckFinite(const v1::Tensor& t, absl::string_view field,
                         float bound = kMaxAbsValue,
                         absl::string_view why = "") {
  const DType dtype = static_cast<DType>(t.dtype());  // already checked
  const size_t count = t.data().size() / ElementSize(dtype);
  // One pass: NaN and Inf are above every finite bound. The second pass
  // only runs to name the problem.
  if (AllWithin(t.data().data(), count, dtype, bound)) return absl::OkStatus();
  if (!AllFinite(t.data().data(), count, dtype)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": contains NaN or Inf"));
  }
  {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": a value exceeds ", bound, " in magnitude", why));
  }
  return absl::OkStatus();
}

// The checks Search and Attend share; returns the queries as float32.
template <typename Request>
absl::StatusOr<std::vector<float>> ValidateQueries(const Request& request,
                                                   const StreamSpec& spec) {
  RETURN_IF_ERROR(ValidateStreamId(request.stream_id()));
  RETURN_IF_ERROR(CheckLayer(request.layer(), spec));
  if (request.k() < 1 || request.k() > kMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: ", request.k(), " must be in [1, ", kMaxK, "]"));
  }
  if (!request.has_queries() || request.queries().shape_size() == 0 ||
      request.queries().data().empty()) {
    return absl::InvalidArgumentError(
        "queries: empty; send at least one query");
  }
  RETURN_IF_ERROR(
      CheckFloatTensor(request.queries(),
                       {-1, int64_t{spec.heads}, int64_t{spec.key_dim}},
                       "queries")
          .status());
  RETURN_IF_ERROR(CheckFinite(request.queries(), "queries"));
  return TensorToFloats(request.queries(), "queries");
}

// Expands a per-head parameter given as 0, 1 or `heads` values.
absl::StatusOr<std::vector<float>> PerHead(
    const google::protobuf::RepeatedField<float>& values, uint32_t heads,
    float fallback, float lo, float hi, bool lo_open, absl::string_view field) {
  if (values.size() != 0 && values.size() != 1 &&
      values.size() != static_cast<int>(heads)) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", values.size(),
                     " values; give none, one, or one per head (", heads, ")"));
  }
  for (int i = 0; i < values.size(); ++i) {
    const float v = values[i];
    if (!(v >= lo && v <= hi) || (lo_open && v == lo)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, "[", i, "] = ", v, " must be in ",
                       lo_open ? "(" : "[", lo, ", ", hi, "]"));
    }
  }
  if (values.empty()) return std::vector<float>(heads, fallback);
  if (values.size() == 1) return std::vector<float>(heads, values[0]);
  return std::vector<float>(values.begin(), values.end());
}

}  // namespace

absl::StatusOr<AttendCommand> ValidateAttend(const v1::AttendRequest& request,
                                             const StreamSpec& spec) {
  AttendCommand cmd;
  ASSIGN_OR_RETURN(cmd.queries, ValidateQueries(request, spec));
  cmd.stream_id = request.stream_id();
  cmd.spec = spec;
  cmd.layer = request.layer();
  cmd.k = request.k();
  ASSIGN_OR_RETURN(cmd.options.scale,
                   PerHead(request.scale(), spec.heads,
                           1.0f / std::sqrt(static_cast<float>(spec.key_dim)),
                           0.0f, kMaxScale, /*lo_open=*/true, "scale"));
  if (!request.age_alpha().empty()) {
    ASSIGN_OR_RETURN(
        cmd.options.age_alpha,
        PerHead(request.age_alpha(), spec.heads, 0.0f, -kMaxAgeAlpha,
                kMaxAgeAlpha, /*lo_open=*/false, "age_alpha"));
    const float tau = request.age_tau();
    if (!(tau >= kMinAgeTau && tau <= kMaxAgeTau)) {
      return absl::InvalidArgumentError(
          absl::StrCat("age_tau: ", tau, " must be in [", kMinAgeTau, ", ",
                       kMaxAgeTau, "] with age_alpha"));
    }
    cmd.options.age_tau = request.age_tau();
  }
  return cmd;
}

absl::StatusOr<StreamSpec> SpecFromProto(const v1::StreamSpec& in) {
  StreamSpec spec;
  spec.layers = in.layers();
  spec.heads = in.heads();
  spec.key_dim = in.key_dim();
  spec.value_dim = in.value_dim();
  spec.capacity = in.capacity();
  spec.ttl_seconds = in.ttl_seconds();
  if (in.index() == v1::APPROXIMATE) {
    spec.index = IndexKind::kApproximate;
  } else if (in.index() == v1::INDEX_KIND_UNSPECIFIED ||
             in.index() == v1::EXACT) {
    spec.index = IndexKind::kExact;
  } else {
    return absl::InvalidArgumentError(
        absl::StrCat("spec.index: ", static_cast<int>(in.index()),
                     " is not a known index kind (EXACT, APPROXIMATE)"));
  }
  spec.nlist = in.nlist();
  spec.nprobe = in.nprobe();
  spec.exact_tail = in.exact_tail();
  if (in.storage_dtype() == v1::DTYPE_UNSPECIFIED) {
    spec.storage_dtype = DType::kFloat32;
  } else {
    ASSIGN_OR_RETURN(spec.storage_dtype,
                     DTypeFromProto(in.storage_dtype(), "spec.storage_dtype"));
  }
  RETURN_IF_ERROR(ValidateSpec(spec));
  return spec;
}

void SpecToProto(const StreamSpec& spec, v1::StreamSpec* out) {
  out->set_layers(spec.layers);
  out->set_heads(spec.heads);
  out->set_key_dim(spec.key_dim);
  out->set_value_dim(spec.value_dim);
  out->set_capacity(spec.capacity);
  out->set_index(spec.index == IndexKind::kApproximate ? v1::APPROXIMATE
                                                       : v1::EXACT);
  out->set_nlist(spec.nlist);
  out->set_nprobe(spec.nprobe);
  out->set_exact_tail(spec.exact_tail);
  out->set_storage_dtype(DTypeToProto(spec.storage_dtype));
  out->set_ttl_seconds(spec.ttl_seconds);
}

absl::StatusOr<AppendCommand> ValidateAppend(const v1::AppendRequest& request,
                                             const StreamSpec& spec) {
  RETURN_IF_ERROR(ValidateStreamId(request.stream_id()));
  RETURN_IF_ERROR(CheckLayer(request.layer(), spec));
  if (request.first_position() < 0 ||
      request.first_position() >= kMaxPosition) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_position: ", request.first_position(), " must be in [0, 2^62)"));
  }
  if (!request.has_keys() || request.keys().shape_size() == 0 ||
      request.keys().data().empty()) {
    return absl::InvalidArgumentError(
        "keys: empty batch; send at least one row");
  }
  ASSIGN_OR_RETURN(
      std::vector<int64_t> kdims,
      CheckFloatTensor(request.keys(),
                       {-1, int64_t{spec.heads}, int64_t{spec.key_dim}},
                       "keys"));
  if (!request.has_values()) {
    return absl::InvalidArgumentError(
        "values: missing; send values [rows, heads, value_dim] with the keys");
  }
  ASSIGN_OR_RETURN(
      std::vector<int64_t> vdims,
      CheckFloatTensor(request.values(),
                       {kdims[0], int64_t{spec.heads}, int64_t{spec.value_dim}},
                       "values"));
  if (request.values().dtype() != request.keys().dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "values.dtype: ", v1::DType_Name(request.values().dtype()),
        " differs from keys.dtype ", v1::DType_Name(request.keys().dtype())));
  }
  if (request.first_position() + kdims[0] > kMaxPosition) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_position: ", request.first_position(), " + ",
                     kdims[0], " rows passes the largest position 2^62"));
  }
  // Values must also fit the storage dtype (float16 tops out at 65504).
  const float bound = std::min(kMaxAbsValue, LargestFinite(spec.storage_dtype));
  const std::string why =
      bound < kMaxAbsValue
          ? absl::StrCat(", the largest the stream's ",
                         DTypeName(spec.storage_dtype), " storage holds")
          : std::string();
  RETURN_IF_ERROR(CheckFinite(request.keys(), "keys", bound, why));
  RETURN_IF_ERROR(CheckFinite(request.values(), "values", bound, why));
  AppendCommand cmd;
  cmd.stream_id = request.stream_id();
  cmd.spec = spec;
  cmd.layer = request.layer();
  cmd.first_position = request.first_position();
  cmd.rows = static_cast<size_t>(kdims[0]);
  cmd.dtype = static_cast<DType>(request.keys().dtype());
  cmd.keys = request.keys().data();
  cmd.values = request.values().data();
  cmd.sync = request.sync();
  return cmd;
}

absl::StatusOr<SearchCommand> ValidateSearch(const v1::SearchRequest& request,
                                             const StreamSpec& spec) {
  SearchCommand cmd;
  ASSIGN_OR_RETURN(cmd.queries, ValidateQueries(request, spec));
  cmd.stream_id = request.stream_id();
  cmd.spec = spec;
  cmd.layer = request.layer();
  cmd.options.k = request.k();
  cmd.options.return_keys = request.return_keys();
  cmd.options.return_values = request.return_values();
  cmd.exact = request.exact();
  return cmd;
}

size_t SearchResponseBytes(const SearchCommand& cmd) {
  const StreamSpec& spec = cmd.spec;
  const size_t entries = cmd.queries.size() / spec.key_dim * cmd.options.k;
  const size_t es = ElementSize(spec.storage_dtype);
  size_t bytes = entries * (sizeof(float) + sizeof(int64_t));
  if (cmd.options.return_keys) bytes += entries * spec.key_dim * es;
  if (cmd.options.return_values) bytes += entries * spec.value_dim * es;
  return bytes + 256;
}

}  // namespace knnmem
