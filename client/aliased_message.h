// AliasedBuffer, AliasedUnaryCall: sending a protobuf request whose large
// bytes fields go to the transport by reference instead of being copied.
//
// The generated stubs serialise a request by copying all of it into fresh
// gRPC slices: for a 4 MiB Append, a 4 MiB copy on every call into memory
// the allocator has often just handed back to the kernel (about a thousand
// page faults); measured, 2.3 of the client's 3.5 ms of CPU per call.
// Protobuf can instead pass bytes fields to its output stream by pointer
// ("aliasing"); the stream here turns each into a slice that points into
// the message and counts the slices gRPC still holds.
#ifndef KNNMEM_CLIENT_ALIASED_MESSAGE_H_
#define KNNMEM_CLIENT_ALIASED_MESSAGE_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <condition_variable>
#include <memory>
#include <mutex>
#include <string>
#include <vector>

#include "google/protobuf/message_lite.h"

namespace knnmem {

// The serialised form of a message as a ByteBuffer whose large bytes fields
// point into the message: it must stay alive and unchanged until
// AwaitReleased() returns (the destructor calls it).
class AliasedBuffer {
 public:
  explicit AliasedBuffer(const google::protobuf::MessageLite& message);
  ~AliasedBuffer();

  AliasedBuffer(const AliasedBuffer&) = delete;
  AliasedBuffer& operator=(const AliasedBuffer&) = delete;

  // False when the message could not be serialised (then buffer() is empty).
  bool ok() const { return ok_; }
  // What to send; gRPC takes its own references to the slices.
  grpc::ByteBuffer* buffer() { return &buffer_; }
  // Drops this buffer's references and waits until gRPC has dropped its.
  void AwaitReleased();

 private:
  static void ReleaseSlice(void* self);

  bool ok_ = false;
  std::vector<std::unique_ptr<char[]>> chunks_;  // protobuf's own bytes
  grpc::ByteBuffer buffer_;
  // std:: primitives rather than absl: ThreadSanitizer sees these.
  std::mutex mu_;
  std::condition_variable released_;
  int live_slices_ = 0;
};

// A unary call of `method` ("/package.Service/Method") through `stub` with
// `request` aliased; `context` carries the deadline and metadata. The
// status is the call's, or INTERNAL when the request cannot be serialised
// or the response parsed. Returns once gRPC holds nothing of `request`.
grpc::Status AliasedUnaryCall(grpc::GenericStub& stub,
                              grpc::ClientContext& context,
                              const std::string& method,
                              const google::protobuf::MessageLite& request,
                              google::protobuf::MessageLite* response);

}  // namespace knnmem

#endif  // KNNMEM_CLIENT_ALIASED_MESSAGE_H_
