#include "client/decode_step.h"

#include "absl/strings/str_cat.h"
#include "proto/tensor_codec.h"

namespace knnmem::client {
namespace {

// The number of [heads, dim] rows in `values`; INVALID_ARGUMENT naming
// `field` unless they are whole.
absl::StatusOr<int64_t> RowsOf(absl::Span<const float> values, int64_t heads,
                               int64_t dim, const std::string& field) {
  const int64_t size = static_cast<int64_t>(values.size());
  if (heads <= 0 || dim <= 0 || size % (heads * dim) != 0) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ": ", size, " floats are not whole [heads=", heads,
                     ", dim=", dim, "] rows"));
  }
  return size / (heads * dim);
}

}  // namespace

absl::StatusOr<v1::DecodeStepRequest> MakeDecodeStepRequest(
    absl::Span<const Step> steps, const StepParams& params) {
  v1::DecodeStepRequest req;
  req.set_k(params.k);
  req.mutable_scale()->Add(params.scale.begin(), params.scale.end());
  req.mutable_age_alpha()->Add(params.age_alpha.begin(),
                               params.age_alpha.end());
  req.set_age_tau(params.age_tau);
  req.set_sync(params.sync);
  for (size_t i = 0; i < steps.size(); ++i) {
    const Step& in = steps[i];
    const std::string where = absl::StrCat("steps[", i, "]");
    v1::StreamStep* step = req.add_steps();
    step->set_stream_id(in.stream_id);
    step->set_layer(in.layer);
    if (!in.queries.empty()) {
      absl::StatusOr<int64_t> n =
          RowsOf(in.queries, in.heads, in.key_dim, where + ".queries");
      if (!n.ok()) return n.status();
      *step->mutable_queries() =
          MakeTensor(in.queries, {*n, in.heads, in.key_dim}, DType::kFloat32);
    }
    if (!in.keys.empty() || !in.values.empty()) {
      absl::StatusOr<int64_t> rows =
          RowsOf(in.keys, in.heads, in.key_dim, where + ".keys");
      if (!rows.ok()) return rows.status();
      absl::StatusOr<int64_t> value_rows =
          RowsOf(in.values, in.heads, in.value_dim, where + ".values");
      if (!value_rows.ok()) return value_rows.status();
      if (*rows != *value_rows) {
        return absl::InvalidArgumentError(absl::StrCat(
            where, ".values: ", *value_rows, " rows, keys have ", *rows));
      }
      step->set_first_position(in.first_position);
      *step->mutable_keys() =
          MakeTensor(in.keys, {*rows, in.heads, in.key_dim}, params.wire_dtype);
      *step->mutable_values() = MakeTensor(
          in.values, {*rows, in.heads, in.value_dim}, params.wire_dtype);
    }
  }
  return req;
}

StepResult DecodeStepResult(const v1::StreamStepResult& result) {
  StepResult out;
  if (result.code() != 0) {
    out.status = absl::Status(static_cast<absl::StatusCode>(result.code()),
                              result.message());
    return out;
  }
  out.next_position = result.next_position();
  if (result.has_output()) {
    absl::StatusOr<Attention> a =
        DecodeAttentionTensors(result.output(), result.lse());
    if (!a.ok()) {
      out.status = a.status();
    } else {
      out.attention = *std::move(a);
    }
  }
  return out;
}

absl::StatusOr<Attention> DecodeAttentionTensors(const v1::Tensor& out,
                                                 const v1::Tensor& lse) {
  if (out.dtype() != v1::FLOAT32 || lse.dtype() != v1::FLOAT32 ||
      out.shape_size() != 3 || lse.shape_size() != 2) {
    return absl::DataLossError(
        "output/lse: response is not float32 [n, heads, value_dim] / [n, "
        "heads]");
  }
  Attention a;
  a.queries = out.shape(0);
  a.heads = out.shape(1);
  a.value_dim = out.shape(2);
  if (lse.shape(0) != a.queries || lse.shape(1) != a.heads ||
      static_cast<int64_t>(out.data().size()) !=
          a.queries * a.heads * a.value_dim * 4 ||
      static_cast<int64_t>(lse.data().size()) != a.queries * a.heads * 4) {
    return absl::DataLossError("output/lse: malformed response tensors");
  }
  a.output = UnpackFloats(out.data(), DType::kFloat32);
  a.lse = UnpackFloats(lse.data(), DType::kFloat32);
  return a;
}

}  // namespace knnmem::client
