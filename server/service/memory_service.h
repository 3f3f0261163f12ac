// MemoryService: the gRPC face of MemoryStore (callback API); with Server,
// the only code that sees grpc:: types. On the gRPC thread a handler checks
// the token, the request size and the stream id, and looks up the stream's
// spec; validation into a command and the store's work then run on the
// worker pool (Call::Defer), which admits work within the in-flight limits.
// Exceptions today: GetStream and ListStreams answer on the gRPC thread and
// read RocksDB there for streams whose entries are not in RAM. Once
// StopAcceptingCalls ran, calls are answered UNAVAILABLE (CallGate).
#ifndef KNNMEM_SERVER_SERVICE_MEMORY_SERVICE_H_
#define KNNMEM_SERVER_SERVICE_MEMORY_SERVICE_H_

#include <atomic>
#include <cstddef>
#include <optional>

#include "base/worker_pool.h"
#include "knnmem/v1/memory.grpc.pb.h"
#include "server/service/admission.h"
#include "server/service/auth.h"
#include "server/service/call_gate.h"
#include "server/service/metrics.h"
#include "server/service/token_file.h"
#include "server/store/memory_store.h"

namespace knnmem {

// absl and gRPC share their code numbering.
grpc::Status ToGrpc(const absl::Status& s);
// The status of a call found cancelled `when` ("while queued"):
// DEADLINE_EXCEEDED when its deadline has passed, else CANCELLED (the
// client cancelled it), so that the metrics tell the two apart.
absl::Status WhyCancelled(const grpc::ServerContextBase& ctx,
                          absl::string_view when);

class MemoryService final : public v1::Memory::CallbackService {
 public:
  struct Limits {
    // Requests and responses larger than this are refused with
    // RESOURCE_EXHAUSTED naming the field.
    size_t max_message_bytes = size_t{256} << 20;
    // Work admitted at once (0: unlimited); beyond, RESOURCE_EXHAUSTED.
    size_t max_inflight_requests = 0;
    uint64_t max_inflight_bytes = 0;
    // Bearer tokens, tenants and their quotas; nullptr: auth off (every
    // caller an admin, no quota). Must outlive the service.
    const TokenFile* tokens = nullptr;
  };

  // `store`, `pool` and `metrics` (nullable) must outlive the service.
  MemoryService(MemoryStore* store, WorkerPool* pool, Metrics* metrics,
                const Limits& limits);

  grpc::ServerUnaryReactor* CreateStream(
      grpc::CallbackServerContext* ctx, const v1::CreateStreamRequest* request,
      v1::CreateStreamResponse* response) override;
  grpc::ServerUnaryReactor* GetStream(grpc::CallbackServerContext* ctx,
                                      const v1::GetStreamRequest* request,
                                      v1::StreamInfo* response) override;
  grpc::ServerUnaryReactor* ListStreams(
      grpc::CallbackServerContext* ctx, const v1::ListStreamsRequest* request,
      v1::ListStreamsResponse* response) override;
  grpc::ServerUnaryReactor* ResetStream(
      grpc::CallbackServerContext* ctx, const v1::ResetStreamRequest* request,
      v1::ResetStreamResponse* response) override;
  grpc::ServerUnaryReactor* DeleteStream(
      grpc::CallbackServerContext* ctx, const v1::DeleteStreamRequest* request,
      v1::DeleteStreamResponse* response) override;
  grpc::ServerUnaryReactor* Append(grpc::CallbackServerContext* ctx,
                                   const v1::AppendRequest* request,
                                   v1::AppendResponse* response) override;
  grpc::ServerBidiReactor<v1::AppendRequest, v1::AppendResponse>* AppendStream(
      grpc::CallbackServerContext* ctx) override;
  grpc::ServerUnaryReactor* Search(grpc::CallbackServerContext* ctx,
                                   const v1::SearchRequest* request,
                                   v1::SearchResponse* response) override;
  grpc::ServerUnaryReactor* Attend(grpc::CallbackServerContext* ctx,
                                   const v1::AttendRequest* request,
                                   v1::AttendResponse* response) override;
  grpc::ServerUnaryReactor* DecodeStep(
      grpc::CallbackServerContext* ctx, const v1::DecodeStepRequest* request,
      v1::DecodeStepResponse* response) override;

  // From now on a call that reaches a handler is refused with UNAVAILABLE
  // (the server is stopping: a client retries elsewhere or later).
  void StopAcceptingCalls() { gate_.Close(); }
  // Waits until every call let in before StopAcceptingCalls has ended;
  // false after `timeout`.
  bool AwaitCallsEnded(absl::Duration timeout = absl::InfiniteDuration()) {
    return gate_.AwaitEmpty(timeout);
  }
  // Ends the calls still running with UNAVAILABLE (retry elsewhere), as
  // soon as each can stop: queued work is not started, searches stop
  // between blocks, AppendStream calls store no further batch. A write
  // under way completes.
  void AbortCalls() { aborting_.store(true); }
  // Requests admitted and not yet answered.
  size_t requests_in_flight() const { return admission_.requests(); }

 private:
  class Call;
  class AppendStreamReactor;

  // Who makes the call: an admin who may write when auth is off, else the
  // caller its token names (UNAUTHENTICATED for none or an unknown one).
  absl::StatusOr<Caller> Identify(const grpc::CallbackServerContext& ctx) const;
  // The quota of `stream_id`'s tenant in force now, if any.
  std::optional<Quota> QuotaFor(absl::string_view stream_id) const;
  // Logs (at most a few lines a second) and counts a call or a step that
  // was refused for its token, its tenant or a quota; other statuses are
  // ignored. `caller` is null when the token was not known.
  void NoteDenied(Rpc rpc, const Caller* caller,
                  const absl::Status& status) const;

  // The checks every data-plane call (Append, Search, Attend) makes before
  // its work: auth, request size, stream id and tenant; then the stream's
  // spec.
  absl::StatusOr<StreamSpec> DataCallSpec(
      Call& call, const google::protobuf::Message& request,
      const std::string& stream_id, absl::string_view fields) const;
  // DataCallSpec after the call's token has been checked.
  absl::StatusOr<StreamSpec> AuthorizedCallSpec(
      const Caller& caller, const google::protobuf::Message& request,
      const std::string& stream_id, absl::string_view fields) const;
  // Validates one Append batch against `spec` and stores it (on the pool).
  absl::Status StoreAppend(const v1::AppendRequest& request,
                           const StreamSpec& spec,
                           v1::AppendResponse* response);
  // Validates every step of a DecodeStep, runs the valid ones on the store
  // and fills the response (on the pool). Fails the call only when it
  // was cancelled or its answer would be over the message size limit.
  absl::Status RunDecodeStep(grpc::CallbackServerContext* ctx,
                             const Caller& caller,
                             const v1::DecodeStepRequest& request,
                             v1::DecodeStepResponse* response);
  // RESOURCE_EXHAUSTED naming `fields` when `request` is over the limit. The
  // transport accepts up to twice the limit so that such requests reach
  // this check and get a message that names the field.
  absl::Status CheckRequestSize(const google::protobuf::Message& request,
                                absl::string_view fields) const;

  MemoryStore* const store_;
  WorkerPool* const pool_;
  Metrics* const metrics_;
  const TokenFile* const tokens_;
  // Denials logged in the current second, and those left out of the log.
  mutable Mutex denied_log_mu_;
  mutable int64_t denied_log_second_ ABSL_GUARDED_BY(denied_log_mu_) = 0;
  mutable int denied_logged_ ABSL_GUARDED_BY(denied_log_mu_) = 0;
  mutable uint64_t denied_unlogged_ ABSL_GUARDED_BY(denied_log_mu_) = 0;
  const size_t max_message_bytes_;
  Admission admission_;
  CallGate gate_;
  std::atomic<bool> aborting_{false};
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_MEMORY_SERVICE_H_
