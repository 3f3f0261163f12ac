#include "model/remote_memory.h"

#include <utility>

#include "absl/strings/str_cat.h"
#include "base/status_macros.h"
#include "client/memory_client.h"
#include "model/memory_tensors.h"

namespace knnmem::model {
RemoteMemory::RemoteMemory(const std::string& address,
                           std::chrono::milliseconds deadline, bool approximate)
    : approximate_(approximate) {
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
  spec.set_index(approximate_ ? v1::APPROXIMATE : v1::EXACT);
  RETURN_IF_ERROR(client_->CreateStream(document, spec).status());
  shapes_[document] = shape;
  return absl::OkStatus();
}

absl::Status RemoteMemory::EndDocument(const std::string& document) {
  if (approximate_ && shapes_.count(document) > 0) {
    absl::StatusOr<v1::StreamInfo> info = client_->GetStream(document);
    for (int i = 0; info.ok() && i < info->layers_size(); ++i) {
      indexed_at_end_ +=
          static_cast<int64_t>(info->layers(i).indexed_entries());
      entries_at_end_ += static_cast<int64_t>(info->layers(i).entries());
    }
  }
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

std::vector<absl::StatusOr<Attended>> RemoteMemory::AttendMany(
    const std::vector<DocumentQueries>& asks, int k,
    const AttendParams& params) {
  std::vector<absl::StatusOr<Attended>> out(asks.size(),
                                            absl::UnknownError("not asked"));
  std::vector<StepInput> steps;
  std::vector<torch::Tensor> flat;  // keeps the queries' floats alive
  std::vector<size_t> asked;        // steps[j] is asks[asked[j]]
  std::vector<const MemoryShape*> shapes;
  flat.reserve(asks.size());
  for (size_t i = 0; i < asks.size(); ++i) {
    absl::StatusOr<const MemoryShape*> shape = ShapeOf(asks[i].document);
    absl::Status valid = shape.status();
    if (valid.ok()) {
      valid = CheckRows(asks[i].queries, "queries", (*shape)->heads,
                        (*shape)->key_dim);
    }
    if (!valid.ok()) {
      out[i] = valid;
      continue;
    }
    flat.push_back(Flat(asks[i].queries));
    StepInput step;
    step.stream_id = asks[i].document;
    step.heads = (*shape)->heads;
    step.key_dim = (*shape)->key_dim;
    step.value_dim = (*shape)->value_dim;
    step.queries = FloatsOf(flat.back());
    steps.push_back(step);
    asked.push_back(i);
    shapes.push_back(*shape);
  }
  if (steps.empty()) return out;
  StepParams p;
  p.k = static_cast<uint32_t>(k);
  p.scale = params.scale;
  p.age_alpha = params.age_alpha;
  p.age_tau = params.age_tau;
  absl::StatusOr<std::vector<StepOutput>> r = client_->DecodeStep(steps, p);
  for (size_t j = 0; j < asked.size(); ++j) {
    absl::StatusOr<Attended>& o = out[asked[j]];
    if (!r.ok()) {
      o = r.status();
      continue;
    }
    StepOutput& got = (*r)[j];
    if (!got.status.ok()) {
      o = got.status;
      continue;
    }
    const int64_t n = got.attention.queries, h = shapes[j]->heads;
    o = Attended{FloatTensor(got.attention.output,
                             {n, h, int64_t{shapes[j]->value_dim}}),
                 FloatTensor(got.attention.lse, {n, h})};
  }
  return out;
}

}  // namespace knnmem::model
