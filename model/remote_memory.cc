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
  client::MemoryClient::Options options;
  options.deadline = deadline;
  client_ = client::MemoryClient::Connect(address, options);
}

RemoteMemory::~RemoteMemory() = default;

absl::StatusOr<const MemoryShape*> RemoteMemory::ShapeOf(
    const std::string& stream) const {
  auto it = shapes_.find(stream);
  if (it == shapes_.end()) {
    return absl::NotFoundError(
        absl::StrCat("document '", stream, "' has no memory open"));
  }
  return &it->second;
}

absl::Status RemoteMemory::BeginStream(const std::string& stream,
                                       const MemoryShape& shape) {
  absl::Status dropped = client_->DeleteStream(stream);
  if (!dropped.ok() && !absl::IsNotFound(dropped)) return dropped;
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(static_cast<uint32_t>(shape.heads));
  spec.set_key_dim(static_cast<uint32_t>(shape.key_dim));
  spec.set_value_dim(static_cast<uint32_t>(shape.value_dim));
  spec.set_capacity(static_cast<uint64_t>(shape.capacity));
  spec.set_storage_dtype(v1::FLOAT32);
  spec.set_index(approximate_ ? v1::APPROXIMATE : v1::EXACT);
  RETURN_IF_ERROR(client_->CreateStream(stream, spec).status());
  shapes_[stream] = shape;
  return absl::OkStatus();
}

absl::Status RemoteMemory::EndStream(const std::string& stream) {
  if (approximate_ && shapes_.count(stream) > 0) {
    absl::StatusOr<v1::StreamInfo> info = client_->GetStream(stream);
    for (int i = 0; info.ok() && i < info->layers_size(); ++i) {
      indexed_at_end_ +=
          static_cast<int64_t>(info->layers(i).indexed_entries());
      entries_at_end_ += static_cast<int64_t>(info->layers(i).entries());
    }
  }
  shapes_.erase(stream);
  absl::Status s = client_->DeleteStream(stream);
  return absl::IsNotFound(s) ? absl::OkStatus() : s;
}

absl::Status RemoteMemory::Append(const std::string& stream, int64_t first,
                                  const torch::Tensor& keys,
                                  const torch::Tensor& values) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(stream));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(keys, "keys", shape.heads, shape.key_dim));
  RETURN_IF_ERROR(CheckRows(values, "values", shape.heads, shape.value_dim));
  const torch::Tensor k = Flat(keys), v = Flat(values);
  return client_
      ->Append(stream, 0, first, FloatsOf(k), FloatsOf(v), k.size(0),
               shape.heads)
      .status();
}

absl::StatusOr<Neighbours> RemoteMemory::Search(const std::string& stream,
                                                const torch::Tensor& queries,
                                                int k) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(stream));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(queries, "queries", shape.heads, shape.key_dim));
  const torch::Tensor q = Flat(queries);
  absl::StatusOr<client::Neighbours> r =
      client_->Search(stream, 0, FloatsOf(q), q.size(0), shape.heads,
                      static_cast<uint32_t>(k), true, true);
  if (!r.ok()) return r.status();
  return MakeNeighbours(q.size(0), shape, k, r->keys, r->values, r->positions);
}

absl::StatusOr<Attention> RemoteMemory::Attend(const std::string& stream,
                                               const torch::Tensor& queries,
                                               int k,
                                               const AttendOptions& options) {
  ASSIGN_OR_RETURN(const MemoryShape* found, ShapeOf(stream));
  const MemoryShape& shape = *found;
  RETURN_IF_ERROR(CheckRows(queries, "queries", shape.heads, shape.key_dim));
  const torch::Tensor q = Flat(queries);
  absl::StatusOr<client::Attention> r = client_->Attend(
      stream, 0, FloatsOf(q), q.size(0), shape.heads, static_cast<uint32_t>(k),
      options.scale, options.age_alpha, options.age_tau);
  if (!r.ok()) return r.status();
  const int64_t n = q.size(0), h = shape.heads;
  return Attention{FloatTensor(r->output, {n, h, int64_t{shape.value_dim}}),
                   FloatTensor(r->lse, {n, h})};
}

std::vector<absl::StatusOr<Attention>> RemoteMemory::AttendMany(
    const std::vector<StreamQueries>& asks, int k,
    const AttendOptions& options) {
  std::vector<absl::StatusOr<Attention>> out(asks.size(),
                                             absl::UnknownError("not asked"));
  std::vector<client::Step> steps;
  std::vector<torch::Tensor> flat;  // keeps the queries' floats alive
  std::vector<size_t> asked;        // steps[j] is asks[asked[j]]
  std::vector<const MemoryShape*> shapes;
  flat.reserve(asks.size());
  for (size_t i = 0; i < asks.size(); ++i) {
    absl::StatusOr<const MemoryShape*> shape = ShapeOf(asks[i].stream);
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
    client::Step step;
    step.stream_id = asks[i].stream;
    step.heads = (*shape)->heads;
    step.key_dim = (*shape)->key_dim;
    step.value_dim = (*shape)->value_dim;
    step.queries = FloatsOf(flat.back());
    steps.push_back(step);
    asked.push_back(i);
    shapes.push_back(*shape);
  }
  if (steps.empty()) return out;
  client::StepParams p;
  p.k = static_cast<uint32_t>(k);
  p.scale = options.scale;
  p.age_alpha = options.age_alpha;
  p.age_tau = options.age_tau;
  absl::StatusOr<std::vector<client::StepResult>> r =
      client_->DecodeStep(steps, p);
  for (size_t j = 0; j < asked.size(); ++j) {
    absl::StatusOr<Attention>& o = out[asked[j]];
    if (!r.ok()) {
      o = r.status();
      continue;
    }
    client::StepResult& got = (*r)[j];
    if (!got.status.ok()) {
      o = got.status;
      continue;
    }
    const int64_t n = got.attention.queries, h = shapes[j]->heads;
    o = Attention{FloatTensor(got.attention.output,
                              {n, h, int64_t{shapes[j]->value_dim}}),
                  FloatTensor(got.attention.lse, {n, h})};
  }
  return out;
}

}  // namespace knnmem::model
