#include "model/remote_memory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/memory_client.h"
#include "model/memory_tensors.h"

namespace knnmem::model {
RemoteMemory::RemoteMemory(const std::string& address,
                           std::chrono::milliseconds deadline) {
  MemoryClient::Options options;
  options.deadline = deadline;
  client_ = MemoryClient::Connect(address, options);
}

RemoteMemory::~RemoteMemory() = default;

absl::StatusOr<const MemoryShape*> RemoteMemory::ShapeOf(
    const std::string& document) const {
  auto it = shapes_.find(document);
  if (it == shapes_.end()) {
    return absl::NotFoundError(
        absl::StrCat("document '", document, "' has no memory open"));
  }
  return &it->second;
}

absl::Status RemoteMemory::BeginDocument(const std::string& document,
                                         const MemoryShape& shape) {
  absl::Status dropped = client_->DeleteStream(document);
  if (!dropped.ok() && !absl::IsNotFound(dropped)) return dropped;
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(static_cast<uint32_t>(shape.heads));
  spec.set_key_dim(static_cast<uint32_t>(shape.key_dim));
  spec.set_value_dim(static_cast<uint32_t>(shape.value_dim));
  spec.set_capacity(static_cast<uint64_t>(shape.capacity));
  spec.set_storage_dtype(v1::FLOAT32);
  RETURN_IF_ERROR(client_->CreateStream(document, spec).status());
  shapes_[document] = shape;
  return absl::OkStatus();
}

absl::Status RemoteMemory::EndDocument(const std::string& document) {
  shapes_.erase(document);
  absl::Status s = client_->DeleteStream(document);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status RemoteMemory::Append(const std::string& document, int64_t first,
                                  const torch::Tensor& keys,
                                  const torch::Tensor& values) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(document));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(keys, "keys", shape.heads, shape.key_dim));
  RETURN_IF_ERROR(CheckRows(values, "values", shape.heads, shape.value_dim));
  const torch::Tensor k = Flat(keys), v = Flat(values);
  return client_
      ->Append(document, 0, first, FloatsOf(k), FloatsOf(v), k.size(0),
               shape.heads)
      .status();
}

absl::StatusOr<Retrieved> RemoteMemory::Search(const std::string& document,
                                               const torch::Tensor& queries,
                                               int k) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(document));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(queries, "queries", shape.heads, shape.key_dim));
  const torch::Tensor q = Flat(queries);
  absl::StatusOr<Neighbours> r =
      client_->Search(document, 0, FloatsOf(q), q.size(0), shape.heads,
                      static_cast<uint32_t>(k), true, true);
  if (!r.ok()) return r.status();
  return MakeRetrieved(q.size(0), shape, k, r->keys, r->values, r->positions);
}

absl::StatusOr<Attended> RemoteMemory::Attend(const std::string& document,
                                              const torch::Tensor& queries,
                                              int k,
                                              const AttendParams& params) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(document));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(queries, "queries", shape.heads, shape.key_dim));
  const torch::Tensor q = Flat(queries);
  absl::StatusOr<Attention> r = client_->Attend(
      document, 0, FloatsOf(q), q.size(0), shape.heads,
      static_cast<uint32_t>(k), params.scale, params.age_alpha, params.age_tau);
  if (!r.ok()) return r.status();
  const int64_t n = q.size(0), h = shape.heads;
  return Attended{FloatTensor(r->output, {n, h, int64_t{shape.value_dim}}),
                  FloatTensor(r->lse, {n, h})};
}

}  // namespace knnmem::model
