#include "proto/tensor_codec.h"

#include <string>

#include "absl/status/status.h"
#include "absl/strings/str_cat.h"
#include "absl/strings/str_join.h"

namespace knnmem {

absl::StatusOr<DType> DTypeFromProto(v1::DType dtype, absl::string_view field) {
  switch (dtype) {
    case v1::FLOAT32:
      return DType::kFloat32;
    case v1::FLOAT16:
      return DType::kFloat16;
    case v1::BFLOAT16:
      return DType::kBFloat16;
    default: {
      // An enum value this build does not know has no name: print it.
      const std::string name = v1::DType_Name(dtype);
      return absl::InvalidArgumentError(absl::StrCat(
          field, ": dtype ",
          name.empty() ? absl::StrCat(static_cast<int>(dtype), " (unknown)")
                       : name,
          " is not a float dtype (FLOAT32, FLOAT16, BFLOAT16)"));
    }
  }
}

v1::DType DTypeToProto(DType dtype) { return static_cast<v1::DType>(dtype); }

v1::Tensor MakeTensor(absl::Span<const float> values,
                      absl::Span<const int64_t> shape, DType dtype) {
  v1::Tensor t;
  t.set_dtype(DTypeToProto(dtype));
  for (int64_t d : shape) t.add_shape(d);
  std::string* data = t.mutable_data();
  data->resize(values.size() * ElementSize(dtype));
  EncodeFloats(values.data(), values.size(), dtype, data->data());
  return t;
}

absl::StatusOr<std::vector<int64_t>> CheckFloatTensor(
    const v1::Tensor& tensor, absl::Span<const int64_t> shape,
    absl::string_view field) {
  absl::StatusOr<DType> dtype = DTypeFromProto(tensor.dtype(), field);
  if (!dtype.ok()) return dtype.status();
  if (tensor.shape_size() != static_cast<int>(shape.size())) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ": shape has rank ", tensor.shape_size(), ", want rank ",
        shape.size(), " [", absl::StrJoin(shape, ", "), "] (-1 = any)"));
  }
  std::vector<int64_t> dims(tensor.shape().begin(), tensor.shape().end());
  // Products are bounded by the byte length check below, so cap each dim
  // first to keep the multiplication from overflowing.
  constexpr int64_t kMaxDim = int64_t{1} << 31;
  uint64_t elements = 1;
  for (size_t i = 0; i < dims.size(); ++i) {
    if (dims[i] <= 0 || dims[i] > kMaxDim) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".shape[", i, "] = ", dims[i], " must be in [1, 2^31]"));
    }
    if (shape[i] >= 0 && dims[i] != shape[i]) {
      return absl::InvalidArgumentError(absl::StrCat(
          field, ".shape[", i, "] = ", dims[i], ", want ", shape[i]));
    }
    if (elements > (uint64_t{1} << 40)) {
      return absl::InvalidArgumentError(
          absl::StrCat(field, ".shape: too many elements"));
    }
    elements *= static_cast<uint64_t>(dims[i]);
  }
  const uint64_t want = elements * ElementSize(*dtype);
  if (tensor.data().size() != want) {
    return absl::InvalidArgumentError(
        absl::StrCat(field, ".data: ", tensor.data().size(),
                     " bytes, but shape [", absl::StrJoin(dims, ", "), "] of ",
                     DTypeName(*dtype), " needs ", want));
  }
  return dims;
}

absl::StatusOr<std::vector<float>> TensorToFloats(const v1::Tensor& tensor,
                                                  absl::string_view field) {
  absl::StatusOr<DType> dtype = DTypeFromProto(tensor.dtype(), field);
  if (!dtype.ok()) return dtype.status();
  if (tensor.data().size() % ElementSize(*dtype) != 0) {
    return absl::InvalidArgumentError(absl::StrCat(
        field, ".data: length is not a multiple of the element size"));
  }
  return UnpackFloats(tensor.data(), *dtype);
}

}  // namespace knnmem
