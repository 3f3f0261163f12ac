// MemoryClient: the C++ client of knnmem.v1.Memory.
//
// The client library is namespace knnmem::client. Its types carry the
// Python client's names (Neighbours, Attention; decode_step.h's Step and
// StepResult); the server's types of the same answers, in namespace
// knnmem, are called Neighbours, Attention and StepResult too.
//
// Every call carries a deadline (Options::deadline) and returns
// absl::Status / absl::StatusOr with the server's gRPC code and message.
// Thread-safe: one client may be shared by many threads.
#ifndef KNNMEM_CLIENT_MEMORY_CLIENT_H_
#define KNNMEM_CLIENT_MEMORY_CLIENT_H_

#include <grpcpp/generic/generic_stub.h>

#include <chrono>
#include <cstdint>
#include <functional>
#include <memory>
#include <string>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "absl/types/span.h"
#include "client/append_pipeline.h"
#include "client/decode_step.h"
#include "grpc/health/v1/health.grpc.pb.h"
#include "knnmem/v1/memory.grpc.pb.h"
#include "proto/tensor_codec.h"

namespace grpc {
class Channel;
class ClientContext;
class Status;
}  // namespace grpc

namespace knnmem::client {

// Decoded Search results, each [queries, heads, k]; empty entries have
// position -1 and score -inf.
struct Neighbours {
  int64_t queries = 0;
  int64_t heads = 0;
  int64_t k = 0;
  std::vector<float> scores;
  std::vector<int64_t> positions;
  // Float32 copies of the returned keys/values ([.., key_dim] /
  // [.., value_dim]), when requested.
  std::vector<float> keys;
  std::vector<float> values;
};

class MemoryClient {
 public:
  struct Options {
    std::chrono::milliseconds deadline{30000};  // per call
    int max_receive_message_bytes = -1;         // -1: unlimited
    // Sent as "authorization: Bearer TOKEN" on every call when not empty.
    std::string auth_token;
    // TLS when tls_root_certs (PEM of the CA that signed the server's
    // certificate) is set; a client certificate and key (PEM) for mutual TLS.
    std::string tls_root_certs;
    std::string tls_cert_chain;
    std::string tls_private_key;
  };

  // A client of the server at `address` (HOST:PORT). Does not connect
  // until the first call.
  static std::unique_ptr<MemoryClient> Connect(const std::string& address,
                                               const Options& options);
  static std::unique_ptr<MemoryClient> Connect(const std::string& address) {
    return Connect(address, Options());
  }
  MemoryClient(std::shared_ptr<grpc::Channel> channel, const Options& options);

  absl::StatusOr<v1::CreateStreamResponse> CreateStream(
      const std::string& stream_id, const v1::StreamSpec& spec);
  absl::StatusOr<v1::StreamInfo> GetStream(const std::string& stream_id);
  // Every stream, following pages.
  absl::StatusOr<std::vector<v1::StreamInfo>> ListStreams();
  absl::Status ResetStream(const std::string& stream_id);
  absl::Status DeleteStream(const std::string& stream_id);

  // Takes the request: its keys and values go to the transport in place
  // (move it in; an lvalue is copied).
  absl::StatusOr<v1::AppendResponse> Append(v1::AppendRequest request);
  // Appends float32 keys [rows, heads, key_dim] and values
  // [rows, heads, value_dim], sent as `wire_dtype`.
  absl::StatusOr<v1::AppendResponse> Append(
      const std::string& stream_id, uint32_t layer, int64_t first_position,
      absl::Span<const float> keys, absl::Span<const float> values,
      int64_t rows, int64_t heads, DType wire_dtype = DType::kFloat32,
      bool sync = false);

  // Opens an AppendStream call that keeps up to `window` batches
  // unacknowledged. Its deadline covers the whole call: Options::deadline,
  // or `deadline` when positive.
  std::unique_ptr<AppendPipeline> OpenAppendPipeline(
      size_t window = 2,
      std::chrono::milliseconds deadline = std::chrono::milliseconds(0));

  absl::StatusOr<v1::SearchResponse> Search(const v1::SearchRequest& request);
  // Searches float32 queries [n, heads, key_dim] and decodes the answer.
  // `exact` scans an APPROXIMATE stream exhaustively.
  absl::StatusOr<Neighbours> Search(
      const std::string& stream_id, uint32_t layer,
      absl::Span<const float> queries, int64_t n, int64_t heads, uint32_t k,
      bool return_keys = false, bool return_values = false, bool exact = false);

  absl::StatusOr<v1::AttendResponse> Attend(const v1::AttendRequest& request);
  // Attends float32 queries [n, heads, key_dim] and decodes the answer.
  // `scale` and `age_alpha` are empty, one value, or one per head.
  absl::StatusOr<Attention> Attend(const std::string& stream_id, uint32_t layer,
                                   absl::Span<const float> queries, int64_t n,
                                   int64_t heads, uint32_t k,
                                   absl::Span<const float> scale = {},
                                   absl::Span<const float> age_alpha = {},
                                   float age_tau = 0);

  // One generation step of many streams (decode_step.h): per step an
  // optional append, then its queries attended. Fails as a whole only for
  // what concerns every step (transport, auth, k, size); otherwise each
  // step's StepResult carries its own status, in the order of `steps`.
  absl::StatusOr<v1::DecodeStepResponse> DecodeStep(
      const v1::DecodeStepRequest& request);
  absl::StatusOr<std::vector<StepResult>> DecodeStep(
      absl::Span<const Step> steps, const StepParams& params);
  // Starts a DecodeStep without waiting: `done` runs on a gRPC thread with
  // the call's status once `response` is filled. `request` and `response`
  // must outlive the call.
  void StartDecodeStep(const v1::DecodeStepRequest& request,
                       v1::DecodeStepResponse* response,
                       std::function<void(absl::Status)> done);

  // OK when grpc.health.v1 reports SERVING; UNAVAILABLE (or the transport
  // error) otherwise.
  absl::Status Health();

 private:
  void Prepare(grpc::ClientContext& context) const;
  // One unary call with the deadline, its status converted to absl.
  template <typename Stub, typename Request, typename Response>
  absl::StatusOr<Response> Call(
      Stub* stub,
      grpc::Status (Stub::*method)(grpc::ClientContext*, const Request&,
                                   Response*),
      const Request& request) const;

  Options options_;
  std::shared_ptr<grpc::Channel> channel_;
  std::unique_ptr<v1::Memory::Stub> stub_;
  std::unique_ptr<grpc::GenericStub> generic_;  // Append: aliased_message.h
  std::unique_ptr<grpc::health::v1::Health::Stub> health_;
};

// An Append of float32 keys [rows, heads, key_dim] and values
// [rows, heads, value_dim], sent as `wire_dtype`.
absl::StatusOr<v1::AppendRequest> MakeAppendRequest(
    const std::string& stream_id, uint32_t layer, int64_t first_position,
    absl::Span<const float> keys, absl::Span<const float> values, int64_t rows,
    int64_t heads, DType wire_dtype = DType::kFloat32, bool sync = false);

// The absl form of a gRPC status (the two share their code numbering).
absl::Status FromGrpc(const grpc::Status& s);

// Decodes a SearchResponse into float32 / int64 arrays.
absl::StatusOr<Neighbours> DecodeNeighbours(const v1::SearchResponse& response);
// Decodes an AttendResponse.
absl::StatusOr<Attention> DecodeAttention(const v1::AttendResponse& response);

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_MEMORY_CLIENT_H_
