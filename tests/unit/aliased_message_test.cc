#include "client/aliased_message.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <gtest/gtest.h>

#include <memory>
#include <string>
#include <utility>
#include <vector>

#include "knnmem/v1/memory.pb.h"

namespace knnmem {
namespace {

v1::AppendRequest BigRequest() {
  v1::AppendRequest r;
  r.set_stream_id("doc-7");
  r.set_layer(3);
  r.set_first_position(1024);
  r.set_sync(true);
  r.mutable_keys()->set_dtype(v1::FLOAT32);
  r.mutable_keys()->add_shape(512);
  r.mutable_keys()->add_shape(8);
  r.mutable_keys()->add_shape(128);
  std::string keys(512 * 8 * 128 * 4, '\0');
  for (size_t i = 0; i < keys.size(); ++i) keys[i] = static_cast<char>(i * 7);
  r.mutable_keys()->set_data(keys);
  r.mutable_values()->set_dtype(v1::FLOAT32);
  r.mutable_values()->add_shape(512);
  r.mutable_values()->set_data(std::string(300000, 'v'));
  return r;
}

std::string Parsed(grpc::ByteBuffer* buffer) {
  grpc::ProtoBufferReader reader(buffer);
  v1::AppendRequest parsed;
  EXPECT_TRUE(parsed.ParseFromZeroCopyStream(&reader));
  return parsed.SerializeAsString();
}

TEST(SerializeAliasedTest, ParsesBackToTheSameMessage) {
  auto request = std::make_shared<const v1::AppendRequest>(BigRequest());
  absl::StatusOr<grpc::ByteBuffer> aliased = client::SerializeAliased(request);
  ASSERT_TRUE(aliased.ok()) << aliased.status();
  EXPECT_EQ(Parsed(&*aliased), request->SerializeAsString());
}

TEST(SerializeAliasedTest, EmptyMessageIsAnEmptyBuffer) {
  absl::StatusOr<grpc::ByteBuffer> aliased =
      client::SerializeAliased(std::make_shared<const v1::AppendRequest>());
  ASSERT_TRUE(aliased.ok()) << aliased.status();
  EXPECT_EQ(aliased->Length(), 0u);
}

TEST(SerializeAliasedTest, LargeBytesFieldsAreSlicesOfTheMessageItself) {
  auto request = std::make_shared<const v1::AppendRequest>(BigRequest());
  absl::StatusOr<grpc::ByteBuffer> aliased = client::SerializeAliased(request);
  ASSERT_TRUE(aliased.ok()) << aliased.status();
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(aliased->Dump(&slices).ok());
  bool keys_aliased = false, values_aliased = false;
  size_t total = 0;
  for (const grpc::Slice& s : slices) {
    const char* p = reinterpret_cast<const char*>(s.begin());
    keys_aliased |= p == request->keys().data().data() &&
                    s.size() == request->keys().data().size();
    values_aliased |= p == request->values().data().data() &&
                      s.size() == request->values().data().size();
    total += s.size();
  }
  EXPECT_TRUE(keys_aliased);
  EXPECT_TRUE(values_aliased);
  EXPECT_EQ(total, request->ByteSizeLong());
}

// What a transport that keeps a request's slices after its call ended does:
// the caller lets go of everything and returns at once; the message lives
// on, intact, until the last slice goes, and is freed then.
TEST(SerializeAliasedTest, MessageLivesUntilTheLastSliceIsReleased) {
  auto request = std::make_shared<const v1::AppendRequest>(BigRequest());
  const std::string expected = request->SerializeAsString();
  std::weak_ptr<const v1::AppendRequest> watch = request;
  std::vector<grpc::Slice> held_by_transport;
  {
    absl::StatusOr<grpc::ByteBuffer> aliased =
        client::SerializeAliased(std::move(request));
    ASSERT_TRUE(aliased.ok()) << aliased.status();
    ASSERT_TRUE(aliased->Dump(&held_by_transport).ok());
  }  // the caller's buffer and its share are gone
  ASSERT_FALSE(watch.expired());
  // Every slice still reads the message's bytes (ASan: no use after free).
  grpc::ByteBuffer resent(held_by_transport.data(), held_by_transport.size());
  EXPECT_EQ(Parsed(&resent), expected);
  resent.Clear();
  held_by_transport.pop_back();
  EXPECT_FALSE(watch.expired()) << "freed before its last slice went";
  held_by_transport.clear();
  EXPECT_TRUE(watch.expired()) << "not freed at the last release";
}

}  // namespace
}  // namespace knnmem
