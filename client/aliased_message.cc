#include "client/aliased_message.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <atomic>
#include <utility>
#include <vector>

#include "base/sync.h"
#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace knnmem::client {
namespace {

// Protobuf's own bytes (tags, lengths, small fields) go into owned chunks.
constexpr int kChunkBytes = 4096;

struct Piece {
  char* data;
  size_t size;
};

// Collects the serialised message as pieces: owned chunks, and the bytes
// fields protobuf writes "maybe aliased", by pointer.
class GatherStream final : public google::protobuf::io::ZeroCopyOutputStream {
 public:
  explicit GatherStream(std::vector<std::unique_ptr<char[]>>* chunks)
      : chunks_(chunks) {}

  bool Next(void** data, int* size) override {
    chunks_->push_back(std::make_unique<char[]>(kChunkBytes));
    pieces_.push_back({chunks_->back().get(), kChunkBytes});
    *data = chunks_->back().get();
    *size = kChunkBytes;
    bytes_ += kChunkBytes;
    return true;
  }
  void BackUp(int count) override {
    pieces_.back().size -= static_cast<size_t>(count);
    bytes_ -= count;
  }
  int64_t ByteCount() const override { return bytes_; }
  bool AllowsAliasing() const override { return true; }
  bool WriteAliasedRaw(const void* data, int size) override {
    // gRPC's slice API takes a non-const pointer; it never writes through it.
    pieces_.push_back({const_cast<char*>(static_cast<const char*>(data)),
                       static_cast<size_t>(size)});
    bytes_ += size;
    return true;
  }

  const std::vector<Piece>& pieces() const { return pieces_; }

 private:
  std::vector<std::unique_ptr<char[]>>* chunks_;
  std::vector<Piece> pieces_;
  int64_t bytes_ = 0;
};

// What the slices of one serialised message share: the message and the
// chunks holding protobuf's own bytes. The last slice released frees it.
struct SharedMessage {
  std::shared_ptr<const google::protobuf::MessageLite> message;
  std::vector<std::unique_ptr<char[]>> chunks;
  std::atomic<int> live_slices{0};

  static void ReleaseSlice(void* p) {
    auto* self = static_cast<SharedMessage*>(p);
    if (self->live_slices.fetch_sub(1, std::memory_order_acq_rel) == 1) {
      delete self;
    }
  }
};

}  // namespace

absl::StatusOr<grpc::ByteBuffer> SerializeAliased(
    std::shared_ptr<const google::protobuf::MessageLite> message) {
  auto shared = std::make_unique<SharedMessage>();
  shared->message = std::move(message);
  GatherStream gathered(&shared->chunks);
  {
    google::protobuf::io::CodedOutputStream out(&gathered);
    out.EnableAliasing(true);
    shared->message->ByteSizeLong();  // caches the sizes the serialiser writes
    shared->message->SerializeWithCachedSizes(&out);
    if (out.HadError()) {
      return absl::InternalError("the request could not be serialised");
    }
  }
  const std::vector<Piece>& pieces = gathered.pieces();
  if (pieces.empty()) return grpc::ByteBuffer();
  // Every slice holds a share from here on; the last release deletes.
  shared->live_slices.store(static_cast<int>(pieces.size()),
                            std::memory_order_relaxed);
  SharedMessage* owner = shared.release();
  std::vector<grpc::Slice> slices;
  slices.reserve(pieces.size());
  for (const Piece& p : pieces) {
    slices.emplace_back(p.data, p.size, &SharedMessage::ReleaseSlice, owner);
  }
  return grpc::ByteBuffer(slices.data(), slices.size());
}

grpc::Status AliasedUnaryCall(
    grpc::GenericStub& stub, grpc::ClientContext& context,
    const std::string& method,
    std::shared_ptr<const google::protobuf::MessageLite> request,
    google::protobuf::MessageLite* response) {
  absl::StatusOr<grpc::ByteBuffer> send = SerializeAliased(std::move(request));
  if (!send.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        std::string(send.status().message()));
  }
  Mutex mu;
  bool done = false;
  grpc::Status status;
  grpc::ByteBuffer received;
  stub.UnaryCall(&context, method, grpc::StubOptions(), &*send, &received,
                 [&](grpc::Status s) {
                   MutexLock lock(&mu);
                   status = std::move(s);
                   done = true;
                 });
  {
    MutexLock lock(&mu);
    mu.Await(absl::Condition(&done));
  }
  if (status.ok()) {
    grpc::ProtoBufferReader reader(&received);
    if (!response->ParseFromZeroCopyStream(&reader)) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the response could not be parsed");
    }
  }
  return status;
}

}  // namespace knnmem::client
