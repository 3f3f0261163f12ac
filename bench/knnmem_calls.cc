#include "bench/knnmem_calls.h"

#include <chrono>
#include <cmath>
#include <thread>
#include <utility>

#include "absl/strings/str_cat.h"
#include "absl/strings/str_format.h"
#include "base/status_macros.h"
#include "bench/stats.h"

namespace knnmem::bench {

v1::StreamSpec BenchSpec(const Shape& shape, uint64_t capacity, DType storage) {
  v1::StreamSpec spec;
  spec.set_layers(1);
  spec.set_heads(shape.heads);
  spec.set_key_dim(shape.key_dim);
  spec.set_value_dim(shape.value_dim);
  spec.set_capacity(capacity);
  spec.set_index(v1::EXACT);
  spec.set_storage_dtype(DTypeToProto(storage));
  return spec;
}

absl::Status CreateFreshStream(client::ShardedClient& client,
                               const std::string& id,
                               const v1::StreamSpec& spec) {
  const std::string where = ServerLabel(client.ServerOf(id));
  absl::StatusOr<v1::CreateStreamResponse> created =
      client.CreateStream(id, spec);
  if (!created.ok()) {
    return WithContext(created.status(),
                       absl::StrCat("CreateStream '", id, "' on ", where));
  }
  if (created->created()) return absl::OkStatus();
  return WithContext(client.For(id).ResetStream(id),
                     absl::StrCat("ResetStream '", id, "' on ", where));
}

std::string ServerLabel(const client::ServerAddress& server) {
  return server.name == server.address
             ? server.address
             : absl::StrCat(server.name, "=", server.address);
}

v1::AppendRequest MakeAppendRequest(const std::string& id,
                                    const BenchData& data, int64_t position,
                                    int64_t rows, DType wire) {
  const Shape& sh = data.shape;
  const int64_t row = position % sh.entries;
  v1::AppendRequest req;
  req.set_stream_id(id);
  req.set_layer(0);
  req.set_first_position(position);
  req.set_sync(false);
  *req.mutable_keys() = MakeTensor(
      absl::MakeConstSpan(data.KeyRows(row), rows * sh.heads * sh.key_dim),
      {rows, sh.heads, sh.key_dim}, wire);
  *req.mutable_values() = MakeTensor(
      absl::MakeConstSpan(data.ValueRows(row), rows * sh.heads * sh.value_dim),
      {rows, sh.heads, sh.value_dim}, wire);
  return req;
}

v1::SearchRequest MakeSearchRequest(const std::string& id,
                                    const BenchData& data,
                                    bool with_keys_and_values) {
  const Shape& sh = data.shape;
  v1::SearchRequest req;
  req.set_stream_id(id);
  req.set_layer(0);
  req.set_k(sh.k);
  req.set_return_keys(with_keys_and_values);
  req.set_return_values(with_keys_and_values);
  *req.mutable_queries() = MakeTensor(
      data.queries, {sh.queries, sh.heads, sh.key_dim}, DType::kFloat32);
  return req;
}

v1::AttendRequest MakeAttendRequest(const std::string& id,
                                    const BenchData& data) {
  const Shape& sh = data.shape;
  v1::AttendRequest req;
  req.set_stream_id(id);
  req.set_layer(0);
  req.set_k(sh.k);
  *req.mutable_queries() = MakeTensor(
      data.queries, {sh.queries, sh.heads, sh.key_dim}, DType::kFloat32);
  return req;
}

absl::Status AppendChecked(client::MemoryClient& client,
                           v1::AppendRequest request) {
  const std::string what =
      absl::StrCat("Append to '", request.stream_id(), "' at position ",
                   request.first_position());
  const int64_t expected = request.first_position() + request.keys().shape(0);
  absl::StatusOr<v1::AppendResponse> r = client.Append(std::move(request));
  if (!r.ok()) return WithContext(r.status(), what);
  if (r->next_position() != expected) {
    return absl::DataLossError(absl::StrCat(
        what, ": next_position ", r->next_position(), ", expected ", expected));
  }
  return absl::OkStatus();
}

absl::Status CheckSearchResponse(const v1::SearchResponse& response,
                                 const Shape& shape) {
  const auto& s = response.scores().shape();
  if (s.size() != 3 || s[0] != shape.queries || s[1] != shape.heads ||
      s[2] != shape.k) {
    return absl::DataLossError(absl::StrCat("Search: scores are not [",
                                            shape.queries, ", ", shape.heads,
                                            ", ", shape.k, "]"));
  }
  return absl::OkStatus();
}

absl::Status CheckAttendResponse(const v1::AttendResponse& response,
                                 const Shape& shape) {
  absl::StatusOr<client::Attention> a = client::DecodeAttention(response);
  if (!a.ok()) return WithContext(a.status(), "Attend");
  if (a->queries != shape.queries || a->heads != shape.heads ||
      a->value_dim != shape.value_dim) {
    return absl::DataLossError(absl::StrCat("Attend: output is not [",
                                            shape.queries, ", ", shape.heads,
                                            ", ", shape.value_dim, "]"));
  }
  for (float lse : a->lse) {
    if (!std::isfinite(lse)) {
      return absl::DataLossError("Attend: an lse is not finite");
    }
  }
  return absl::OkStatus();
}

absl::Status AwaitIndexed(client::MemoryClient& client, const std::string& id,
                          int64_t want, const std::string& label) {
  int64_t seen = -1;
  for (double last = NowSeconds(), moved = NowSeconds();;) {
    ASSIGN_OR_RETURN(v1::StreamInfo info, client.GetStream(id));
    const int64_t indexed =
        static_cast<int64_t>(info.layers(0).indexed_entries());
    if (indexed >= want) return absl::OkStatus();
    if (indexed != seen) {
      seen = indexed;
      moved = NowSeconds();
    } else if (NowSeconds() - moved > 300) {
      return absl::DeadlineExceededError(
          absl::StrFormat("%s: %s: the tier stayed at %d of %d entries for "
                          "300 s",
                          label, id, indexed, want));
    }
    if (NowSeconds() - last > 10) {
      Progress(
          absl::StrFormat("%s: %s indexed %d of %d", label, id, indexed, want));
      last = NowSeconds();
    }
    std::this_thread::sleep_for(std::chrono::milliseconds(100));
  }
}

absl::Status WithContext(const absl::Status& status, const std::string& what) {
  if (status.ok()) return status;
  return absl::Status(
      status.code(),
      absl::StrCat(what, ": ", absl::StatusCodeToString(status.code()), ": ",
                   status.message()));
}

}  // namespace knnmem::bench
