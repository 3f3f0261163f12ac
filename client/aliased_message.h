// SerializeAliased, AliasedUnaryCall: sending a protobuf request whose large
// bytes fields go to the transport by reference instead of being copied.
//
// The generated stubs serialise a request by copying all of it into fresh
// gRPC slices: for a 4 MiB Append, a 4 MiB copy on every call into memory
// the allocator has often just handed back to the kernel (about a thousand
// page faults); measured, 2.3 of the client's 3.5 ms of CPU per call.
// Protobuf can instead pass bytes fields to its output stream by pointer
// ("aliasing"); the stream here turns each into a slice that points into
// the message.
//
// Ownership: every slice holds a share of the message, which is freed when
// the last slice is released, by whoever holds it last. Nobody waits for
// gRPC to let go: a transport that keeps a request's slices after its call
// has ended (seen when the server dies mid-request: the slices of a request
// written to a dead connection were never released) delays only the free,
// never a caller, so no call outlives its deadline.
#ifndef KNNMEM_CLIENT_ALIASED_MESSAGE_H_
#define KNNMEM_CLIENT_ALIASED_MESSAGE_H_

#include <grpcpp/generic/generic_stub.h>
#include <grpcpp/support/byte_buffer.h>

#include <memory>
#include <string>

#include "absl/status/statusor.h"
#include "google/protobuf/message_lite.h"

namespace knnmem::client {

// The serialised form of `message` as a ByteBuffer whose large bytes fields
// are slices of the message itself. The slices share ownership of the
// message: it must not be changed afterwards, and it lives until the
// caller's shared_ptr and every copy of every slice are gone. INTERNAL
// when the message cannot be serialised.
absl::StatusOr<grpc::ByteBuffer> SerializeAliased(
    std::shared_ptr<const google::protobuf::MessageLite> message);

// A unary call of `method` ("/package.Service/Method") through `stub` with
// `request` aliased; `context` carries the deadline and metadata. The
// status is the call's, or INTERNAL when the request cannot be serialised
// or the response parsed. Returns when the call ends (at the latest at its
// deadline), whatever gRPC still holds of `request`.
grpc::Status AliasedUnaryCall(
    grpc::GenericStub& stub, grpc::ClientContext& context,
    const std::string& method,
    std::shared_ptr<const google::protobuf::MessageLite> request,
    google::protobuf::MessageLite* response);

}  // namespace knnmem::client

#endif  // KNNMEM_CLIENT_ALIASED_MESSAGE_H_
