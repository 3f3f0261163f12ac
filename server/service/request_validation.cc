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

absl::Status CheckK(uint32_t k) {
  if (k < 1 || k > kMaxK) {
    return absl::InvalidArgumentError(
        absl::StrCat("k: ", k, " must be in [1, ", kMaxK, "]"));
  }
  return absl::OkStatus();
}

// Queries [n, heads, key_dim], finite, n >= 1 (`queries` null: unset);
// returns them as float32.
absl::StatusOr<std::vector<float>> ValidateQueryTensor(
    const v1::Tensor* queries, const StreamSpec& spec) {
  if (queries == nullptr || queries->shape_size() == 0 ||
      queries->data().empty()) {
    return absl::InvalidArgumentError(
        "queries: empty; send at least one query");
  }
  RETURN_IF_ERROR(
      CheckFloatTensor(
          *queries, {-1, int64_t{spec.heads}, int64_t{spec.key_dim}}, "queries")
          .status());
  RETURN_IF_ERROR(CheckFinite(*queries, "queries"));
  return TensorToFloats(*queries, "queries");
}

// The checks Search and Attend share; returns the queries as float32.
template <typename Request>
absl::StatusOr<std::vector<float>> ValidateQueries(const Request& request,
                                                   const StreamSpec& spec) {
  RETURN_IF_ERROR(ValidateStreamId(request.stream_id()));
  RETURN_IF_ERROR(CheckLayer(request.layer(), spec));
  RETURN_IF_ERROR(CheckK(request.k()));
  return ValidateQueryTensor(
      request.has_queries() ? &request.queries() : nullptr, spec);
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

// Attend's scale and age penalty (shared by Attend and DecodeStep),
// expanded to one value per head of `spec`.
template <typename Request>
absl::StatusOr<AttendOptions> ValidateAttendOptions(const Request& request,
                                                    const StreamSpec& spec) {
  AttendOptions options;
  ASSIGN_OR_RETURN(options.scale,
                   PerHead(request.scale(), spec.heads,
                           1.0f / std::sqrt(static_cast<float>(spec.key_dim)),
                           0.0f, kMaxScale, /*lo_open=*/true, "scale"));
  if (!request.age_alpha().empty()) {
    ASSIGN_OR_RETURN(
        options.age_alpha,
        PerHead(request.age_alpha(), spec.heads, 0.0f, -kMaxAgeAlpha,
                kMaxAgeAlpha, /*lo_open=*/false, "age_alpha"));
    const float tau = request.age_tau();
    if (!(tau >= kMinAgeTau && tau <= kMaxAgeTau)) {
      return absl::InvalidArgumentError(
          absl::StrCat("age_tau: ", tau, " must be in [", kMinAgeTau, ", ",
                       kMaxAgeTau, "] with age_alpha"));
    }
    options.age_tau = tau;
  }
  return options;
}

// An Append's rows (shared by Append and DecodeStep); `keys` and `values`
// null when unset. The command views the tensors' bytes.
absl::StatusOr<AppendCommand> ValidateRows(const std::string& stream_id,
                                           uint32_t layer,
                                           int64_t first_position,
                                           const v1::Tensor* keys,
                                           const v1::Tensor* values, bool sync,
                                           const StreamSpec& spec) {
  RETURN_IF_ERROR(ValidateStreamId(stream_id));
  RETURN_IF_ERROR(CheckLayer(layer, spec));
  if (first_position < 0 || first_position >= kMaxPosition) {
    return absl::InvalidArgumentError(absl::StrCat(
        "first_position: ", first_position, " must be in [0, 2^62)"));
  }
  if (keys == nullptr || keys->shape_size() == 0 || keys->data().empty()) {
    return absl::InvalidArgumentError(
        "keys: empty batch; send at least one row");
  }
  ASSIGN_OR_RETURN(
      std::vector<int64_t> kdims,
      CheckFloatTensor(*keys, {-1, int64_t{spec.heads}, int64_t{spec.key_dim}},
                       "keys"));
  if (values == nullptr) {
    return absl::InvalidArgumentError(
        "values: missing; send values [rows, heads, value_dim] with the keys");
  }
  ASSIGN_OR_RETURN(
      std::vector<int64_t> vdims,
      CheckFloatTensor(*values,
                       {kdims[0], int64_t{spec.heads}, int64_t{spec.value_dim}},
                       "values"));
  if (values->dtype() != keys->dtype()) {
    return absl::InvalidArgumentError(absl::StrCat(
        "values.dtype: ", v1::DType_Name(values->dtype()),
        " differs from keys.dtype ", v1::DType_Name(keys->dtype())));
  }
  if (first_position + kdims[0] > kMaxPosition) {
    return absl::InvalidArgumentError(
        absl::StrCat("first_position: ", first_position, " + ", kdims[0],
                     " rows passes the largest position 2^62"));
  }
  // Values must also fit the storage dtype (float16 tops out at 65504).
  const float bound = std::min(kMaxAbsValue, LargestFinite(spec.storage_dtype));
  const std::string why =
      bound < kMaxAbsValue
          ? absl::StrCat(", the largest the stream's ",
                         DTypeName(spec.storage_dtype), " storage holds")
          : std::string();
  RETURN_IF_ERROR(CheckFinite(*keys, "keys", bound, why));
  RETURN_IF_ERROR(CheckFinite(*values, "values", bound, why));
  AppendCommand cmd;
  cmd.stream_id = stream_id;
  cmd.spec = spec;
  cmd.layer = layer;
  cmd.first_position = first_position;
  cmd.rows = static_cast<size_t>(kdims[0]);
  cmd.dtype = static_cast<DType>(keys->dtype());
  cmd.keys = keys->data();
  cmd.values = values->data();
  cmd.sync = sync;
  return cmd;
}

}  // namespace

absl::Status InStep(int i, const absl::Status& s) {
  if (s.ok()) return s;
  return absl::Status(s.code(), absl::StrCat("steps[", i, "].", s.message()));
}

absl::StatusOr<AttendCommand> ValidateAttend(const v1::AttendRequest& request,
                                             const StreamSpec& spec) {
  AttendCommand cmd;
  ASSIGN_OR_RETURN(cmd.queries, ValidateQueries(request, spec));
  cmd.stream_id = request.stream_id();
  cmd.spec = spec;
  cmd.layer = request.layer();
  cmd.k = request.k();
  ASSIGN_OR_RETURN(cmd.options, ValidateAttendOptions(request, spec));
  return cmd;
}

absl::Status ValidateDecodeStepCall(const v1::DecodeStepRequest& request) {
  if (request.steps().empty()) {
    return absl::InvalidArgumentError("steps: empty; send at least one step");
  }
  if (request.steps_size() > kMaxSteps) {
    return absl::InvalidArgumentError(absl::StrCat(
        "steps: ", request.steps_size(), " steps, more than ", kMaxSteps));
  }
  return CheckK(request.k());
}

absl::StatusOr<StepCommand> ValidateStep(const v1::DecodeStepRequest& request,
                                         int i, const StreamSpec& spec) {
  const v1::StreamStep& step = request.steps(i);
  StepCommand cmd;
  const bool has_rows = step.has_keys() || step.has_values();
  const bool has_queries = step.has_queries();
  if (!has_rows && !has_queries) {
    return absl::InvalidArgumentError(
        absl::StrCat("steps[", i,
                     "].queries: unset, and no rows to append; "
                     "send queries, keys and values, or both"));
  }
  if (has_rows) {
    absl::StatusOr<AppendCommand> append = ValidateRows(
        step.stream_id(), step.layer(), step.first_position(),
        step.has_keys() ? &step.keys() : nullptr,
        step.has_values() ? &step.values() : nullptr, request.sync(), spec);
    if (!append.ok()) return InStep(i, append.status());
    cmd.append = *std::move(append);
  }
  if (has_queries) {
    AttendCommand attend;
    attend.stream_id = step.stream_id();
    attend.spec = spec;
    attend.layer = step.layer();
    attend.k = request.k();
    if (absl::Status s = CheckLayer(step.layer(), spec); !s.ok()) {
      return InStep(i, s);
    }
    absl::StatusOr<std::vector<float>> queries =
        ValidateQueryTensor(&step.queries(), spec);
    if (!queries.ok()) return InStep(i, queries.status());
    attend.queries = *std::move(queries);
    // The call's fields, checked against this step's stream (heads vary).
    absl::StatusOr<AttendOptions> options =
        ValidateAttendOptions(request, spec);
    if (!options.ok()) {
      return absl::Status(
          options.status().code(),
          absl::StrCat(options.status().message(), " (steps[", i, "]: stream '",
                       step.stream_id(), "' has ", spec.heads, " heads)"));
    }
    attend.options = *std::move(options);
    cmd.attend = std::move(attend);
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
  return ValidateRows(
      request.stream_id(), request.layer(), request.first_position(),
      request.has_keys() ? &request.keys() : nullptr,
      request.has_values() ? &request.values() : nullptr, request.sync(), spec);
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

size_t DecodeStepResponseBytes(absl::Span<const StepCommand> steps) {
  size_t bytes = 64;
  for (const StepCommand& step : steps) {
    bytes += 64;
    if (!step.attend) continue;
    const StreamSpec& spec = step.attend->spec;
    const size_t pairs = step.attend->queries.size() / spec.key_dim;
    bytes += pairs * (spec.value_dim + 1) * sizeof(float);
  }
  return bytes;
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
