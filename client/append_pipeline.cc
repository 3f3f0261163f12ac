#include "client/append_pipeline.h"

#include <grpcpp/grpcpp.h>
#include <grpcpp/support/proto_buffer_reader.h>

#include <utility>

#include "client/aliased_message.h"
#include "client/memory_client.h"

namespace knnmem::client {

AppendPipeline::AppendPipeline(std::unique_ptr<grpc::ClientContext> context,
                               grpc::Channel* channel, size_t window)
    : context_(std::move(context)),
      call_(grpc::internal::ClientReaderWriterFactory<grpc::ByteBuffer,
                                                      grpc::ByteBuffer>::
                Create(channel,
                       grpc::internal::RpcMethod(
                           "/knnmem.v1.Memory/AppendStream",
                           grpc::internal::RpcMethod::BIDI_STREAMING),
                       context_.get())),
      window_(window < 1 ? 1 : window) {}

AppendPipeline::~AppendPipeline() {
  if (!ended_) {
    context_->TryCancel();
    call_->Finish().ok();  // the status of a cancelled call says nothing new
  }
}

absl::Status AppendPipeline::Send(v1::AppendRequest request) {
  if (ended_) return status_;
  while (sent_ - acknowledged_.size() >= window_) {
    absl::Status s = ReadOne();
    if (!s.ok()) return s;
  }
  // gRPC reads the keys and values in place and frees the request when it
  // lets go of it (aliased_message.h).
  absl::StatusOr<grpc::ByteBuffer> batch = SerializeAliased(
      std::make_shared<const v1::AppendRequest>(std::move(request)));
  if (!batch.ok()) {
    return absl::InternalError("AppendStream: a batch could not be serialised");
  }
  if (!call_->Write(*batch)) return End();  // the call broke: say why
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
  if (!ReadAck(&response)) return End();
  acknowledged_.push_back(std::move(response));
  return absl::OkStatus();
}

bool AppendPipeline::ReadAck(v1::AppendResponse* response) {
  grpc::ByteBuffer received;
  if (!call_->Read(&received)) return false;
  grpc::ProtoBufferReader reader(&received);
  if (response->ParseFromZeroCopyStream(&reader)) return true;
  context_->TryCancel();  // End() then reports the cancelled call
  return false;
}

absl::Status AppendPipeline::End() {
  if (ended_) return status_;
  ended_ = true;
  // Finish waits until every message the server sent is read: acks of
  // batches stored before the call ended are still on their way.
  for (v1::AppendResponse response; ReadAck(&response);) {
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

}  // namespace knnmem::client
