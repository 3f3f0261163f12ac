#include "aliased_message.h"

#include <grpcpp/support/proto_buffer_reader.h>
#include <gtest/gtest.h>

#include <string>
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

TEST(AliasedBufferTest, ParsesBackToTheSameMessage) {
  const v1::AppendRequest request = BigRequest();
  AliasedBuffer aliased(request);
  ASSERT_TRUE(aliased.ok());
  grpc::ProtoBufferReader reader(aliased.buffer());
  v1::AppendRequest parsed;
  ASSERT_TRUE(parsed.ParseFromZeroCopyStream(&reader));
  EXPECT_EQ(parsed.SerializeAsString(), request.SerializeAsString());
}

TEST(AliasedBufferTest, LargeBytesFieldsAreSlicesOfTheMessageItself) {
  const v1::AppendRequest request = BigRequest();
  AliasedBuffer aliased(request);
  ASSERT_TRUE(aliased.ok());
  std::vector<grpc::Slice> slices;
  ASSERT_TRUE(aliased.buffer()->Dump(&slices).ok());
  bool keys_aliased = false, values_aliased = false;
  size_t total = 0;
  for (const grpc::Slice& s : slices) {
    const char* p = reinterpret_cast<const char*>(s.begin());
    keys_aliased |= p == request.keys().data().data() &&
                    s.size() == request.keys().data().size();
    values_aliased |= p == request.values().data().data() &&
                      s.size() == request.values().data().size();
    total += s.size();
  }
  EXPECT_TRUE(keys_aliased);
  EXPECT_TRUE(values_aliased);
  EXPECT_EQ(total, request.ByteSizeLong());
}

}  // namespace
}  // namespace knnmem
