// MemoryService::AppendStreamReactor: one AppendStream call. Batches are
// stored in the order received, one at a time, on the worker pool; the
// next batch is read from the transport while the current one is stored,
// and each acknowledgement is written once its batch is in the WAL.
#ifndef KNNMEM_SERVER_SERVICE_APPEND_STREAM_REACTOR_H_
#define KNNMEM_SERVER_SERVICE_APPEND_STREAM_REACTOR_H_

#include <chrono>
#include <deque>
#include <memory>

#include "absl/base/thread_annotations.h"
#include "absl/status/status.h"
#include "base/sync.h"
#include "server/service/memory_service.h"

namespace knnmem {

class MemoryService::AppendStreamReactor final
    : public grpc::ServerBidiReactor<v1::AppendRequest, v1::AppendResponse> {
 public:
  AppendStreamReactor(MemoryService* service, grpc::CallbackServerContext* ctx);

  void OnReadDone(bool ok) override;
  void OnWriteDone(bool ok) override;
  void OnDone() override {
    if (entered_) service_->gate_.Exit();
    delete this;
  }

 private:
  struct Batch {
    v1::AppendRequest request;
    v1::AppendResponse response;
    std::chrono::steady_clock::time_point received;
    // From its arrival until it is stored, a batch counts against
    // --max-inflight-bytes, the one read ahead included.
    Admission::Ticket admitted;
  };
  // What a reaction or the storing task decided under the lock, done after
  // it is released (gRPC may run a reaction inline from StartRead/Write).
  struct Actions {
    v1::AppendRequest* read = nullptr;    // StartRead into this
    v1::AppendResponse* write = nullptr;  // StartWrite this
    bool store = false;                   // start StoreBatches on the pool
    bool finish = false;                  // Finish(status)
    absl::Status status;
  };

  // Stored batches whose acknowledgements the client has not read yet,
  // beyond which the call is not read from.
  static constexpr size_t kMaxUnacknowledged = 8;

  // Stores the received batches until none is left (a pool task).
  void StoreBatches();
  absl::Status StoreOne(Batch& batch);
  // Sets read/write/finish for the current state.
  void Plan(Actions& actions) ABSL_EXCLUSIVE_LOCKS_REQUIRED(mu_);
  // Runs the actions; Finish comes last, as `this` may be gone after it.
  void Run(const Actions& actions);

  MemoryService* const service_;
  grpc::CallbackServerContext* const ctx_;
  const bool entered_;  // let in by the service's gate: OnDone lets it out
  // Who makes the call; set in the constructor, before any batch is read.
  Caller caller_;

  Mutex mu_;
  std::unique_ptr<Batch> reading_ ABSL_GUARDED_BY(mu_);  // StartRead's target
  std::deque<std::unique_ptr<Batch>> received_ ABSL_GUARDED_BY(mu_);
  bool storing_ ABSL_GUARDED_BY(mu_) = false;  // a pool task is running
  std::deque<std::unique_ptr<Batch>> stored_ ABSL_GUARDED_BY(mu_);
  std::unique_ptr<Batch> writing_ ABSL_GUARDED_BY(mu_);  // StartWrite's
  bool read_closed_ ABSL_GUARDED_BY(mu_) = false;  // half-closed or failed
  absl::Status status_ ABSL_GUARDED_BY(mu_);       // the first error
  bool finished_ ABSL_GUARDED_BY(mu_) = false;
};

}  // namespace knnmem

#endif  // KNNMEM_SERVER_SERVICE_APPEND_STREAM_REACTOR_H_
