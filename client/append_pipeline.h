// AppendPipeline: appends over one AppendStream call, keeping up to
// `window` batches unacknowledged, so that sending one batch overlaps the
// server's write of the one before. An acknowledged batch is in the WAL, as
// with a unary Append. Batches are sent without a copy of their keys and
// values (aliased_message.h). Not thread-safe: one pipeline per appending
// thread.
#ifndef KNNMEM_CLIENT_APPEND_PIPELINE_H_
#define KNNMEM_CLIENT_APPEND_PIPELINE_H_

#include <chrono>
#include <cstddef>
#include <memory>
#include <vector>

#include "absl/status/status.h"
#include "absl/status/statusor.h"
#include "knnmem/v1/memory.grpc.pb.h"

namespace grpc {
class ByteBuffer;
class Channel;
class ClientContext;
template <class W, class R>
class ClientReaderWriter;
}  // namespace grpc

namespace knnmem::client {

class AppendPipeline {
 public:
  // Use MemoryClient::OpenAppendPipeline.
  AppendPipeline(std::unique_ptr<grpc::ClientContext> context,
                 grpc::Channel* channel, size_t window);
  ~AppendPipeline();  // cancels the call if Finish was not called

  AppendPipeline(const AppendPipeline&) = delete;
  AppendPipeline& operator=(const AppendPipeline&) = delete;

  // Sends `request`, first waiting for acknowledgements while `window`
  // batches are unacknowledged. After an error the call is over: this and
  // every later Send and Finish return the server's status for it. Move
  // the request in: a copy would cost what the aliasing saves.
  absl::Status Send(v1::AppendRequest request);
  // Closes the call once every batch is acknowledged; OK when all were.
  absl::Status Finish();
  // The acknowledgements so far, in the order the batches were sent.
  const std::vector<v1::AppendResponse>& acknowledged() const {
    return acknowledged_;
  }

 private:
  // Reads one acknowledgement; on failure ends the call.
  absl::Status ReadOne();
  // Reads and parses one acknowledgement; false when none came.
  bool ReadAck(v1::AppendResponse* response);
  // Ends the call and keeps its status.
  absl::Status End();

  std::unique_ptr<grpc::ClientContext> context_;
  std::unique_ptr<grpc::ClientReaderWriter<grpc::ByteBuffer, grpc::ByteBuffer>>
      call_;
  const size_t window_;
  size_t sent_ = 0;
  std::vector<v1::AppendResponse> acknowledged_;
  bool ended_ = false;
  absl::Status status_;
};

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_APPEND_PIPELINE_H_
