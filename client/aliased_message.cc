#include "aliased_message.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <grpcpp/support/slice.h>

#include <utility>

#include "google/protobuf/io/coded_stream.h"
#include "google/protobuf/io/zero_copy_stream.h"

namespace knnmem {
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

}  // namespace

AliasedBuffer::AliasedBuffer(const google::protobuf::MessageLite& message) {
  GatherStream gathered(&chunks_);
  {
    google::protobuf::io::CodedOutputStream out(&gathered);
    out.EnableAliasing(true);
    message.ByteSizeLong();  // caches the sizes the serialiser writes
    message.SerializeWithCachedSizes(&out);
    if (out.HadError()) return;
  }
  std::vector<grpc::Slice> slices;
  slices.reserve(gathered.pieces().size());
  live_slices_ = static_cast<int>(gathered.pieces().size());
  for (const Piece& p : gathered.pieces()) {
    slices.emplace_back(p.data, p.size, &AliasedBuffer::ReleaseSlice, this);
  }
  buffer_ = grpc::ByteBuffer(slices.data(), slices.size());
  ok_ = true;
}

AliasedBuffer::~AliasedBuffer() { AwaitReleased(); }

void AliasedBuffer::ReleaseSlice(void* self) {
  auto* b = static_cast<AliasedBuffer*>(self);
  std::lock_guard<std::mutex> lock(b->mu_);
  --b->live_slices_;
  b->released_.notify_all();
}

void AliasedBuffer::AwaitReleased() {
  buffer_.Clear();
  std::unique_lock<std::mutex> lock(mu_);
  released_.wait(lock, [this] { return live_slices_ == 0; });
}

grpc::Status AliasedUnaryCall(grpc::GenericStub& stub,
                              grpc::ClientContext& context,
                              const std::string& method,
                              const google::protobuf::MessageLite& request,
                              google::protobuf::MessageLite* response) {
  AliasedBuffer send(request);
  if (!send.ok()) {
    return grpc::Status(grpc::StatusCode::INTERNAL,
                        "the request could not be serialised");
  }
  std::mutex mu;
  std::condition_variable ended;
  bool done = false;
  grpc::Status status;
  grpc::ByteBuffer received;
  stub.UnaryCall(&context, method, grpc::StubOptions(), send.buffer(),
                 &received, [&](grpc::Status s) {
                   std::lock_guard<std::mutex> lock(mu);
                   status = std::move(s);
                   done = true;
                   ended.notify_all();
                 });
  {
    std::unique_lock<std::mutex> lock(mu);
    ended.wait(lock, [&done] { return done; });
  }
  send.AwaitReleased();
  if (status.ok()) {
    grpc::ProtoBufferReader reader(&received);
    if (!response->ParseFromZeroCopyStream(&reader)) {
      return grpc::Status(grpc::StatusCode::INTERNAL,
                          "the response could not be parsed");
    }
  }
  return status;
}

}  // namespace knnmem
