#include "client/memory_client.h"

#include <grpcpp/grpcpp.h>

#include <cstring>
#include <tuple>

#include "absl/strings/str_cat.h"
#include "client/aliased_message.h"

namespace knnmem::client {

absl::Status FromGrpc(const grpc::Status& s) {
  if (s.ok()) return absl::OkStatus();
  return absl::Status(static_cast<absl::StatusCode>(s.error_code()),
                      s.error_message());
}

namespace {

int64_t Elements(const v1::Tensor& t) {
  int64_t n = 1;
  for (int64_t d : t.shape()) n *= d;
  return n;
}

}  // namespace

std::unique_ptr<MemoryClient> MemoryClient::Connect(const std::string& address,
                                                    const Options& options) {
  grpc::ChannelArguments args;
  args.SetMaxReceiveMessageSize(options.max_receive_message_bytes);
  args.SetMaxSendMessageSize(-1);
  // Requests and answers are megabytes: see the server's channel arguments.
  args.SetInt(GRPC_ARG_HTTP2_STREAM_LOOKAHEAD_BYTES, 16 << 20);
  args.SetInt(GRPC_ARG_HTTP2_MAX_FRAME_SIZE, (16 << 20) - 1);
  std::shared_ptr<grpc::ChannelCredentials> credentials =
      grpc::InsecureChannelCredentials();
  if (!options.tls_root_certs.empty()) {
    grpc::SslCredentialsOptions ssl;
    ssl.pem_root_certs = options.tls_root_certs;
    ssl.pem_cert_chain = options.tls_cert_chain;
    ssl.pem_private_key = options.tls_private_key;
    credentials = grpc::SslCredentials(ssl);
  }
  return std::make_unique<MemoryClient>(
      grpc::CreateCustomChannel(address, credentials, args), options);
}

MemoryClient::MemoryClient(std::shared_ptr<grpc::Channel> channel,
                           const Options& options)
    : options_(options),
      channel_(std::move(channel)),
      stub_(v1::Memory::NewStub(channel_)),
      generic_(std::make_unique<grpc::GenericStub>(channel_)),
      health_(grpc::health::v1::Health::NewStub(channel_)) {}

void MemoryClient::Prepare(grpc::ClientContext& context) const {
  context.set_deadline(std::chrono::system_clock::now() + options_.deadline);
  if (!options_.auth_token.empty()) {
    context.AddMetadata("authorization", "Bearer " + options_.auth_token);
  }
}

template <typename Stub, typename Request, typename Response>
absl::StatusOr<Response> MemoryClient::Call(
    Stub* stub,
    grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                 Response*),
    const Request& request) const {
  grpc::ClientContext ctx;
  Prepare(ctx);
  Response response;
  absl::Status s = FromGrpc((stub->*method)(&ctx, request, &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::CreateStreamResponse> MemoryClient::CreateStream(
    const std::string& stream_id, const v1::StreamSpec& spec) {
  v1::CreateStreamRequest req;
  req.set_stream_id(stream_id);
  *req.mutable_spec() = spec;
  return Call(stub_.get(), &v1::Memory::Stub::CreateStream, req);
}

absl::StatusOr<v1::StreamInfo> MemoryClient::GetStream(
    const std::string& stream_id) {
  v1::GetStreamRequest req;
  req.set_stream_id(stream_id);
  return Call(stub_.get(), &v1::Memory::Stub::GetStream, req);
}

absl::StatusOr<std::vector<v1::StreamInfo>> MemoryClient::ListStreams() {
  std::vector<v1::StreamInfo> all;
  v1::ListStreamsRequest req;
  do {
    absl::StatusOr<v1::ListStreamsResponse> page =
        Call(stub_.get(), &v1::Memory::Stub::ListStreams, req);
    if (!page.ok()) return page.status();
    for (auto& info : *page->mutable_streams()) all.push_back(std::move(info));
    req.set_page_token(page->next_page_token());
  } while (!req.page_token().empty());
  return all;
}

absl::Status MemoryClient::ResetStream(const std::string& stream_id) {
  v1::ResetStreamRequest req;
  req.set_stream_id(stream_id);
  return Call(stub_.get(), &v1::Memory::Stub::ResetStream, req).status();
}

absl::Status MemoryClient::DeleteStream(const std::string& stream_id) {
  v1::DeleteStreamRequest req;
  req.set_stream_id(stream_id);
  return Call(stub_.get(), &v1::Memory::Stub::DeleteStream, req).status();
}

std::unique_ptr<AppendPipeline> MemoryClient::OpenAppendPipeline(
    size_t window, std::chrono::milliseconds deadline) {
  auto context = std::make_unique<grpc::ClientContext>();
  Prepare(*context);
  if (deadline.count() > 0) {
    context->set_deadline(std::chrono::system_clock::now() + deadline);
  }
  return std::make_unique<AppendPipeline>(std::move(context), channel_.get(),
                                          window);
}

absl::StatusOr<v1::AppendResponse> MemoryClient::Append(
    v1::AppendRequest request) {
  // Keys and values go to the transport without a copy (aliased_message.h).
  grpc::ClientContext ctx;
  Prepare(ctx);
  v1::AppendResponse response;
  absl::Status s = FromGrpc(AliasedUnaryCall(
      *generic_, ctx, "/knnmem.v1.Memory/Append",
      std::make_shared<const v1::AppendRequest>(std::move(request)),
      &response));
  if (!s.ok()) return s;
  return response;
}

absl::StatusOr<v1::AppendResponse> MemoryClient::Append(
    const std::string& stream_id, uint32_t layer, int64_t first_position,
    absl::Span<const float> keys, absl::Span<const float> values, int64_t rows,
    int64_t heads, DType wire_dtype, bool sync) {
  absl::StatusOr<v1::AppendRequest> req =
      MakeAppendRequest(stream_id, layer, first_position, keys, values, rows,
                        heads, wire_dtype, sync);
  if (!req.ok()) return req.status();
  return Append(*std::move(req));
}

absl::StatusOr<v1::AppendRequest> MakeAppendRequest(
    const std::string& stream_id, uint32_t layer, int64_t first_position,
    absl::Span<const float> keys, absl::Span<const float> values, int64_t rows,
    int64_t heads, DType wire_dtype, bool sync) {
  const int64_t per_token = rows * heads;
  if (per_token <= 0 || keys.size() % per_token != 0 ||
      values.size() % per_token != 0) {
    return absl::InvalidArgumentError(
        "keys/values: sizes are not multiples of rows * heads");
  }
  const int64_t key_dim = static_cast<int64_t>(keys.size()) / per_token;
  const int64_t value_dim = static_cast<int64_t>(values.size()) / per_token;
  v1::AppendRequest req;
  req.set_stream_id(stream_id);
  req.set_layer(layer);
  req.set_first_position(first_position);
  req.set_sync(sync);
  *req.mutable_keys() = MakeTensor(keys, {rows, heads, key_dim}, wire_dtype);
  *req.mutable_values() =
      MakeTensor(values, {rows, heads, value_dim}, wire_dtype);
  return req;
}

absl::StatusOr<v1::SearchResponse> MemoryClient::Search(
    const v1::SearchRequest& request) {
  return Call(stub_.get(), &v1::Memory::Stub::Search, request);
}

absl::StatusOr<Neighbours> MemoryClient::Search(
    const std::string& stream_id, uint32_t layer,
    absl::Span<const float> queries, int64_t n, int64_t heads, uint32_t k,
    bool return_keys, bool return_values, bool exact) {
  if (n <= 0 || heads <= 0 || queries.size() % (n * heads) != 0) {
    return absl::InvalidArgumentError(
        "queries: size is not a multiple of n * heads");
  }
  const int64_t key_dim = static_cast<int64_t>(queries.size()) / (n * heads);
  v1::SearchRequest req;
  req.set_stream_id(stream_id);
  req.set_layer(layer);
  req.set_k(k);
  req.set_return_keys(return_keys);
  req.set_return_values(return_values);
  req.set_exact(exact);
  *req.mutable_queries() =
      MakeTensor(queries, {n, heads, key_dim}, DType::kFloat32);
  absl::StatusOr<v1::SearchResponse> resp = Search(req);
  if (!resp.ok()) return resp.status();
  return DecodeNeighbours(*resp);
}

absl::StatusOr<v1::AttendResponse> MemoryClient::Attend(
    const v1::AttendRequest& request) {
  return Call(stub_.get(), &v1::Memory::Stub::Attend, request);
}

absl::StatusOr<Attention> MemoryClient::Attend(
    const std::string& stream_id, uint32_t layer,
    absl::Span<const float> queries, int64_t n, int64_t heads, uint32_t k,
    absl::Span<const float> scale, absl::Span<const float> age_alpha,
    float age_tau) {
  if (n <= 0 || heads <= 0 || queries.size() % (n * heads) != 0) {
    return absl::InvalidArgumentError(
        "queries: size is not a multiple of n * heads");
  }
  const int64_t key_dim = static_cast<int64_t>(queries.size()) / (n * heads);
  v1::AttendRequest req;
  req.set_stream_id(stream_id);
  req.set_layer(layer);
  req.set_k(k);
  *req.mutable_queries() =
      MakeTensor(queries, {n, heads, key_dim}, DType::kFloat32);
  req.mutable_scale()->Add(scale.begin(), scale.end());
  req.mutable_age_alpha()->Add(age_alpha.begin(), age_alpha.end());
  req.set_age_tau(age_tau);
  absl::StatusOr<v1::AttendResponse> resp = Attend(req);
  if (!resp.ok()) return resp.status();
  return DecodeAttention(*resp);
}

absl::StatusOr<v1::DecodeStepResponse> MemoryClient::DecodeStep(
    const v1::DecodeStepRequest& request) {
  return Call(stub_.get(), &v1::Memory::Stub::DecodeStep, request);
}

absl::StatusOr<std::vector<StepResult>> MemoryClient::DecodeStep(
    absl::Span<const Step> steps, const StepParams& params) {
  absl::StatusOr<v1::DecodeStepRequest> req =
      MakeDecodeStepRequest(steps, params);
  if (!req.ok()) return req.status();
  absl::StatusOr<v1::DecodeStepResponse> resp = DecodeStep(*req);
  if (!resp.ok()) return resp.status();
  if (resp->results_size() != req->steps_size()) {
    return absl::DataLossError(absl::StrCat("results: ", resp->results_size(),
                                            " for ", req->steps_size(),
                                            " steps"));
  }
  std::vector<StepResult> out;
  out.reserve(steps.size());
  for (const v1::StreamStepResult& r : resp->results()) {
    out.push_back(DecodeStepResult(r));
  }
  return out;
}

void MemoryClient::StartDecodeStep(const v1::DecodeStepRequest& request,
                                   v1::DecodeStepResponse* response,
                                   std::function<void(absl::Status)> done) {
  auto* context = new grpc::ClientContext();
  Prepare(*context);
  stub_->async()->DecodeStep(context, &request, response,
                             [context, done = std::move(done)](grpc::Status s) {
                               delete context;
                               done(FromGrpc(s));
                             });
}

absl::Status MemoryClient::Health() {
  absl::StatusOr<grpc::health::v1::HealthCheckResponse> resp =
      Call(health_.get(), &grpc::health::v1::Health::Stub::Check,
           grpc::health::v1::HealthCheckRequest());
  if (!resp.ok()) return resp.status();
  if (resp->status() != grpc::health::v1::HealthCheckResponse::SERVING) {
    return absl::UnavailableError(
        absl::StrCat("server health is ",
                     grpc::health::v1::HealthCheckResponse::ServingStatus_Name(
                         resp->status())));
  }
  return absl::OkStatus();
}

absl::StatusOr<Neighbours> DecodeNeighbours(const v1::SearchResponse& r) {
  Neighbours n;
  if (r.scores().shape_size() != 3 || r.positions().shape_size() != 3) {
    return absl::DataLossError(
        "scores/positions: response is not [n, heads, k]");
  }
  n.queries = r.scores().shape(0);
  n.heads = r.scores().shape(1);
  n.k = r.scores().shape(2);
  const int64_t count = n.queries * n.heads * n.k;
  if (r.scores().dtype() != v1::FLOAT32 || r.positions().dtype() != v1::INT64 ||
      static_cast<int64_t>(r.scores().data().size()) != count * 4 ||
      static_cast<int64_t>(r.positions().data().size()) != count * 8) {
    return absl::DataLossError("scores/positions: malformed response tensors");
  }
  n.scores.resize(count);
  n.positions.resize(count);
  std::memcpy(n.scores.data(), r.scores().data().data(), count * 4);
  std::memcpy(n.positions.data(), r.positions().data().data(), count * 8);
  for (const auto& [tensor, out, name] :
       {std::tuple<const v1::Tensor&, std::vector<float>&, const char*>{
            r.keys(), n.keys, "keys"},
        std::tuple<const v1::Tensor&, std::vector<float>&, const char*>{
            r.values(), n.values, "values"}}) {
    if (tensor.data().empty()) continue;
    absl::StatusOr<std::vector<float>> f = TensorToFloats(tensor, name);
    if (!f.ok()) return f.status();
    if (static_cast<int64_t>(f->size()) != Elements(tensor)) {
      return absl::DataLossError(
          absl::StrCat(name, ": malformed response tensor"));
    }
    out = std::move(*f);
  }
  return n;
}

}  // namespace knnmem::client

namespace knnmem::client {

absl::StatusOr<Attention> DecodeAttention(const v1::AttendResponse& r) {
  return DecodeAttentionTensors(r.output(), r.lse());
}

}  // namespace knnmem::client
