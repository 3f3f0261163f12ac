#include "append_pipeline.h"

#include <grpcpp/grpcpp.h>

#include <utility>

#include "memory_client.h"

namespace knnmem {

AppendPipeline::AppendPipeline(std::unique_ptr<grpc::ClientContext> context,
                               v1::Memory::Stub* stub, size_t window)
    : context_(std::move(context)),
      call_(stub->AppendStream(context_.get())),
      window_(window < 1 ? 1 : window) {}

AppendPipeline::~AppendPipeline() {
  if (!ended_) {
    context_->TryCancel();
    call_->Finish().ok();  // the status of a cancelled call says nothing new
  }
}

absl::Status AppendPipeline::Send(const v1::AppendRequest& request) {
  if (ended_) return status_;
  while (sent_ - acknowledged_.size() >= window_) {
    absl::Status s = ReadOne();
    if (!s.ok()) return s;
  }
  if (!call_->Write(request)) return End();  // the call broke: say why
  ++sent_;
  return absl::OkStatus();
}

absl::Status AppendPipeline::Finish() {
  if (ended_) return status_;
  if (!call_->WritesDone()) return End();
  while (acknowledged_.size() < sent_) {
    absl::Status s = ReadOne();
    if (!s.ok()) return s;
  }
  return End();
}

absl::Status AppendPipeline::ReadOne() {
  v1::AppendResponse response;
  if (!call_->Read(&response)) return End();
  acknowledged_.push_back(std::move(response));
  return absl::OkStatus();
}

absl::Status AppendPipeline::End() {
  if (ended_) return status_;
  ended_ = true;
  // Finish waits until every message the server sent is read: acks of
  // batches stored before the call ended are still on their way.
  for (v1::AppendResponse response; call_->Read(&response);) {
    acknowledged_.push_back(std::move(response));
    response = v1::AppendResponse();
  }
  status_ = FromGrpc(call_->Finish());
  if (status_.ok() && acknowledged_.size() < sent_) {
    status_ = absl::InternalError(
        "AppendStream ended OK before acknowledging every batch");
  }
  return status_;
}

}  // namespace knnmem
